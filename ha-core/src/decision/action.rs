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
        confirmed_at: Millis,
    },
    StartPrimary,
    StartReplica(Option<Upstream>),
    /// Promote the local standby. The driver refuses it unless this node holds a valid lease.
    Promote,
    Stop(StopMode),
    /// SIGKILL the postmaster and its backends: for a server that does not answer.
    Fence,
    Follow(Upstream),
    Rewind(Upstream),
    /// Wipe and clone again.
    Reinitialize(Upstream),
    Restart,
    /// Apply the cluster-wide parameters of config version `version`.
    ApplyConfig {
        version: u64,
        parameters: BTreeMap<String, String>,
    },
    /// Clear the `failover` key (write `{}`) with compare-and-set on its version.
    ClearFailover {
        version: u64,
    },
    /// Write `status`: the leader's WAL position, its slots' positions and the member slots to retain.
    WriteStatus {
        optime: u64,
        slots: Option<BTreeMap<String, u64>>,
        retain_slots: Option<Vec<String>>,
    },
    /// Create, drop and advance replication slots (a failure is logged; the loop goes on).
    SyncSlots(SlotPlan),
    /// Copy logical slots from the leader into this standby (stops and starts it).
    CopyLogicalSlots {
        source: Upstream,
        names: Vec<String>,
    },
    /// Write the timeline history, compare-and-set on the version read.
    WriteHistory {
        history: Vec<HistoryEntry>,
        version: Option<u64>,
    },
    /// Write `failsafe`: every member's api_url.
    WriteFailsafe(BTreeMap<String, String>),
    /// Write the `sync` key with compare-and-set on the version read (`None`: it must not exist). Losing the race
    /// stops the list: the actions after it assumed the key it wrote.
    WriteSync {
        state: SyncState,
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
    pub actions: Vec<Action>,
    pub reason: String,
    /// Run the next loop at once instead of after loop_wait (a step of a multi-loop change is done).
    pub rerun_now: bool,
    /// The reason is a warning a DBA must see (logged at WARNING, as Patroni logs it).
    pub warning: bool,
}

impl Decision {
    pub fn new(actions: Vec<Action>, reason: impl Into<String>) -> Decision {
        Decision {
            actions,
            reason: reason.into(),
            rerun_now: false,
            warning: false,
        }
    }
    pub fn none(reason: impl Into<String>) -> Decision {
        Decision::new(Vec::new(), reason)
    }
    pub fn then_rerun(mut self) -> Decision {
        self.rerun_now = true;
        self
    }
}
