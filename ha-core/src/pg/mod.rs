//! PostgreSQL as the HA logic needs it. `pg-control` implements it over PostgreSQL's binaries;
//! [`crate::sim::SimPg`] simulates it.

use std::collections::BTreeMap;

use async_trait::async_trait;

mod observation;
pub use observation::*;

/// PostgreSQL's (and Patroni's) text form of an LSN: `0/4000060`.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Where `history` (a server's timeline switches, as its `.history` files hold them) says `timeline` ended; `None`
/// if it does not.
pub fn timeline_end(history: &[TimelineSwitch], timeline: u64) -> Option<u64> {
    history
        .iter()
        .find(|sw| sw.timeline == timeline)
        .map(|sw| sw.lsn)
}

/// How to stop PostgreSQL (`pg_ctl stop -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `smart`: waits until every client has disconnected.
    Smart,
    /// `fast`: disconnects the clients and shuts down cleanly; a primary first sends its WAL to the connected standbys.
    Fast,
    /// `immediate`: exits at once, without a checkpoint; the next start runs crash recovery.
    Immediate,
}

/// Where to replicate from: a member's name and libpq connection URL, or a standby cluster's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The member name, matched against [`PgObservation::upstream`]; for a standby cluster's source, a label such as
    /// `standby_cluster db1:5432`.
    pub name: String,
    /// `postgres://host:port/...`; empty for a standby cluster that only restores from the archive.
    pub conn_url: String,
    /// `Some`: the source is outside this cluster (`standby_cluster`); this node is its standby leader.
    pub remote: Option<RemoteSource>,
}

impl Upstream {
    /// A member of this cluster.
    pub fn member(name: impl Into<String>, conn_url: impl Into<String>) -> Upstream {
        Upstream {
            name: name.into(),
            conn_url: conn_url.into(),
            remote: None,
        }
    }
}

/// How a standby cluster's leader follows its source (`standby_cluster` in the configuration): the slot it streams
/// from there (the source's, never made by hactl) and the recovery settings that replace the cluster's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteSource {
    /// `primary_slot_name`: the slot on the source to stream from; `None`: stream without a slot.
    pub primary_slot_name: Option<String>,
    /// `restore_command`: fetches WAL from the source's archive.
    pub restore_command: Option<String>,
    /// `archive_cleanup_command`: run at each restartpoint, to prune the archive.
    pub archive_cleanup_command: Option<String>,
    /// `recovery_min_apply_delay`: how long replay lags behind on purpose, as PostgreSQL writes it (`5min`).
    pub recovery_min_apply_delay: Option<String>,
    /// `create_replica_methods`: the methods, in order, that copy the source onto a member of the standby cluster
    /// (names of the node's `postgresql.<name>` sections, or `basebackup`); empty: the node's own
    /// `postgresql.create_replica_methods`. Patroni keeps the two lists apart because a standby cluster is often
    /// seeded from the source's backup repository while its own replicas copy their leader.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub create_replica_methods: Vec<String>,
}

/// What went wrong driving PostgreSQL. Each says what to fix; none leaves the data directory half-deleted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// A call did not finish in time: PostgreSQL may be hung.
    #[error("PostgreSQL did not answer within {timeout_ms} ms during {operation}")]
    Timeout {
        /// What was being done, e.g. `promote`.
        operation: String,
        /// The timeout that ran out, in ms.
        timeout_ms: u64,
    },
    /// A call failed, with PostgreSQL's or the tool's message.
    #[error("{operation} failed: {reason}")]
    Failed {
        /// What was being done, e.g. `pg_rewind`.
        operation: String,
        /// Why it failed.
        reason: String,
    },
    /// The setup cannot work (binaries, data directory owner, port in use, credentials...): the operator must fix it.
    #[error("bad PostgreSQL setup: {0}")]
    Setup(String),
    /// A call was not attempted because it is unsafe or impossible now (a running server to clone over, a data
    /// directory of another cluster).
    #[error("refusing {operation}: {reason}")]
    Refused {
        /// What was asked, e.g. `clone`.
        operation: String,
        /// Why it is not safe or possible now.
        reason: String,
    },
}

impl PgError {
    /// A [`PgError::Failed`] for `operation`.
    pub fn failed(operation: &str, reason: impl Into<String>) -> PgError {
        PgError::Failed {
            operation: operation.to_string(),
            reason: reason.into(),
        }
    }
}

/// The result of applying configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamChange {
    /// Parameters whose new value needs a restart to take effect.
    pub pending_restart: Vec<String>,
}

/// Drives one local PostgreSQL. Every call is bounded by its own timeout: a hung PostgreSQL must never hang
/// the caller, it makes the call fail with [`PgError::Timeout`] instead.
#[async_trait]
pub trait PgControl: Send + Sync {
    /// Where the other members reach this server (`postgres://host:port/postgres`), if this control knows it: the
    /// node builder publishes it as the member's `conn_url` unless told otherwise.
    fn conn_url(&self) -> Option<String> {
        None
    }
    /// Looks at the server: never fails, an unanswered query shows as [`PgRunState::Unresponsive`].
    async fn observe(&self) -> PgObservation;
    /// Where the server's WAL stands at this moment, by one short query; `None` when it does not answer (or this
    /// control cannot tell). A REST API reports it (Patroni queries PostgreSQL at each `GET /patroni`): the others
    /// count quorum votes from these answers, and a loop's observation can be `loop_wait` old.
    async fn wal_position(&self) -> Option<WalPosition> {
        None
    }
    /// The timeline and history of `source`, a standby cluster's source in another cluster (one short query
    /// there); `None` when it does not answer or this control cannot ask. Without it a standby leader whose WAL
    /// went past the source's fork point (the source failed over and lost what this site had already replayed)
    /// cannot be told apart from one that merely lost its connection, and is left as it is.
    async fn source_lineage(&self, _source: &Upstream) -> Option<Lineage> {
        None
    }
    /// initdb, start as primary, create the roles; returns the new system identifier.
    async fn bootstrap(&self) -> Result<String, PgError>;
    /// Copies the data directory from a running member (pg_basebackup) and configures it as its replica.
    async fn clone_from(&self, source: &Upstream) -> Result<(), PgError>;
    /// Makes a replica without a running member to copy from (a restore from a backup), if a method for it is
    /// configured; the default has none.
    async fn restore_replica(&self) -> Result<(), PgError> {
        Err(PgError::failed(
            "restore_replica",
            "no replica method works without a running leader",
        ))
    }
    /// Starts as a primary (no standby.signal). May return while the server is still starting (a long crash
    /// recovery), so that the caller keeps renewing its leader lock: [`PgControl::observe`] then says
    /// [`PgRunState::Starting`], and the decision waits up to `primary_start_timeout`.
    async fn start_primary(&self) -> Result<(), PgError>;
    /// Starts as a standby of `upstream` (or with no upstream yet).
    async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<(), PgError>;
    /// Stops the server in `mode` and waits until it has exited; `Ok` at once when none runs.
    async fn stop(&self, mode: StopMode) -> Result<(), PgError>;
    /// Stops (fast) and starts again in the same role; a stopped server is started in the role its data directory
    /// is configured for.
    async fn restart(&self) -> Result<(), PgError>;
    /// Makes the running server re-read its configuration files.
    async fn reload(&self) -> Result<(), PgError>;
    /// Promotes a standby and waits until it is out of recovery.
    async fn promote(&self) -> Result<(), PgError>;
    /// Points a running standby at a new upstream (a reload where the server allows it).
    async fn follow(&self, upstream: &Upstream) -> Result<(), PgError>;
    /// pg_rewind from `source` (the data directory must be stopped).
    async fn rewind(&self, source: &Upstream) -> Result<(), PgError>;
    /// Wipes the data directory and clones again from `source` (never a directory of another cluster).
    async fn reinitialize(&self, source: &Upstream) -> Result<(), PgError>;
    /// Writes the cluster-wide parameters and recovery settings (Patroni's `postgresql.recovery_conf`, used
    /// while the server is a standby) into the managed configuration and reloads.
    async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
        recovery_conf: &BTreeMap<String, String>,
    ) -> Result<ParamChange, PgError>;
    /// Sets `synchronous_standby_names` as the leader manages it (overriding any configured value; `Some("")`:
    /// asynchronous) and reloads; `None` gives the parameter back to the configuration.
    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError>;
    /// Creates, drops and advances replication slots as planned. Each step is tried even when an earlier one failed;
    /// the error names every step that failed. (No default: a wrapper that forgot to pass it on would silently
    /// keep no slots.) A control that reports no slots in [`PgObservation::slots`] is never asked.
    async fn apply_slots(&self, plan: &SlotPlan) -> Result<(), PgError>;
    /// Copies logical slots from the primary `source` into this standby (PostgreSQL before 17 cannot create a
    /// logical slot on a standby): reads each slot's state file on the primary, stops this server, writes the files
    /// and starts it again as the same standby. Patroni's `copy_logical_slots`.
    async fn copy_logical_slots(&self, source: &Upstream, names: &[String]) -> Result<(), PgError>;
    /// Kills the postmaster and every backend at once (SIGKILL): the way to stop a server that does not answer.
    async fn fence(&self) -> Result<(), PgError>;
    /// Resolves once no server runs: when the one running now exits by itself (a crash, a kill), or at once if
    /// none runs. The driver waits on it only while its last observation saw a live server, so it reacts to a
    /// death at once instead of at its next loop. The default never resolves: without a cheap way to know, the
    /// next loop finds out.
    async fn exited(&self) {
        std::future::pending::<()>().await
    }
}

/// A PostgreSQL control shared behind an `Arc` (the driver owns one by value; a REST API, a reload path or a
/// product's own code holds another `Arc` of it). Every call goes through unchanged.
#[async_trait]
impl<T: PgControl + ?Sized> PgControl for std::sync::Arc<T> {
    fn conn_url(&self) -> Option<String> {
        (**self).conn_url()
    }
    async fn observe(&self) -> PgObservation {
        (**self).observe().await
    }
    async fn wal_position(&self) -> Option<WalPosition> {
        (**self).wal_position().await
    }
    async fn source_lineage(&self, source: &Upstream) -> Option<Lineage> {
        (**self).source_lineage(source).await
    }
    async fn bootstrap(&self) -> Result<String, PgError> {
        (**self).bootstrap().await
    }
    async fn clone_from(&self, source: &Upstream) -> Result<(), PgError> {
        PgControl::clone_from(&**self, source).await
    }
    async fn restore_replica(&self) -> Result<(), PgError> {
        (**self).restore_replica().await
    }
    async fn start_primary(&self) -> Result<(), PgError> {
        (**self).start_primary().await
    }
    async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<(), PgError> {
        (**self).start_replica(upstream).await
    }
    async fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        (**self).stop(mode).await
    }
    async fn restart(&self) -> Result<(), PgError> {
        (**self).restart().await
    }
    async fn reload(&self) -> Result<(), PgError> {
        (**self).reload().await
    }
    async fn promote(&self) -> Result<(), PgError> {
        (**self).promote().await
    }
    async fn follow(&self, upstream: &Upstream) -> Result<(), PgError> {
        (**self).follow(upstream).await
    }
    async fn rewind(&self, source: &Upstream) -> Result<(), PgError> {
        (**self).rewind(source).await
    }
    async fn reinitialize(&self, source: &Upstream) -> Result<(), PgError> {
        (**self).reinitialize(source).await
    }
    async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
        recovery_conf: &BTreeMap<String, String>,
    ) -> Result<ParamChange, PgError> {
        (**self).apply_parameters(parameters, recovery_conf).await
    }
    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError> {
        (**self).set_synchronous_standby_names(value).await
    }
    async fn apply_slots(&self, plan: &SlotPlan) -> Result<(), PgError> {
        (**self).apply_slots(plan).await
    }
    async fn copy_logical_slots(&self, source: &Upstream, names: &[String]) -> Result<(), PgError> {
        (**self).copy_logical_slots(source, names).await
    }
    async fn fence(&self) -> Result<(), PgError> {
        (**self).fence().await
    }
    async fn exited(&self) {
        (**self).exited().await
    }
}
