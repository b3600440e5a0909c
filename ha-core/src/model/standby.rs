//! `standby_cluster`: this cluster replicates from another (a disaster-recovery site). Its leader is a *standby
//! leader*: it holds the lock but runs PostgreSQL in recovery, following the source, and is never promoted while
//! the configuration names a source; its replicas follow it. Removing `standby_cluster` from the configuration
//! promotes the cluster (Patroni's `promote-cluster`); adding it to a primary cluster demotes it.

use serde_json::Value;

use super::config::GlobalConfig;
use crate::pg::{RemoteSource, Upstream};

/// The source a standby cluster follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandbyCluster {
    /// `standby_cluster.host`: the source's host; `None`: restore from the archive only.
    pub host: Option<String>,
    /// `standby_cluster.port`; `None`: 5432.
    pub port: Option<u16>,
    /// The slot to stream from and the recovery settings.
    pub source: RemoteSource,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A list of method names as Patroni takes it: a YAML list, or one name (a comma-separated string too).
fn names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| text(Some(x))).collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    }
}

/// A host as it goes into a URL: an IPv6 address in brackets (`::1` → `[::1]`), anything else as it is.
pub fn url_host(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

impl StandbyCluster {
    /// Where the standby leader replicates from: the source's host and port (streaming, when given) and its
    /// archive settings. The name stands for the source in logs and in the node's state.
    pub fn upstream(&self) -> Upstream {
        let host = self.host.clone().unwrap_or_default();
        let conn_url = if host.is_empty() {
            String::new()
        } else {
            format!(
                "postgres://{}:{}/postgres",
                url_host(&host),
                self.port.unwrap_or(5432)
            )
        };
        Upstream {
            name: if host.is_empty() {
                "standby_cluster (archive)".to_string()
            } else {
                format!("standby_cluster {host}:{}", self.port.unwrap_or(5432))
            },
            conn_url,
            remote: Some(self.source.clone()),
        }
    }
}

impl GlobalConfig {
    /// `standby_cluster`, when it names a source (a host or a `restore_command`); `null`, `{}` or an entry with
    /// neither is a normal cluster, as in Patroni.
    pub fn standby_cluster(&self) -> Option<StandbyCluster> {
        let Some(Value::Object(o)) = self.extra.get("standby_cluster") else {
            return None;
        };
        let port = o.get("port").and_then(|p| match p {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        let s = StandbyCluster {
            host: text(o.get("host")),
            port: port.and_then(|p| u16::try_from(p).ok()),
            source: RemoteSource {
                primary_slot_name: text(o.get("primary_slot_name")),
                restore_command: text(o.get("restore_command")),
                archive_cleanup_command: text(o.get("archive_cleanup_command")),
                recovery_min_apply_delay: text(o.get("recovery_min_apply_delay")),
                create_replica_methods: names(o.get("create_replica_methods")),
            },
        };
        (s.host.is_some() || s.source.restore_command.is_some()).then_some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_cluster_needs_a_host_or_an_archive() {
        let cfg = |j: &str| serde_json::from_str::<GlobalConfig>(j).unwrap();
        assert_eq!(cfg("{}").standby_cluster(), None);
        assert_eq!(cfg(r#"{"standby_cluster":null}"#).standby_cluster(), None);
        assert_eq!(
            cfg(r#"{"standby_cluster":{"host":null,"primary_slot_name":"x"}}"#).standby_cluster(),
            None
        );
        let s =
            cfg(r#"{"standby_cluster":{"host":"db1","port":"5433","primary_slot_name":"pm_1"}}"#)
                .standby_cluster()
                .unwrap();
        let up = s.upstream();
        assert_eq!(up.conn_url, "postgres://db1:5433/postgres");
        let v6 = cfg(r#"{"standby_cluster":{"host":"fd00::5","port":5433}}"#)
            .standby_cluster()
            .unwrap();
        assert_eq!(v6.upstream().conn_url, "postgres://[fd00::5]:5433/postgres");
        assert_eq!(
            up.remote.unwrap().primary_slot_name.as_deref(),
            Some("pm_1")
        );
        let archive = cfg(r#"{"standby_cluster":{"restore_command":"cp /a/%f %p"}}"#)
            .standby_cluster()
            .unwrap()
            .upstream();
        assert_eq!(archive.conn_url, "", "archive recovery only: no streaming");
    }

    #[test]
    fn the_standby_clusters_own_replica_methods_are_read_as_a_list_or_one_name() {
        let methods = |j: &str| {
            serde_json::from_str::<GlobalConfig>(j)
                .unwrap()
                .standby_cluster()
                .unwrap()
                .upstream()
                .remote
                .unwrap()
                .create_replica_methods
        };
        assert_eq!(
            methods(
                r#"{"standby_cluster":{"host":"db1","create_replica_methods":["pgbackrest","basebackup"]}}"#
            ),
            ["pgbackrest", "basebackup"]
        );
        assert_eq!(
            methods(r#"{"standby_cluster":{"host":"db1","create_replica_methods":"pgbackrest"}}"#),
            ["pgbackrest"]
        );
        assert!(
            methods(r#"{"standby_cluster":{"host":"db1"}}"#).is_empty(),
            "unset: the node's own list"
        );
    }
}
