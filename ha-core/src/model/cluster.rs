//! The cluster snapshot: everything read from the DCS in one load, immutable for the rest of the loop.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::config::GlobalConfig;
use super::lenient;
use super::member::Member;

/// A value with the version the DCS gave it (etcd mod_revision, Consul ModifyIndex, ZooKeeper znode version):
/// the version a compare-and-set must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The value as decoded.
    pub value: T,
    /// The DCS version of the value, to pass to a compare-and-set.
    pub version: u64,
}

/// `leader` key: the name of the lock holder.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    /// The member name of the lock holder (the key's value).
    pub name: String,
    /// The DCS version of the key: [`crate::dcs::Dcs::watch_leader`] compares it to see a change.
    pub version: u64,
    /// The lease/session that owns the key, where the backend has one.
    pub session: Option<String>,
}

/// `failover` key: a requested switchover (`leader` set) or failover, possibly scheduled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    /// The leader the request was made against (a switchover): only that node may carry it out; `None` for a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The candidate to take over; `None`: the leader picks a healthy replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// When to switch over: ISO 8601 with a time zone, e.g. `2026-01-01T03:00:00+00:00`; `None`: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    /// Every other field, kept as read so a rewrite loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Failover {
    /// `{}` means no request, as Patroni writes it when clearing.
    pub fn is_empty(&self) -> bool {
        self.leader.is_none() && self.member.is_none() && self.scheduled_at.is_none()
    }

    /// Parses the JSON form or the legacy `leader:candidate` form.
    pub fn parse(raw: &str) -> Result<Failover, serde_json::Error> {
        let t = raw.trim();
        if !t.starts_with('{') {
            if let Some((l, m)) = t.split_once(':') {
                let opt = |s: &str| {
                    if s.is_empty() {
                        None
                    } else {
                        Some(s.to_string())
                    }
                };
                return Ok(Failover {
                    leader: opt(l),
                    member: opt(m),
                    ..Default::default()
                });
            }
        }
        super::codec::json_object(t)
    }

    /// `scheduled_at` in ms since the epoch; `Err` with the text when it does not parse as ISO 8601 with a zone.
    pub fn scheduled_at_unix_ms(&self) -> Option<Result<i64, String>> {
        self.scheduled_at.as_ref().map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.timestamp_millis())
                .map_err(|e| format!("scheduled_at {s:?}: {e}"))
        })
    }
}

/// `sync` key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncState {
    /// The leader that wrote the key; `None` or empty: synchronous replication is not set up.
    #[serde(default)]
    pub leader: Option<String>,
    /// Quorum commit only: how many of the voters (`sync_standby`) a candidate must see at or behind its own
    /// position to be elected (see [`crate::decision::quorum`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub quorum: Option<u64>,
    /// Patroni's `sync_standby`: the synchronous standbys (in quorum mode, the voters), comma-separated; see
    /// [`SyncState::members`].
    #[serde(default)]
    pub sync_standby: Option<String>,
    /// Every other field, kept as read so a rewrite loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SyncState {
    /// No leader recorded: synchronous replication has not been set up (any node may be elected).
    pub fn is_empty(&self) -> bool {
        self.leader.as_deref().map_or(true, str::is_empty)
    }
    /// The synchronous standbys the key names (`sync_standby` is a comma-separated list).
    pub fn members(&self) -> Vec<String> {
        self.sync_standby
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
    /// Patroni's `SyncState.matches`: `name` is a synchronous standby, or (with `check_leader`) the leader the
    /// key records.
    pub fn matches(&self, name: &str, check_leader: bool) -> bool {
        self.members().iter().any(|m| m == name)
            || (check_leader && self.leader.as_deref() == Some(name))
    }
}

/// One `history` entry: `[timeline, lsn, reason, timestamp, new_leader]` (older entries have fewer items).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HistoryEntry(pub Vec<Value>);

impl HistoryEntry {
    /// An entry as the leader writes it when it finds a timeline switch: `timeline` ended at `lsn` for `reason`, at
    /// `timestamp` (ISO 8601), and `new_leader` took over.
    pub fn new(timeline: u64, lsn: u64, reason: &str, timestamp: &str, new_leader: &str) -> Self {
        HistoryEntry(vec![
            timeline.into(),
            lsn.into(),
            reason.into(),
            timestamp.into(),
            new_leader.into(),
        ])
    }
    /// The timeline this entry closed.
    pub fn timeline(&self) -> Option<u64> {
        self.0.first().and_then(Value::as_u64)
    }
    /// The LSN at which that timeline ended (where the next one forked).
    pub fn lsn(&self) -> Option<u64> {
        self.0.get(1).and_then(Value::as_u64)
    }
}

/// `status` key: the leader's last WAL position (and slots).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Patroni's `optime`: the leader's WAL position when it last wrote the key, in bytes.
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub optime: Option<u64>,
    /// Patroni's `slots`: slot name → position on the leader, for the nodes that keep copies of those slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<BTreeMap<String, u64>>,
    /// Patroni's `retain_slots`: the member slot names every node that may lead keeps, even for a member that is gone
    /// (until `member_slots_ttl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_slots: Option<Vec<String>>,
    /// Every other field, kept as read so a rewrite loses nothing.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One consistent read of the cluster prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// `initialize`: the system identifier, `Some("")` while a bootstrap runs, `None` before anyone won the race.
    pub initialize: Option<String>,
    /// `config`: the dynamic configuration; `None` before the first leader wrote it (or when it does not parse).
    pub config: Option<Versioned<GlobalConfig>>,
    /// `leader`: the lock holder; `None` while nobody holds the lock.
    pub leader: Option<Leader>,
    /// `members/*`: every member key that parsed, sorted by name.
    pub members: Vec<Member>,
    /// `failover`: a switchover or failover request, or `{}` (see [`Cluster::pending_failover`]).
    pub failover: Option<Versioned<Failover>>,
    /// `sync`: who may be promoted under synchronous replication.
    pub sync: Option<Versioned<SyncState>>,
    /// `history`: the closed timelines, oldest first.
    pub history: Option<Versioned<Vec<HistoryEntry>>>,
    /// `status`: the leader's last WAL position and slots (or the legacy `optime/leader` key).
    pub status: Option<Status>,
    /// `failsafe`: member name → REST API URL, the members the leader must reach in failsafe mode.
    pub failsafe: Option<BTreeMap<String, String>>,
    /// The version of a `config` key that is present but not a valid configuration (`config` is then `None`): the
    /// leader must not take it for an absent key and overwrite it with its `bootstrap.dcs`, and every node keeps
    /// the configuration it last read until someone repairs the key.
    pub config_unparsable: Option<u64>,
}

impl Cluster {
    /// The member key of `name`, if it exists.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
    /// The lock holder's name, if anyone holds the lock.
    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }
    /// The lock holder's member key, if both exist.
    pub fn leader_member(&self) -> Option<&Member> {
        self.leader_name().and_then(|n| self.member(n))
    }
    /// The configuration in force: the DCS value, or defaults when the key is absent.
    pub fn global_config(&self) -> GlobalConfig {
        self.config
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_default()
    }
    /// The leader's last known WAL position (`status.optime`).
    pub fn last_leader_lsn(&self) -> Option<u64> {
        self.status.as_ref().and_then(|s| s.optime)
    }
    /// The cluster's current timeline as the history says: one past the last closed timeline, 1 without history.
    pub fn timeline(&self) -> u64 {
        self.history
            .as_ref()
            .and_then(|h| h.value.iter().filter_map(HistoryEntry::timeline).max())
            .map(|t| t + 1)
            .unwrap_or(1)
    }
    /// Where `timeline` ended according to the history, if it did.
    pub fn timeline_end_lsn(&self, timeline: u64) -> Option<u64> {
        self.history
            .as_ref()?
            .value
            .iter()
            .find(|e| e.timeline() == Some(timeline))
            .and_then(HistoryEntry::lsn)
    }
    /// The pending switchover/failover request, if the key holds one.
    pub fn pending_failover(&self) -> Option<&Versioned<Failover>> {
        self.failover.as_ref().filter(|f| !f.value.is_empty())
    }
}
