//! Deliberate bugs the simulator must catch (what its tests prove it can find), switched on for the current thread
//! by a test-only hook. They exist only in builds with the `mutants` feature (ha-core's own tests, examples and
//! benchmarks turn it on): without it [`active`] is a constant `false` and every planted branch is compiled out, so
//! no production type carries a test switch.

/// The deliberate bugs.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// A replica that cannot reach the DCS promotes itself without the lock.
    PromoteWithoutLock,
    /// Synchronous mode (`on`): the `sync` key names the standbys picked in the same loop that lists them in
    /// `synchronous_standby_names`, before PostgreSQL reports them synchronous and caught up (the ordering rule
    /// says: names first, the key after confirmation).
    SyncKeyBeforeNames,
    /// Quorum mode: votes are counted from the member keys at once, not from live answers (a frozen voter's stale
    /// position votes).
    StaleQuorumVotes,
    /// A running standby that replayed past the new leader's fork point and cannot stream is left running (the bug
    /// CI found on 2026-12-02).
    LeaveDivergedStandbyRunning,
    /// The leader only appends to the `history` key, never replacing one written by another branch's leader (the
    /// bug the simulator's soak found on 2026-12-03).
    AppendOnlyHistory,
    /// The lease runs the whole ttl: no safety margin for drift, a late loop or the fencer's own delay.
    LeaseMarginZero,
    /// The lease is counted from the reply to the renewal, not from its send (the server counts from when the
    /// request reached it, which may be long before the reply comes back).
    LeaseFromReply,
    /// The watchdog is never armed: nothing fences a primary whose daemon stopped renewing.
    NoFencer,
    /// A graceful shutdown whose stop of PostgreSQL failed releases the lock and disarms the watchdog anyway (#11
    /// hole 4): a hung postmaster's backends keep committing while a replica promotes.
    ReleaseAfterFailedStop,
    /// A replica races for the lock however far it lags behind the last primary position
    /// (`maximum_lag_on_failover` ignored).
    SkipLagCheck,
}

impl PlantedBug {
    /// Every planted bug, in the order `simulate --mutants` reports them.
    pub const ALL: [PlantedBug; 10] = [
        PlantedBug::PromoteWithoutLock,
        PlantedBug::SyncKeyBeforeNames,
        PlantedBug::StaleQuorumVotes,
        PlantedBug::LeaveDivergedStandbyRunning,
        PlantedBug::AppendOnlyHistory,
        PlantedBug::LeaseMarginZero,
        PlantedBug::LeaseFromReply,
        PlantedBug::NoFencer,
        PlantedBug::ReleaseAfterFailedStop,
        PlantedBug::SkipLagCheck,
    ];

    /// The bug's name on the command line (`--planted-bug NAME`).
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::PromoteWithoutLock => "promote-without-lock",
            PlantedBug::SyncKeyBeforeNames => "sync-key-before-names",
            PlantedBug::StaleQuorumVotes => "stale-quorum-votes",
            PlantedBug::LeaveDivergedStandbyRunning => "leave-diverged-standby-running",
            PlantedBug::AppendOnlyHistory => "append-only-history",
            PlantedBug::LeaseMarginZero => "lease-margin-zero",
            PlantedBug::LeaseFromReply => "lease-from-reply",
            PlantedBug::NoFencer => "no-fencer",
            PlantedBug::ReleaseAfterFailedStop => "release-after-failed-stop",
            PlantedBug::SkipLagCheck => "skip-lag-check",
        }
    }

    /// The bug named `name` (see [`PlantedBug::name`]).
    pub fn from_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[cfg(feature = "mutants")]
thread_local! {
    static PLANTED: std::cell::Cell<Option<PlantedBug>> = const { std::cell::Cell::new(None) };
}

/// Whether `bug` is planted on this thread.
#[inline]
pub fn active(bug: PlantedBug) -> bool {
    #[cfg(feature = "mutants")]
    {
        PLANTED.with(|p| p.get() == Some(bug))
    }
    #[cfg(not(feature = "mutants"))]
    {
        let _ = bug;
        false
    }
}

/// Whether any bug is planted on this thread (the driver's own safety refusals stand aside, so the decision's bug
/// shows).
#[inline]
pub fn any() -> bool {
    #[cfg(feature = "mutants")]
    {
        PLANTED.with(|p| p.get().is_some())
    }
    #[cfg(not(feature = "mutants"))]
    {
        false
    }
}

/// Plants `bug` on this thread until the guard drops. Without the `mutants` feature, planting a bug panics.
pub fn plant(bug: Option<PlantedBug>) -> Planted {
    #[cfg(feature = "mutants")]
    PLANTED.with(|p| p.set(bug));
    #[cfg(not(feature = "mutants"))]
    assert!(
        bug.is_none(),
        "{bug:?}: ha-core was built without the `mutants` feature"
    );
    Planted(())
}

/// Clears the planted bug when dropped.
pub struct Planted(());

impl Drop for Planted {
    fn drop(&mut self) {
        #[cfg(feature = "mutants")]
        PLANTED.with(|p| p.set(None));
    }
}
