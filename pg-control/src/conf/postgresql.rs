//! The managed postgresql.conf, rendered by pure functions: hactl's replication defaults, then the cluster-wide
//! parameters, then the node's own, then what only this node decides; on a standby, the recovery settings and the
//! recovery-sensitive parameters raised to what the control file records.

use std::collections::{BTreeMap, BTreeSet};
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
    /// A standby cluster's leader: its source's recovery settings, which replace the cluster's own
    /// (`restore_command`, `archive_cleanup_command`, `recovery_min_apply_delay`).
    pub overrides: Vec<(String, String)>,
}

/// A standby's extra recovery settings: `recovery_conf` less what hactl decides itself (`primary_conninfo`,
/// `primary_slot_name`, the `recovery_target*` settings: a standby follows the latest timeline and never stops at a
/// target; `standby_mode`, which PostgreSQL 12+ spells `standby.signal`), as Patroni filters it; then `fixed`
/// (a standby cluster's source settings) on top.
pub fn recovery_overrides(
    recovery_conf: &BTreeMap<String, String>,
    fixed: impl Iterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = recovery_conf
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            !k.starts_with("recovery_target")
                && !["primary_conninfo", "primary_slot_name", "standby_mode"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(fixed);
    out.into_iter().collect()
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
    /// The file the managed postgresql.conf includes first: `postgresql.base.conf`, or `custom_conf`.
    pub include: &'a str,
    /// The server's parameter names (`postgres --describe-config`) and `server_version_num`: parameters this
    /// major does not know are translated or left out ([`adapt_to_server`]); `None`: written as configured.
    pub server: Option<&'a ServerParameters>,
    /// `synchronous_standby_names` as the leader manages it: overrides every layer when set.
    pub synchronous_standby_names: Option<&'a str>,
}

/// What the server binaries accept: their version and every parameter name they know.
#[derive(Debug, Clone, Default)]
pub struct ServerParameters {
    pub version_num: u32,
    pub names: BTreeSet<String>,
}

/// One segment, the default `wal_segment_size`: what `wal_keep_segments` counts in.
const WAL_SEGMENT_MB: u64 = 16;

/// Patroni's handling of a parameter map the running major does not fully know, so a cluster-wide parameter that
/// an older or newer major renamed never leaves a node unable to start ("configuration file contains errors"):
/// - `wal_keep_segments` (PostgreSQL < 13) becomes `wal_keep_size` = segments × 16 MB on 13+ (unless
///   `wal_keep_size` is set too), and `wal_keep_size` becomes `wal_keep_segments` below 13;
/// - any other name the server does not know is left out. Names with a dot (`pg_stat_statements.track`) are
///   extensions' and always kept.
///
/// Returns what was translated or left out, one line each, for the caller to log as warnings naming them.
pub fn adapt_to_server(p: &mut BTreeMap<String, String>, server: &ServerParameters) -> Vec<String> {
    let mut notes = Vec::new();
    let knows = |n: &str| server.names.contains(n);
    if !knows("wal_keep_segments") && knows("wal_keep_size") {
        if let Some(segments) = p.remove("wal_keep_segments") {
            match segments.trim().parse::<u64>() {
                Ok(n) if !p.contains_key("wal_keep_size") || p.get("wal_keep_size").map(String::as_str) == Some("128MB") => {
                    let size = format!("{}MB", n * WAL_SEGMENT_MB);
                    notes.push(format!("wal_keep_segments={segments} written as wal_keep_size={size} (PostgreSQL {} has no wal_keep_segments)", server.version_num / 10000));
                    p.insert("wal_keep_size".into(), size);
                }
                _ => notes.push(format!("wal_keep_segments={segments} left out: PostgreSQL {} has no wal_keep_segments and wal_keep_size is set", server.version_num / 10000)),
            }
        }
    } else if knows("wal_keep_segments") && !knows("wal_keep_size") {
        if let Some(size) = p.remove("wal_keep_size") {
            let mb = size
                .trim()
                .trim_end_matches("MB")
                .trim()
                .parse::<u64>()
                .ok();
            if let (Some(mb), false) = (mb, p.contains_key("wal_keep_segments")) {
                p.insert(
                    "wal_keep_segments".into(),
                    (mb / WAL_SEGMENT_MB).max(1).to_string(),
                );
            }
        }
    }
    let unknown: Vec<String> = p
        .keys()
        .filter(|k| !k.contains('.') && !knows(&k.to_ascii_lowercase()))
        .cloned()
        .collect();
    for k in unknown {
        let v = p.remove(&k).unwrap_or_default();
        notes.push(format!(
            "Removing invalid parameter `{k}` ({v:?}): PostgreSQL {} does not know it",
            server.version_num / 10000
        ));
    }
    notes
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

    /// The effective parameter map, later layers winning; on a server that will recover (a standby, or a primary
    /// restored from a backup: `recovery_minimums` given), the recovery-sensitive parameters are raised to what the
    /// control file records (with less, recovery refuses to start).
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut p = self.layered();
        if self.recovery.is_some() || !self.recovery_minimums.is_empty() {
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
        if let Some(names) = self.synchronous_standby_names {
            p.insert("synchronous_standby_names".into(), names.to_string());
        }
        if let Some(server) = self.server {
            adapt_to_server(&mut p, server);
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
            for (k, v) in &r.overrides {
                p.insert(k.clone(), v.clone());
            }
        }
        p
    }

    /// What [`adapt_to_server`] changed in the configured parameters, one line each (for warnings).
    pub fn adaptations(&self) -> Vec<String> {
        let Some(server) = self.server else {
            return Vec::new();
        };
        let mut p = replication_defaults();
        p.extend(
            self.cluster
                .iter()
                .filter(|(k, _)| !LOCAL_ONLY.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        p.extend(self.local.iter().map(|(k, v)| (k.clone(), v.clone())));
        adapt_to_server(&mut p, server)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(MANAGED_MARKER);
        out.push_str(&format!("\ninclude {}\n\n", quote_conf(self.include)));
        for (k, v) in self.parameters() {
            out.push_str(&format!("{k} = {}\n", quote_conf(&v)));
        }
        out
    }
}

#[cfg(test)]
mod tests;
