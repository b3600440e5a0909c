//! Keys and values on the wire: Patroni's layout `/<namespace>/<scope>/<key>` and a tolerant decoder that turns the raw
//! entries of any backend into a [`Cluster`]. A value that does not parse is logged and treated as absent: garbage in
//! one key must never stop the HA loop.

use std::collections::BTreeMap;

use tracing::warn;

use super::cluster::{Cluster, Failover, HistoryEntry, Leader, Status, SyncState, Versioned};
use super::config::GlobalConfig;
use super::member::{Member, MemberData};

/// The key names under the cluster prefix.
pub mod keys {
    /// `initialize`: the system identifier, written by the node that won the bootstrap race.
    pub const INITIALIZE: &str = "initialize";
    /// `config`: the dynamic configuration ([`crate::model::GlobalConfig`]).
    pub const CONFIG: &str = "config";
    /// `leader`: the lock, holding the leader's name.
    pub const LEADER: &str = "leader";
    /// `members/`: the prefix of every member key.
    pub const MEMBERS: &str = "members/";
    /// `failover`: a switchover or failover request.
    pub const FAILOVER: &str = "failover";
    /// `sync`: the synchronous replication state.
    pub const SYNC: &str = "sync";
    /// `history`: the timeline history.
    pub const HISTORY: &str = "history";
    /// `status`: the leader's WAL position and slots.
    pub const STATUS: &str = "status";
    /// `failsafe`: the members a leader must reach while the DCS is unreachable.
    pub const FAILSAFE: &str = "failsafe";
    /// Legacy leader optime (Patroni < 2.1).
    pub const OPTIME_LEADER: &str = "optime/leader";
}

/// The cluster prefix: `/<namespace>/<scope>/`, slashes collapsed as Patroni does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath {
    prefix: String,
}

impl KeyPath {
    /// `namespace` defaults to `service` in Patroni; pass it as configured (with or without slashes).
    pub fn new(namespace: &str, scope: &str) -> KeyPath {
        let joined = format!(
            "/{}/{}/",
            namespace.trim_matches('/'),
            scope.trim_matches('/')
        );
        let mut prefix = String::with_capacity(joined.len());
        for c in joined.chars() {
            if c == '/' && prefix.ends_with('/') {
                continue;
            }
            prefix.push(c);
        }
        KeyPath { prefix }
    }
    /// `/service/batman/`
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// Full path of a key under the prefix, e.g. `key("leader")` → `/service/batman/leader`.
    pub fn key(&self, rel: &str) -> String {
        format!("{}{}", self.prefix, rel)
    }
    /// Full path of `name`'s member key, e.g. `/service/batman/members/node1`.
    pub fn member(&self, name: &str) -> String {
        format!("{}{}{}", self.prefix, keys::MEMBERS, name)
    }
    /// The key relative to the prefix, or `None` when it is outside the cluster.
    pub fn relative<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&self.prefix)
    }
}

/// One key as a backend read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    /// Relative to the cluster prefix: `leader`, `members/node1`, ...
    pub key: String,
    /// The raw value, usually JSON.
    pub value: String,
    /// The backend's version of the value (see [`Versioned`]).
    pub version: u64,
    /// The lease/session owning the key, where the backend has one.
    pub session: Option<String>,
}

impl RawEntry {
    /// An entry with no lease or session.
    pub fn new(key: impl Into<String>, value: impl Into<String>, version: u64) -> RawEntry {
        RawEntry {
            key: key.into(),
            value: value.into(),
            version,
            session: None,
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(raw)
}

/// Like [`json`] but only from a JSON object: serde would also build a struct from an array.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(
    raw: &str,
) -> Result<T, serde_json::Error> {
    if !raw.trim_start().starts_with('{') {
        return Err(serde::de::Error::custom("expected a JSON object"));
    }
    serde_json::from_str(raw)
}

fn parse_or_warn<T>(
    key: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, serde_json::Error>,
) -> Option<T> {
    match parse(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            warn!(key, error = %e, value = %truncate(raw), "ignoring malformed DCS value");
            None
        }
    }
}

fn truncate(s: &str) -> String {
    if s.len() > 120 {
        let mut end = 120;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

impl Cluster {
    /// Builds a snapshot from the raw entries of the cluster prefix. Never fails: each malformed value is logged
    /// and skipped.
    pub fn from_entries(entries: impl IntoIterator<Item = RawEntry>) -> Cluster {
        let mut c = Cluster::default();
        let mut legacy_optime = None;
        for e in entries {
            let key = e.key.trim_start_matches('/');
            match key {
                keys::INITIALIZE => c.initialize = Some(e.value.trim().to_string()),
                keys::CONFIG => {
                    c.config =
                        parse_or_warn(key, &e.value, json_object::<GlobalConfig>).map(|value| {
                            Versioned {
                                value,
                                version: e.version,
                            }
                        });
                    c.config_unparsable = c.config.is_none().then_some(e.version);
                }
                keys::LEADER => {
                    let name = e.value.trim();
                    if name.is_empty() {
                        warn!(key, "ignoring empty leader key");
                    } else {
                        c.leader = Some(Leader {
                            name: name.to_string(),
                            version: e.version,
                            session: e.session.clone(),
                        })
                    }
                }
                keys::FAILOVER => {
                    c.failover = if e.value.trim().is_empty() {
                        Some(Versioned {
                            value: Failover::default(),
                            version: e.version,
                        })
                    } else {
                        parse_or_warn(key, &e.value, Failover::parse).map(|value| Versioned {
                            value,
                            version: e.version,
                        })
                    }
                }
                keys::SYNC => {
                    c.sync = parse_or_warn(key, &e.value, json_object::<SyncState>).map(|value| {
                        Versioned {
                            value,
                            version: e.version,
                        }
                    })
                }
                keys::HISTORY => {
                    c.history =
                        parse_or_warn(key, &e.value, json::<Vec<HistoryEntry>>).map(|value| {
                            Versioned {
                                value,
                                version: e.version,
                            }
                        })
                }
                keys::STATUS => c.status = parse_or_warn(key, &e.value, json_object::<Status>),
                keys::OPTIME_LEADER => legacy_optime = e.value.trim().parse::<u64>().ok(),
                keys::FAILSAFE => {
                    c.failsafe = parse_or_warn(key, &e.value, json::<BTreeMap<String, String>>)
                }
                _ => {
                    if let Some(name) = key.strip_prefix(keys::MEMBERS) {
                        if name.is_empty() || name.contains('/') {
                            continue;
                        }
                        if let Some(data) = parse_or_warn(key, &e.value, MemberData::parse) {
                            c.members.push(Member {
                                name: name.to_string(),
                                data,
                                version: e.version,
                            });
                        }
                    }
                }
            }
        }
        if c.status.is_none() {
            if let Some(optime) = legacy_optime {
                c.status = Some(Status {
                    optime: Some(optime),
                    ..Default::default()
                });
            }
        }
        c.members.sort_by(|a, b| a.name.cmp(&b.name));
        c
    }
}

impl Cluster {
    /// The snapshot back as key → value pairs under the cluster prefix (`leader`, `members/node1`, ...), each value
    /// in Patroni's JSON: what a tool that reads the raw keys (confd's templates, see `hactl template`) would find
    /// in the DCS. The inverse of [`Cluster::from_entries`] for every key that parsed; a malformed key read as
    /// absent stays absent. `status` is also given as the legacy `optime/leader`, which older templates read.
    pub fn to_entries(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(i) = &self.initialize {
            out.insert(keys::INITIALIZE.to_string(), i.clone());
        }
        if let Some(c) = &self.config {
            out.insert(keys::CONFIG.to_string(), to_json(&c.value));
        }
        if let Some(l) = &self.leader {
            out.insert(keys::LEADER.to_string(), l.name.clone());
        }
        for m in &self.members {
            out.insert(format!("{}{}", keys::MEMBERS, m.name), to_json(&m.data));
        }
        if let Some(f) = &self.failover {
            out.insert(keys::FAILOVER.to_string(), to_json(&f.value));
        }
        if let Some(s) = &self.sync {
            out.insert(keys::SYNC.to_string(), to_json(&s.value));
        }
        if let Some(h) = &self.history {
            out.insert(keys::HISTORY.to_string(), to_json(&h.value));
        }
        if let Some(s) = &self.status {
            out.insert(keys::STATUS.to_string(), to_json(s));
            if let Some(optime) = s.optime {
                out.insert(keys::OPTIME_LEADER.to_string(), optime.to_string());
            }
        }
        if let Some(f) = &self.failsafe {
            out.insert(keys::FAILSAFE.to_string(), to_json(f));
        }
        out
    }
}

/// Compact JSON, as Patroni writes (`separators=(',', ':')`).
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("model values always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_read_back_from_its_entries_is_the_same_snapshot() {
        let raw = [
            RawEntry::new("initialize", "7100000000000000001", 1),
            RawEntry::new("leader", "node1", 2),
            RawEntry::new(
                "members/node1",
                r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.0.4","xlog_location":100,"timeline":2}"#,
                3,
            ),
            RawEntry::new("status", r#"{"optime":100,"slots":{"node2":90}}"#, 4),
            RawEntry::new("history", r#"[[1,50,"no recovery target specified"]]"#, 5),
            RawEntry::new(
                "failsafe",
                r#"{"node1":"http://127.0.0.1:8008/patroni"}"#,
                6,
            ),
        ];
        let c = Cluster::from_entries(raw);
        let entries = c.to_entries();
        assert_eq!(entries["leader"], "node1");
        assert_eq!(entries["optime/leader"], "100");
        let again = Cluster::from_entries(
            entries
                .iter()
                .filter(|(k, _)| k.as_str() != "optime/leader")
                .map(|(k, v)| RawEntry::new(k.clone(), v.clone(), 0)),
        );
        let strip = |mut c: Cluster| {
            c.leader.iter_mut().for_each(|l| l.version = 0);
            c.members.iter_mut().for_each(|m| m.version = 0);
            c.history.iter_mut().for_each(|h| h.version = 0);
            c
        };
        assert_eq!(strip(again), strip(c));
    }

    #[test]
    fn key_path_collapses_slashes() {
        let p = KeyPath::new("/service/", "batman");
        assert_eq!(p.key("leader"), "/service/batman/leader");
        assert_eq!(p.member("node1"), "/service/batman/members/node1");
        assert_eq!(
            p.relative("/service/batman/members/node1"),
            Some("members/node1")
        );
    }

    #[test]
    fn garbage_in_every_key_is_skipped_not_fatal() {
        let garbage = ["{not json", "[1,2", "\u{0}\u{1}", "42x", "[]"];
        for g in garbage {
            let entries = [
                "config",
                "failover",
                "sync",
                "history",
                "status",
                "failsafe",
                "members/n1",
            ]
            .into_iter()
            .map(|k| RawEntry::new(k, g, 1));
            let c = Cluster::from_entries(entries);
            assert!(
                c.config.is_none()
                    && c.members.is_empty()
                    && c.failsafe.is_none()
                    && c.status.is_none(),
                "{g:?} gave {c:?}"
            );
        }
        // Valid JSON of the wrong shape: a config whose ttl is an object.
        let c = Cluster::from_entries(vec![RawEntry::new("config", r#"{"ttl":{}}"#, 1)]);
        assert!(c.config.is_none());
        assert_eq!(
            c.config_unparsable,
            Some(1),
            "present but unparsable is not absent"
        );
    }

    #[test]
    fn patroni_snapshot_is_understood() {
        let c = Cluster::from_entries(vec![
            RawEntry::new("initialize", "7268616322854375442", 2),
            RawEntry::new("leader", "node1", 9),
            RawEntry::new(
                "status",
                r#"{"optime":67393608,"slots":{"node2":67393608}}"#,
                10,
            ),
            RawEntry::new(
                "history",
                r#"[[1,25165984,"no recovery target specified","2024-01-01T00:00:00+00:00","node1"]]"#,
                5,
            ),
            RawEntry::new("failover", "node1:node2", 6),
        ]);
        assert_eq!(c.leader_name(), Some("node1"));
        assert_eq!(c.last_leader_lsn(), Some(67393608));
        assert_eq!(c.timeline(), 2);
        assert_eq!(c.timeline_end_lsn(1), Some(25165984));
        assert_eq!(
            c.pending_failover().unwrap().value.member.as_deref(),
            Some("node2")
        );
    }
}
