//! Everything the decision looks at: one immutable snapshot per loop, time included.

use crate::dcs::DcsError;
use crate::model::{Cluster, GlobalConfig, Tags, Timing};
use crate::pg::PgObservation;
use crate::time::Millis;

/// Who this node is, as its member key tells the others (Patroni's member fields).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeIdentity {
    /// The member name: unique in the cluster; the key `members/<name>`, the leader key's value and (sanitized)
    /// this node's replication slot on the others.
    pub name: String,
    /// `postgres://host:port/postgres`: where replicas clone and stream from when this node leads. Required.
    pub conn_url: String,
    /// `http://host:port/patroni`: this node's REST API. Empty when the product serves none; the cluster still
    /// works, but in failsafe mode a leader cannot be confirmed by a member it cannot ask, the quorum race counts
    /// this member's key instead of its live answer, and patronictl-style tools show no API for it.
    pub api_url: String,
    /// Patroni's tags (`nofailover`, `failover_priority`, `nosync`, `clonefrom`, ...).
    pub tags: Tags,
    /// The software version shown in the member key (`patronictl list` and `GET /patroni` show it); the node
    /// builder puts ha-core's version here.
    pub version: String,
}

/// Failsafe inputs the driver gathered over the REST API (Patroni's `POST /failsafe`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FailsafeInput {
    /// As the leader with an unreachable DCS: every member of the `failsafe` key accepted us, asked at this moment.
    pub confirmed_at: Option<Millis>,
    /// As a replica: a leader that asked us to accept it, and until when that holds.
    pub accepted_leader: Option<(String, Millis)>,
    /// As the leader, with `confirmed_at`: each member's WAL position, as it answered.
    pub member_lsns: std::collections::BTreeMap<String, u64>,
    /// As a replica: the positions of the leader's replication slots it sent with its last request.
    pub leader_slots: Option<std::collections::BTreeMap<String, u64>>,
}

/// Operator requests that reached this node through its REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requests {
    /// `POST /restart`: restart PostgreSQL.
    pub restart: bool,
    /// `POST /reinitialize`: wipe the data directory and clone it again from the leader.
    pub reinitialize: bool,
}

/// What the driver remembers between loops, read-only to the decision.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalState {
    /// We hold the leader lock and may act as primary until this instant (lease sent + ttl − safety margin).
    pub lease_deadline: Option<Millis>,
    /// PostgreSQL has not answered since this instant.
    pub unresponsive_since: Option<Millis>,
    /// When this node last fenced its own PostgreSQL because it stopped answering. For one ttl afterwards the node
    /// stays out of a leader race: the server it just killed was hung, so another member should take over.
    pub fenced_at: Option<Millis>,
    /// The `config` version whose parameters were applied to PostgreSQL.
    pub applied_config_version: Option<u64>,
    /// The timing in force (from the last config read, kept for when the DCS is unreachable).
    pub timing: Timing,
    /// The last configuration read from the DCS (for when it is unreachable).
    pub last_config: GlobalConfig,
    /// What the failsafe exchange over REST gave this loop.
    pub failsafe: FailsafeInput,
    /// The operator requests pending this loop.
    pub requests: Requests,
    /// When this daemon started: a restarted daemon has forgotten any failsafe promise it made.
    pub started_at: Millis,
    /// A replica method works without a running member (a restore from a backup: Patroni's `no_leader`), so an
    /// empty node may become a replica while the cluster has no leader.
    pub replica_without_leader: bool,
    /// A failsafe promise (a leader accepted over `POST /failsafe`) survives a restart of this daemon, and
    /// [`FailsafeInput::accepted_leader`] already holds any still running. Otherwise a daemon that just started
    /// cannot know what it promised before, and sits out the first ttl of a failsafe cluster without a leader.
    pub failsafe_promises_kept: bool,
    /// This node's WAL position in the previous loop (`primary_race_backoff`: is it still receiving?).
    pub prev_wal_lsn: Option<u64>,
    /// Since when the DCS has shown no leader, continuously.
    pub no_leader_since: Option<Millis>,
    /// As the leader: since when this node's PostgreSQL has been down (stopped, crashed or still starting),
    /// continuously; `primary_start_timeout` counts from here. `None` while it runs or another node leads.
    pub primary_down_since: Option<Millis>,
    /// As the leader: each member slot name and when its member was last seen (`status.retain_slots`, kept for
    /// `member_slots_ttl`); see [`crate::decision::slots::remember_members`].
    pub member_slots_seen: std::collections::BTreeMap<String, Millis>,
    /// As the leader: this server's WAL position right after it last changed `synchronous_standby_names` (a
    /// standby newly listed has caught up once it flushed past it; `None` since this daemon started).
    pub sync_names_changed_lsn: Option<u64>,
    /// As a primary: the furthest WAL position it reached in a loop that could not publish it (`status` not
    /// written: the DCS away, failsafe mode keeping it primary), until a `status` write succeeds. Commits it
    /// acknowledged then reach past what the `status` key says, so a standby counts as caught up only past this.
    pub unpublished_lsn: Option<u64>,
    /// This node's own `postgresql.use_pg_rewind`: when set it wins over the cluster configuration's, as Patroni's
    /// local configuration wins over the dynamic one ([`LocalState::use_pg_rewind`]).
    pub own_use_pg_rewind: Option<bool>,
    /// This node's own `postgresql.remove_data_directory_on_*` settings (the cluster configuration may set them
    /// too: either one allows the wipe).
    pub remove_data: RemoveData,
    /// The last `pg_rewind` of this node failed, and nothing has rejoined it since: it is not run again (Patroni
    /// marks the rewind failed and waits for `remove_data_directory_on_rewind_failure` or an operator).
    pub rewind_failed: bool,
}

impl LocalState {
    /// Whether a diverged data directory is rewound: this node's own `use_pg_rewind` if it has one, else the
    /// cluster's.
    pub fn use_pg_rewind(&self, cfg: &crate::model::GlobalConfig) -> bool {
        self.own_use_pg_rewind
            .unwrap_or_else(|| cfg.use_pg_rewind())
    }
}

/// When a node may wipe its data directory and clone it again instead of keeping it (Patroni's
/// `remove_data_directory_on_rewind_failure` and `remove_data_directory_on_diverged_timelines`, both off by default:
/// a diverged former primary keeps its data for the operator unless told otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RemoveData {
    /// `remove_data_directory_on_rewind_failure`: after a failed `pg_rewind`.
    pub on_rewind_failure: bool,
    /// `remove_data_directory_on_diverged_timelines`: when it diverged and `pg_rewind` is off.
    pub on_diverged_timelines: bool,
}

/// One loop's input.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// This node.
    pub me: &'a NodeIdentity,
    /// Monotonic time of this loop.
    pub now: Millis,
    /// Wall clock of this loop (for scheduled switchovers).
    pub unix_ms: i64,
    /// The cluster snapshot, or why the DCS could not be read.
    pub dcs: Result<&'a Cluster, &'a DcsError>,
    /// The local PostgreSQL as observed this loop.
    pub pg: &'a PgObservation,
    /// What the driver remembers between loops.
    pub local: &'a LocalState,
    /// The other members' live answers, when the driver asked them (no leader, quorum mode, a
    /// [`PeerProbe`](crate::driver::PeerProbe) configured).
    pub peers: Option<&'a std::collections::BTreeMap<String, crate::driver::PeerStatus>>,
}

impl<'a> Observation<'a> {
    /// We hold a lease that is still valid now.
    pub fn holds_lease(&self) -> bool {
        self.local.lease_deadline.map_or(false, |d| self.now < d)
    }
}
