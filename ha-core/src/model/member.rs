//! A member key (`members/<name>`): what each node publishes about itself every loop.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::lenient;
use super::tags::Tags;

/// PostgreSQL state names as Patroni publishes them (`PostgresqlState`); the index is the `patroni_postgres_state` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PgStateName {
    /// Patroni's `initializing new cluster`: initdb (or the bootstrap method) is running.
    InitializingNewCluster,
    /// Patroni's `initdb failed`.
    InitdbFailed,
    /// Patroni's `running custom bootstrap script`: a `bootstrap.method` other than initdb is running.
    RunningCustomBootstrapScript,
    /// Patroni's `custom bootstrap failed`.
    CustomBootstrapFailed,
    /// Patroni's `creating replica`: the data directory is being copied from another member or a backup.
    CreatingReplica,
    /// Patroni's `running`: the postmaster runs (hactl also reports a server that stopped answering so).
    Running,
    /// Patroni's `starting`: started, not yet accepting connections.
    Starting,
    /// Patroni's `starting after custom bootstrap`.
    StartingAfterCustomBootstrap,
    /// Patroni's `start failed`.
    StartFailed,
    /// Patroni's `restarting`.
    Restarting,
    /// Patroni's `restart failed`.
    RestartFailed,
    /// Patroni's `stopping`.
    Stopping,
    /// Patroni's `stopped`: not running (cleanly stopped, an empty data directory, or crashed while paused).
    Stopped,
    /// Patroni's `stop failed`.
    StopFailed,
    /// Patroni's `crashed`: the postmaster died without a clean shutdown.
    Crashed,
}

impl PgStateName {
    /// Every state in the order of Patroni's enum: the position is the `patroni_postgres_state` metric value.
    pub const ALL: [PgStateName; 15] = [
        PgStateName::InitializingNewCluster,
        PgStateName::InitdbFailed,
        PgStateName::RunningCustomBootstrapScript,
        PgStateName::CustomBootstrapFailed,
        PgStateName::CreatingReplica,
        PgStateName::Running,
        PgStateName::Starting,
        PgStateName::StartingAfterCustomBootstrap,
        PgStateName::StartFailed,
        PgStateName::Restarting,
        PgStateName::RestartFailed,
        PgStateName::Stopping,
        PgStateName::Stopped,
        PgStateName::StopFailed,
        PgStateName::Crashed,
    ];

    /// The text written in the member key's `state`, e.g. `"creating replica"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PgStateName::InitializingNewCluster => "initializing new cluster",
            PgStateName::InitdbFailed => "initdb failed",
            PgStateName::RunningCustomBootstrapScript => "running custom bootstrap script",
            PgStateName::CustomBootstrapFailed => "custom bootstrap failed",
            PgStateName::CreatingReplica => "creating replica",
            PgStateName::Running => "running",
            PgStateName::Starting => "starting",
            PgStateName::StartingAfterCustomBootstrap => "starting after custom bootstrap",
            PgStateName::StartFailed => "start failed",
            PgStateName::Restarting => "restarting",
            PgStateName::RestartFailed => "restart failed",
            PgStateName::Stopping => "stopping",
            PgStateName::Stopped => "stopped",
            PgStateName::StopFailed => "stop failed",
            PgStateName::Crashed => "crashed",
        }
    }

    /// The value of Patroni's `patroni_postgres_state` metric.
    pub fn index(self) -> i64 {
        PgStateName::ALL
            .iter()
            .position(|s| *s == self)
            .map(|i| i as i64)
            .unwrap_or(-1)
    }

    /// The state written as `s`; `None` for a text that is not one of Patroni's states.
    pub fn parse(s: &str) -> Option<PgStateName> {
        PgStateName::ALL.iter().copied().find(|x| x.as_str() == s)
    }
}

/// A member's role as written in its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Takes writes (Patroni's older `master` is read as this).
    Primary,
    /// A standby in recovery, following the leader or another member.
    Replica,
    /// The lock holder of a standby cluster: in recovery, following the remote source.
    StandbyLeader,
    /// PostgreSQL is down: stopped while not in recovery (a demoted former primary), or crashed.
    Demoted,
    /// The data directory is empty: the node has not been bootstrapped or cloned yet.
    Uninitialized,
}

impl Role {
    /// The text written in the member key's `role`, e.g. `"standby_leader"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::StandbyLeader => "standby_leader",
            Role::Demoted => "demoted",
            Role::Uninitialized => "uninitialized",
        }
    }
    /// Accepts Patroni's old `master` spelling.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "primary" | "master" => Role::Primary,
            "replica" => Role::Replica,
            "standby_leader" => Role::StandbyLeader,
            "demoted" => Role::Demoted,
            "uninitialized" => Role::Uninitialized,
            _ => return None,
        })
    }
}

/// The JSON value of a member key. Field order follows Patroni's `touch_member`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemberData {
    /// Patroni's `conn_url`: the libpq URL where the others reach this node's PostgreSQL to clone and stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_url: Option<String>,
    /// Patroni's `api_url`: the node's REST API (`http://host:port/patroni`), asked in failsafe mode and quorum races.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Patroni's `state`: PostgreSQL's state as text; [`Member::state`] parses it into a [`PgStateName`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Patroni's `role` as text (`primary`, `replica`, ...); [`Member::role`] parses it into a [`Role`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Patroni's `version`: the software version of the daemon that wrote the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Patroni's `xlog_location`, in bytes: on a primary its current WAL position, on a replica the furthest of what it
    /// received and replayed. Absent while PostgreSQL is down.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub xlog_location: Option<u64>,
    /// Patroni's `replay_lsn` (replicas only): the WAL position replayed, in bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub replay_lsn: Option<u64>,
    /// Patroni's `receive_lsn` (replicas only): the WAL position received, in bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub receive_lsn: Option<u64>,
    /// Patroni's `replication_state` (replicas only): `streaming`, or `in archive recovery` without a WAL receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    /// Patroni's `timeline`: the timeline PostgreSQL runs on; absent while it is down.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub timeline: Option<u64>,
    /// Patroni's `tags`, filtered as [`Tags::for_member_key`] writes them; `None`: no tag to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// Patroni's `pending_restart`: `Some(true)` when a changed parameter needs a restart; absent otherwise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub pending_restart: Option<bool>,
    /// Patroni's `pause`: `Some(true)` while the cluster is in maintenance mode; absent otherwise.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub pause: Option<bool>,
    /// Every other field (`pending_restart_reason`, `scheduled_restart`, ...), kept as read so a rewrite loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A member as read from the DCS: its name (from the key), its value and the value's version.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The member name, from the key `members/<name>`.
    pub name: String,
    /// The key's value, parsed.
    pub data: MemberData,
    /// The DCS version of the value.
    pub version: u64,
}

impl Member {
    /// The role the key shows; `None` when it shows none or one this model does not know.
    pub fn role(&self) -> Option<Role> {
        self.data.role.as_deref().and_then(Role::parse)
    }
    /// The PostgreSQL state the key shows; `None` when it shows none or one this model does not know.
    pub fn state(&self) -> Option<PgStateName> {
        self.data.state.as_deref().and_then(PgStateName::parse)
    }
    /// The key shows PostgreSQL `running`.
    pub fn is_running(&self) -> bool {
        self.state() == Some(PgStateName::Running)
    }
    /// The member's tags; all defaults when the key has none.
    pub fn tags(&self) -> Tags {
        self.data.tags.clone().unwrap_or_default()
    }
    /// The WAL position this member reported (`xlog_location`), 0 if it reported none.
    pub fn lsn(&self) -> u64 {
        self.data.xlog_location.unwrap_or(0)
    }
    /// The timeline this member reported, 0 if it reported none.
    pub fn timeline(&self) -> u64 {
        self.data.timeline.unwrap_or(0)
    }
}

impl MemberData {
    /// Parses a member value; accepts Patroni's legacy form, a bare `postgres://` URL.
    pub fn parse(raw: &str) -> Result<MemberData, serde_json::Error> {
        let t = raw.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            return Ok(MemberData {
                conn_url: Some(t.to_string()),
                ..Default::default()
            });
        }
        super::codec::json_object(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patroni_replica_value_round_trips_byte_for_byte() {
        let raw = r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":67393608,"replay_lsn":67393608,"receive_lsn":67393608,"replication_state":"streaming","timeline":1}"#;
        let m = MemberData::parse(raw).unwrap();
        assert_eq!(m.xlog_location, Some(67393608));
        assert_eq!(serde_json::to_string(&m).unwrap(), raw);
    }

    #[test]
    fn legacy_bare_url_is_a_conn_url() {
        let m = MemberData::parse("postgres://10.0.0.1:5432/postgres").unwrap();
        assert_eq!(
            m.conn_url.as_deref(),
            Some("postgres://10.0.0.1:5432/postgres")
        );
    }

    #[test]
    fn state_indexes_match_patroni_metric() {
        assert_eq!(PgStateName::Running.index(), 5);
        assert_eq!(PgStateName::Crashed.index(), 14);
        assert_eq!(Role::parse("master"), Some(Role::Primary));
    }
}
