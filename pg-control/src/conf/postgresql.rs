//! The managed postgresql.conf, rendered by pure functions: hactl's replication defaults, then the cluster-wide
//! parameters, then the node's own, then what only this node decides; on a standby, the recovery settings and the
//! recovery-sensitive parameters raised to what the control file records.

use std::collections::BTreeMap;
use std::path::Path;

use super::MANAGED_MARKER;

/// Parameters only this node decides: a cluster-wide value for them is ignored.
pub const LOCAL_ONLY: &[&str] = &[
    "port",
    "listen_addresses",
    "unix_socket_directories",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "primary_conninfo",
    "primary_slot_name",
    "recovery_target_timeline",
    "restore_command",
    "cluster_name",
];

/// Defaults every node needs for streaming replication and pg_rewind. The cluster-wide and local parameters may
/// override them.
pub fn replication_defaults() -> BTreeMap<String, String> {
    [
        ("wal_level", "replica"),
        ("hot_standby", "on"),
        // pg_rewind needs hint bits in WAL (or data checksums).
        ("wal_log_hints", "on"),
        ("max_wal_senders", "10"),
        ("max_replication_slots", "10"),
        // pg_rewind needs the diverged node's WAL back to the last common checkpoint.
        ("wal_keep_size", "128MB"),
        ("hot_standby_feedback", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Quotes a value for postgresql.conf.
pub fn quote_conf(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// Recovery settings of a standby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// `primary_conninfo`; `None` for a standby with no upstream yet (it replays what it has and waits).
    pub primary_conninfo: Option<String>,
    pub primary_slot_name: Option<String>,
}

/// Everything that goes into the managed postgresql.conf.
#[derive(Debug, Clone)]
pub struct ManagedConf<'a> {
    pub cluster: &'a BTreeMap<String, String>,
    pub local: &'a BTreeMap<String, String>,
    pub port: u16,
    pub listen_host: &'a str,
    pub socket_dir: &'a Path,
    pub cluster_name: Option<&'a str>,
    pub recovery: Option<&'a Recovery>,
    /// The control file's recovery-sensitive settings ([`crate::controldata::ControlData::recovery_minimums`]):
    /// on a standby each of these parameters is written as max(configured, recorded), as Patroni does.
    pub recovery_minimums: &'a BTreeMap<String, u64>,
    /// Plain `name = value` settings of postgresql.base.conf: the configured value of a recovery-sensitive
    /// parameter none of our layers sets.
    pub base: &'a BTreeMap<String, String>,
}

/// PostgreSQL's built-in defaults of the recovery-sensitive parameters.
const RECOVERY_SENSITIVE_DEFAULTS: &[(&str, &str)] = &[
    ("max_connections", "100"),
    ("max_worker_processes", "8"),
    ("max_wal_senders", "10"),
    ("max_prepared_transactions", "0"),
    ("max_locks_per_transaction", "64"),
];

/// The plain `name = value` lines of a postgresql.conf (no includes followed), last one winning.
pub fn parse_simple_conf(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => match line.split_once(char::is_whitespace) {
                Some((k, v)) => (k.trim(), v.trim()),
                None => continue,
            },
        };
        let v = v.split('#').next().unwrap_or("").trim().trim_matches('\'');
        if !k.is_empty() && !v.is_empty() {
            out.insert(k.to_ascii_lowercase(), v.to_string());
        }
    }
    out
}

impl ManagedConf<'_> {
    /// The configured value of each recovery-sensitive parameter: from our layers, else postgresql.base.conf,
    /// else PostgreSQL's default. What a restart should bring the server to, whatever a standby is running with.
    pub fn configured_recovery_values(&self) -> BTreeMap<String, String> {
        let p = self.layered();
        RECOVERY_SENSITIVE_DEFAULTS
            .iter()
            .map(|(name, default)| {
                let v = p
                    .get(*name)
                    .or_else(|| self.base.get(*name))
                    .cloned()
                    .unwrap_or_else(|| default.to_string());
                (name.to_string(), v)
            })
            .collect()
    }

    /// The effective parameter map, later layers winning; on a standby, the recovery-sensitive parameters are
    /// raised to what the control file records (a standby with less refuses to start).
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut p = self.layered();
        if self.recovery.is_some() {
            for (name, configured) in self.configured_recovery_values() {
                let Some(min) = self.recovery_minimums.get(&name) else {
                    continue;
                };
                match configured.trim().parse::<u64>() {
                    Ok(v) if v >= *min => {}
                    Ok(_) => {
                        p.insert(name, min.to_string());
                    }
                    // Not a plain number: PostgreSQL will say what is wrong with it.
                    Err(_) => {}
                }
            }
        }
        p
    }

    fn layered(&self) -> BTreeMap<String, String> {
        let mut p = replication_defaults();
        for (k, v) in self.cluster {
            if !LOCAL_ONLY.contains(&k.as_str()) {
                p.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in self.local {
            p.insert(k.clone(), v.clone());
        }
        p.insert("port".into(), self.port.to_string());
        p.insert("listen_addresses".into(), self.listen_host.to_string());
        p.insert(
            "unix_socket_directories".into(),
            self.socket_dir.to_string_lossy().into_owned(),
        );
        if let Some(c) = self.cluster_name {
            p.entry("cluster_name".into())
                .or_insert_with(|| c.to_string());
        }
        for k in [
            "primary_conninfo",
            "primary_slot_name",
            "recovery_target_timeline",
        ] {
            p.remove(k);
        }
        if let Some(r) = self.recovery {
            p.insert("recovery_target_timeline".into(), "latest".into());
            if let Some(ci) = &r.primary_conninfo {
                p.insert("primary_conninfo".into(), ci.clone());
            }
            if let Some(slot) = &r.primary_slot_name {
                p.insert("primary_slot_name".into(), slot.clone());
            }
        }
        p
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(MANAGED_MARKER);
        out.push_str("\ninclude 'postgresql.base.conf'\n\n");
        for (k, v) in self.parameters() {
            out.push_str(&format!("{k} = {}\n", quote_conf(&v)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_settings_win_and_recovery_is_only_on_standbys() {
        let cluster = BTreeMap::from([
            ("max_connections".to_string(), "200".to_string()),
            ("port".to_string(), "1".to_string()),
            ("work_mem".to_string(), "8MB".to_string()),
        ]);
        let local = BTreeMap::from([("work_mem".to_string(), "16MB".to_string())]);
        let rec = Recovery {
            primary_conninfo: Some("host=a port=1".into()),
            primary_slot_name: Some("n2".into()),
        };
        let mut conf = ManagedConf {
            cluster: &cluster,
            local: &local,
            port: 5433,
            listen_host: "127.0.0.1",
            socket_dir: Path::new("/tmp/s"),
            cluster_name: None,
            recovery: Some(&rec),
            recovery_minimums: &BTreeMap::new(),
            base: &BTreeMap::new(),
        };
        let p = conf.parameters();
        assert_eq!(p["port"], "5433", "the DCS never moves a node's port");
        assert_eq!(p["work_mem"], "16MB");
        assert_eq!(p["max_connections"], "200");
        assert_eq!(p["primary_slot_name"], "n2");
        assert_eq!(p["recovery_target_timeline"], "latest");
        let text = conf.render();
        assert!(text.starts_with(MANAGED_MARKER));
        assert!(text.contains("include 'postgresql.base.conf'"));
        conf.recovery = None;
        assert!(!conf.parameters().contains_key("primary_conninfo"));
    }

    #[test]
    fn a_standby_runs_with_at_least_the_control_file_settings() {
        let cluster = BTreeMap::from([
            ("max_connections".to_string(), "50".to_string()),
            ("max_wal_senders".to_string(), "20".to_string()),
        ]);
        let local = BTreeMap::new();
        let minimums = BTreeMap::from([
            ("max_connections".to_string(), 100),
            ("max_wal_senders".to_string(), 10),
            ("max_worker_processes".to_string(), 16),
            ("max_prepared_transactions".to_string(), 0),
            ("max_locks_per_transaction".to_string(), 64),
        ]);
        let base = parse_simple_conf(
            "# initdb\nmax_worker_processes = 12 # comment\nmax_locks_per_transaction 128\n",
        );
        assert_eq!(base["max_worker_processes"], "12");
        let rec = Recovery {
            primary_conninfo: None,
            primary_slot_name: None,
        };
        let mut conf = ManagedConf {
            cluster: &cluster,
            local: &local,
            port: 5433,
            listen_host: "127.0.0.1",
            socket_dir: Path::new("/tmp/s"),
            cluster_name: None,
            recovery: Some(&rec),
            recovery_minimums: &minimums,
            base: &base,
        };
        let p = conf.parameters();
        assert_eq!(p["max_connections"], "100", "raised to the control file's");
        assert_eq!(p["max_wal_senders"], "20", "configured higher: kept");
        assert_eq!(p["max_worker_processes"], "16", "base.conf's 12 raised");
        assert!(
            !p.contains_key("max_locks_per_transaction"),
            "base.conf's 128 is enough: left to it"
        );
        assert!(!p.contains_key("max_prepared_transactions"));
        let wanted = conf.configured_recovery_values();
        assert_eq!(wanted["max_connections"], "50");
        assert_eq!(wanted["max_locks_per_transaction"], "128");
        assert_eq!(wanted["max_prepared_transactions"], "0");
        conf.recovery = None;
        assert_eq!(
            conf.parameters()["max_connections"],
            "50",
            "a primary runs as configured"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_conf("it's"), "'it''s'");
    }
}
