//! PostgreSQL as the HA logic needs it. `pg-control` implements it over PostgreSQL's binaries;
//! [`crate::sim::SimPg`] simulates it.

use std::collections::BTreeMap;

use async_trait::async_trait;

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

/// Whether PostgreSQL runs, as far as the observer could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgRunState {
    /// The data directory is empty or missing: the node needs bootstrap or a clone.
    Uninitialized,
    /// Cleanly stopped (or never started).
    Stopped,
    /// The postmaster is gone but left its pid file: it crashed or was killed.
    Crashed,
    /// The postmaster is alive and answered a query.
    Running,
    /// The postmaster is alive but did not answer within the timeout (stopped by a signal, stuck on I/O...).
    Unresponsive,
    /// Starting up or in crash recovery: alive, not yet accepting queries.
    Starting,
}

/// One timeline switch from the server's `.history` files: `timeline` ended at `lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineSwitch {
    /// The timeline that ended.
    pub timeline: u64,
    /// Where it ended (where the next timeline forked off), in bytes.
    pub lsn: u64,
}

/// One row of `pg_stat_replication` on a primary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicationRow {
    /// The standby's `application_name`: its member name.
    pub application_name: String,
    /// The role the standby connected as.
    pub usename: Option<String>,
    /// The standby's address; `None` over a Unix socket.
    pub client_addr: Option<String>,
    /// `startup`, `catchup`, `streaming`, `backup`, `stopping`.
    pub state: String,
    /// `async`, `potential`, `sync`, `quorum`.
    pub sync_state: String,
    /// Its priority as a `FIRST n` synchronous standby (0: not a candidate); meaningless under `ANY n`.
    pub sync_priority: i32,
    /// What the standby has written (not necessarily flushed).
    pub write_lsn: Option<u64>,
    /// What the standby has flushed to disk: what a synchronous commit waits for.
    pub flush_lsn: Option<u64>,
    /// What the standby has replayed.
    pub replay_lsn: Option<u64>,
}

/// One replication slot on the local server (`pg_replication_slots`, temporary slots left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSlot {
    /// The slot name.
    pub name: String,
    /// Physical, or logical with its database and plugin.
    pub kind: crate::model::SlotKind,
    /// `restart_lsn` (`None`: the slot reserves no WAL yet).
    pub restart_lsn: Option<u64>,
    /// `confirmed_flush_lsn` of a logical slot.
    pub confirmed_flush_lsn: Option<u64>,
    /// The slot holds an `xmin` (hot_standby_feedback from a standby once connected to it).
    pub has_xmin: bool,
    /// A consumer is connected to it now.
    pub active: bool,
    /// `wal_status = 'lost'`: the WAL it needed is gone; it can only be dropped.
    pub lost: bool,
    /// hactl created (or adopted) this slot: the only kind it ever drops, besides stale logical slots on a standby.
    pub managed: bool,
}

impl LocalSlot {
    /// Where a consumer of this slot stands: `confirmed_flush_lsn` for a logical slot, `restart_lsn` otherwise.
    pub fn position(&self) -> Option<u64> {
        match self.kind {
            crate::model::SlotKind::Logical { .. } => self.confirmed_flush_lsn,
            crate::model::SlotKind::Physical => self.restart_lsn,
        }
    }
}

/// Slot changes for [`PgControl::apply_slots`], made by the decision ([`crate::decision::slots`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotPlan {
    /// Dropped first (a kind that changed is dropped, then created again in a later loop).
    pub drop: Vec<String>,
    /// Physical slots to create, reserving WAL at once.
    pub create_physical: Vec<String>,
    /// Logical slots to create (on a primary only): name, database, plugin.
    pub create_logical: Vec<(String, String, String)>,
    /// `pg_replication_slot_advance(name, lsn)`, with the slot's database for a logical slot.
    pub advance: Vec<(String, Option<String>, u64)>,
    /// Existing slots hactl now manages (the configuration names them): from now on it may drop them.
    pub adopt: Vec<String>,
}

impl SlotPlan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
            && self.create_physical.is_empty()
            && self.create_logical.is_empty()
            && self.advance.is_empty()
            && self.adopt.is_empty()
    }
}

/// Where a running server's WAL stands at one moment ([`PgControl::wal_position`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WalPosition {
    /// The server is a standby.
    pub in_recovery: bool,
    /// `pg_current_wal_lsn()` on a primary.
    pub current: Option<u64>,
    /// `pg_last_wal_receive_lsn()` on a standby (none before it streamed).
    pub receive: Option<u64>,
    /// `pg_last_wal_replay_lsn()` on a standby.
    pub replay: Option<u64>,
}

impl WalPosition {
    /// Patches `obs` (a loop's observation of the same server) with this newer position, when the server's role is
    /// still the one `obs` saw: the position only moves forward within a role, and after a role change the whole
    /// observation is stale, which the next loop mends.
    pub fn refresh(&self, obs: &mut PgObservation) {
        if !obs.is_alive() || obs.in_recovery != self.in_recovery {
            return;
        }
        if self.in_recovery {
            obs.receive_lsn = self.receive.or(obs.receive_lsn);
            obs.replay_lsn = self.replay.or(obs.replay_lsn);
            obs.lsn = obs
                .lsn
                .max(obs.receive_lsn.unwrap_or(0))
                .max(obs.replay_lsn.unwrap_or(0));
        } else if let Some(c) = self.current {
            obs.lsn = obs.lsn.max(c);
        }
    }
}

/// What the observer saw of the local PostgreSQL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PgObservation {
    /// How the server runs; `None`: not observed, read as stopped by [`PgObservation::state`].
    pub run_state: Option<PgRunState>,
    /// `pg_is_in_recovery()`; meaningful when running.
    pub in_recovery: bool,
    /// The timeline the server runs on; 0 when not known (the server is down).
    pub timeline: u64,
    /// The primary's current WAL position, or on a replica max(receive, replay).
    pub lsn: u64,
    /// On a replica: the last WAL position received from the upstream (`pg_last_wal_receive_lsn()`).
    pub receive_lsn: Option<u64>,
    /// On a replica: the last WAL position replayed (`pg_last_wal_replay_lsn()`).
    pub replay_lsn: Option<u64>,
    /// On a replica: replay is paused (`pg_is_wal_replay_paused()`).
    pub replay_paused: bool,
    /// The system identifier from pg_controldata, once the cluster exists.
    pub system_id: Option<String>,
    /// Who this replica streams from (primary_conninfo's member), if known.
    pub upstream: Option<String>,
    /// Whether the WAL receiver is streaming.
    pub streaming: bool,
    /// Parameters changed in the configuration that only a restart applies.
    pub pending_restart: Vec<String>,
    /// For those of [`PgObservation::pending_restart`] the server can tell: (value in force, value in the
    /// files), Patroni's `pending_restart_reason`.
    pub pending_restart_values: std::collections::BTreeMap<String, (String, String)>,
    /// Names of the replicas connected to this server (pg_stat_replication).
    pub replicas: Vec<String>,
    /// The server's timeline history (from pg_wal/*.history).
    pub history: Vec<TimelineSwitch>,
    /// The server's major version, e.g. 150018.
    pub server_version: Option<u32>,
    /// On a primary, one row per walsender (`pg_stat_replication`).
    pub replication: Vec<ReplicationRow>,
    /// `synchronous_standby_names` in force on this server (`None`: not known, the server does not answer).
    pub synchronous_standby_names: Option<String>,
    /// `pg_postmaster_start_time()`, in Unix milliseconds.
    pub postmaster_start_unix_ms: Option<i64>,
    /// `pg_last_xact_replay_timestamp()` on a standby, in Unix milliseconds: when the last replayed
    /// transaction committed on the primary.
    pub replayed_unix_ms: Option<i64>,
    /// The server's replication slots (`None`: not read, e.g. the server does not answer).
    pub slots: Option<Vec<LocalSlot>>,
    /// A standby cluster's leader that does not stream: its source's timeline and history, asked by the driver
    /// ([`PgControl::source_lineage`]) so the decision can tell whether this data diverged from the source (the
    /// `history` key describes this cluster only). `None` elsewhere, or when the source did not answer.
    pub source_lineage: Option<Lineage>,
}

/// A server's timeline and the switches its newest `.history` file lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    /// The timeline the server is on.
    pub timeline: u64,
    /// Where each earlier timeline ended.
    pub switches: Vec<TimelineSwitch>,
}

impl PgObservation {
    /// Where this server's timeline history says `timeline` ended (the next one forked off); `None` if it does not.
    pub fn end_of(&self, timeline: u64) -> Option<u64> {
        timeline_end(&self.history, timeline)
    }
    /// The run state, [`PgRunState::Stopped`] when not observed.
    pub fn state(&self) -> PgRunState {
        self.run_state.unwrap_or(PgRunState::Stopped)
    }
    /// The postmaster runs and answered.
    pub fn is_running(&self) -> bool {
        self.state() == PgRunState::Running
    }
    /// Running and out of recovery: this server accepts writes.
    pub fn is_primary(&self) -> bool {
        self.is_running() && !self.in_recovery
    }
    /// Running and in recovery: a standby.
    pub fn is_replica(&self) -> bool {
        self.is_running() && self.in_recovery
    }
    /// Alive in any form: a process that could still serve clients.
    pub fn is_alive(&self) -> bool {
        matches!(
            self.state(),
            PgRunState::Running | PgRunState::Unresponsive | PgRunState::Starting
        )
    }
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
