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
    pub value: T,
    pub version: u64,
}

/// `leader` key: the name of the lock holder.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    pub name: String,
    pub version: u64,
    /// The lease/session that owns the key, where the backend has one.
    pub session: Option<String>,
}

/// `failover` key: a requested switchover (`leader` set) or failover, possibly scheduled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
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
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub quorum: Option<u64>,
    #[serde(default)]
    pub sync_standby: Option<String>,
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
    #[serde(default, deserialize_with = "lenient::opt_u64")]
    pub optime: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_slots: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One consistent read of the cluster prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// `initialize`: the system identifier, `Some("")` while a bootstrap runs, `None` before anyone won the race.
    pub initialize: Option<String>,
    pub config: Option<Versioned<GlobalConfig>>,
    pub leader: Option<Leader>,
    pub members: Vec<Member>,
    pub failover: Option<Versioned<Failover>>,
    pub sync: Option<Versioned<SyncState>>,
    pub history: Option<Versioned<Vec<HistoryEntry>>>,
    pub status: Option<Status>,
    pub failsafe: Option<BTreeMap<String, String>>,
}

impl Cluster {
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.name.as_str())
    }
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
