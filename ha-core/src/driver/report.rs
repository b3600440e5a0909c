//! The record of one loop ([`CycleReport`]) and of each action in it ([`Outcome`]): what the REST API, the metrics
//! and the simulator's invariants read.

use crate::dcs::DcsError;
use crate::decision::{Action, Decision};
use crate::model::{Cluster, GlobalConfig, Tags};
use crate::pg::PgObservation;
use crate::time::Millis;

/// What one executed action did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It did what was asked.
    Done,
    /// A race was lost or the lock is not ours: the rest of the list was skipped.
    Lost,
    /// It failed, with the error: the rest of the list was skipped.
    Failed(String),
    /// The driver refused to run it (a promotion without a valid lease).
    Refused(String),
}

/// The record of one loop.
#[derive(Debug, Clone)]
pub struct CycleReport {
    /// When the loop started, on the driver's monotonic clock.
    pub now: Millis,
    /// What the decision asked for, and why.
    pub decision: Decision,
    /// The actions run, in order, with their outcomes; the list ends at the first that was not [`Outcome::Done`].
    pub executed: Vec<(Action, Outcome)>,
    /// The snapshot the decision saw, or the DCS error.
    pub cluster: Result<Cluster, DcsError>,
    /// PostgreSQL as the loop left it (observed again after an action that changed it).
    pub pg: PgObservation,
    /// When the next loop is due.
    pub next_wake: Millis,
    /// Until when this node may act as the leader (its lease, counted from the last renewal sent), if it holds one.
    /// A REST API answering `/primary` checks it against the clock, so a daemon that was frozen does not report a
    /// lock it has lost before its next loop ran.
    pub lease_deadline: Option<Millis>,
    /// The tags this loop decided with and published: they change when the configuration file is re-read.
    pub tags: Tags,
    /// The cluster configuration this loop decided with: the DCS's, or the last one known while it is
    /// unreachable (failsafe mode, pause and timing still apply then).
    pub config: GlobalConfig,
}

impl CycleReport {
    /// This loop promoted the local PostgreSQL.
    pub fn promoted(&self) -> bool {
        done(&self.executed, &Action::Promote)
    }

    /// This loop took the leader lock: its snapshot, loaded before, does not show it yet.
    pub fn took_lock(&self) -> bool {
        done(&self.executed, &Action::AcquireLock)
    }
}

/// `action` ran in this list of executed actions and succeeded.
pub(super) fn done(executed: &[(Action, Outcome)], action: &Action) -> bool {
    executed
        .iter()
        .any(|(a, o)| a == action && *o == Outcome::Done)
}
