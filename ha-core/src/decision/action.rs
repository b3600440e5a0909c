//! What the decision asks the driver to do.

use std::collections::BTreeMap;

use crate::model::{HistoryEntry, SyncState};
use crate::pg::{SlotPlan, StopMode, Upstream};
use crate::time::Millis;

/// One step for the driver. The driver runs a decision's actions in order and stops at the first that fails or
/// loses a race (a lock not acquired, a renewal refused): the ones after it assumed it had worked.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create `initialize` if absent (the bootstrap race); stop here if another node won.
    RaceInitialize,
    /// initdb and start as primary. On failure the driver cancels the initialization and releases the lock.
    Bootstrap,
    /// Write the local PostgreSQL's system identifier into `initialize`.
    WriteInitialize,
    /// Write the configured `bootstrap.dcs` into `config` (first leader, or an empty key).
    WriteBootstrapConfig,
    /// Copy the data directory from a running member.
    CloneFrom(Upstream),
    /// Make a replica with no running member to copy from (a replica method marked `no_leader`: a restore).
    RestoreReplica,
    /// Take the leader lock if free; stop here if someone holds it.
    AcquireLock,
    /// Renew our leader lock; stop here (and forget the lease) if it is not ours any more.
    RenewLock,
    /// Delete the leader key so another node can take over at once. Only after PostgreSQL stopped accepting writes.
    ReleaseLock,
    /// Drop the local lease: this node no longer acts as the leader (the watchdog is disarmed once PostgreSQL
    /// has stopped accepting writes).
    ForgetLease,
    /// While the DCS is unreachable, every failsafe member confirmed at `confirmed_at` that it accepts us as leader:
    /// our lease runs on from that moment.
    ExtendLeaseByFailsafe {
        /// When the confirmation was asked: the lease runs from there.
        confirmed_at: Millis,
    },
    /// Start PostgreSQL as a primary. The driver refuses it unless this node holds a valid lease.
    StartPrimary,
    /// Start PostgreSQL as a standby of the upstream (`None`: none to follow yet).
    StartReplica(Option<Upstream>),
    /// Promote the local standby. The driver refuses it unless this node holds a valid lease.
    Promote,
    /// Stop PostgreSQL in this mode.
    Stop(StopMode),
    /// Stops PostgreSQL in `mode`; if it has not exited within `kill_after_ms`, kills the postmaster and its
    /// backends. Patroni's `primary_stop_timeout` in a synchronous mode: a primary whose shutdown hangs would
    /// otherwise hold up the switchover or demotion it is part of.
    StopOrKill {
        /// How to stop it first.
        mode: StopMode,
        /// How long the stop may take.
        kill_after_ms: u64,
    },
    /// SIGKILL the postmaster and its backends: for a server that does not answer.
    Fence,
    /// Point the running standby at a new upstream.
    Follow(Upstream),
    /// pg_rewind from the upstream (PostgreSQL stopped): the local timeline diverged from it.
    Rewind(Upstream),
    /// Wipe and clone again.
    Reinitialize(Upstream),
    /// Restart PostgreSQL in its role, as an operator asked (`POST /restart`).
    Restart,
    /// Apply the cluster-wide parameters of config version `version`.
    ApplyConfig {
        /// The `config` key's version; 0 for `bootstrap.dcs`, applied before the key exists.
        version: u64,
        /// The cluster-wide parameters, as [`crate::model::GlobalConfig::parameters`] gives them.
        parameters: BTreeMap<String, String>,
        /// The cluster-wide recovery settings, as [`crate::model::GlobalConfig::recovery_conf`] gives them.
        recovery_conf: BTreeMap<String, String>,
    },
    /// Clear the `failover` key (write `{}`) with compare-and-set on its version.
    ClearFailover {
        /// The `failover` key's version as read.
        version: u64,
    },
    /// Write `status`: the leader's WAL position, its slots' positions and the member slots to retain.
    WriteStatus {
        /// The leader's WAL position, in bytes.
        optime: u64,
        /// `status.slots`: slot name → position (`None`: left out).
        slots: Option<BTreeMap<String, u64>>,
        /// `status.retain_slots`: the member slots to keep (`None`: left out).
        retain_slots: Option<Vec<String>>,
    },
    /// Create, drop and advance replication slots (a failure is logged; the loop goes on).
    SyncSlots(SlotPlan),
    /// Copy logical slots from the leader into this standby (stops and starts it).
    CopyLogicalSlots {
        /// The leader to copy from.
        source: Upstream,
        /// The logical slots to copy.
        names: Vec<String>,
    },
    /// Write the timeline history, compare-and-set on the version read.
    WriteHistory {
        /// The whole history: the entries read and the new ones after them.
        history: Vec<HistoryEntry>,
        /// The `history` key's version as read; `None` when it was absent (the write is then unconditional).
        version: Option<u64>,
    },
    /// Write `failsafe`: every member's api_url.
    WriteFailsafe(BTreeMap<String, String>),
    /// Write the `sync` key with compare-and-set on the version read (`None`: it must not exist). Losing the race
    /// stops the list: the actions after it assumed the key it wrote.
    WriteSync {
        /// The new value of the key.
        state: SyncState,
        /// The `sync` key's version as read; `None` when it was absent.
        version: Option<u64>,
    },
    /// Set `synchronous_standby_names` as the leader manages it (`None`: back to the configured value).
    SetSyncStandbyNames(Option<String>),
}

impl Action {
    /// Actions that change what PostgreSQL is doing (a role change for callbacks and logs).
    pub fn touches_postgres(&self) -> bool {
        matches!(
            self,
            Action::Bootstrap
                | Action::CloneFrom(_)
                | Action::RestoreReplica
                | Action::StartPrimary
                | Action::StartReplica(_)
                | Action::Promote
                | Action::Stop(_)
                | Action::StopOrKill { .. }
                | Action::Fence
                | Action::Follow(_)
                | Action::Rewind(_)
                | Action::Reinitialize(_)
                | Action::Restart
                | Action::CopyLogicalSlots { .. }
        )
    }
}

impl Decision {
    /// A loop that only keeps things as they are (renews the lock, publishes the WAL position): Patroni's
    /// heartbeat line ("no action. I am (node1), the leader with the lock"), which a log may write once.
    pub fn is_heartbeat(&self) -> bool {
        self.actions.iter().all(|a| {
            matches!(
                a,
                Action::RenewLock | Action::WriteStatus { .. } | Action::SyncSlots(_)
            )
        })
    }
}

/// The outcome of one decision: what to do, in order, and why in words a DBA reads in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What to do, in order; the driver stops at the first that does not succeed.
    pub actions: Vec<Action>,
    /// Why, in words a DBA reads in the log, e.g. `no action. I am (node1), the leader with the lock`.
    pub reason: String,
    /// Run the next loop at once instead of after loop_wait (a step of a multi-loop change is done).
    pub rerun_now: bool,
    /// The reason is a warning a DBA must see (logged at WARNING, as Patroni logs it).
    pub warning: bool,
}

impl Decision {
    /// A decision with `actions` and `reason`: no rerun, not a warning.
    pub fn new(actions: Vec<Action>, reason: impl Into<String>) -> Decision {
        Decision {
            actions,
            reason: reason.into(),
            rerun_now: false,
            warning: false,
        }
    }
    /// A decision whose reason is a warning a DBA must see.
    pub fn warning(actions: Vec<Action>, reason: impl Into<String>) -> Decision {
        Decision {
            warning: true,
            ..Decision::new(actions, reason)
        }
    }
    /// A decision to do nothing, and why.
    pub fn none(reason: impl Into<String>) -> Decision {
        Decision::new(Vec::new(), reason)
    }
    /// The same decision, with the next loop to run at once.
    pub fn then_rerun(mut self) -> Decision {
        self.rerun_now = true;
        self
    }
}
