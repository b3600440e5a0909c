//! What one look at the local PostgreSQL shows ([`PgObservation`]) and the rows it is made of: run state, WAL
//! position, timeline switches, replication and slots.

use super::*;

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
