//! How a ctl command finds its configuration, as patronictl does: `-c` (or `PATRONICTL_CONFIG_FILE`), else
//! `~/.config/patroni/patronictl.yaml` when it exists, else the environment alone; `--dcs-url` replaces the
//! config's DCS section (and its namespace when the URL has a path); `-k` sets `ctl.insecure`; with no `scope`
//! anywhere, the first cluster named on the command line is the scope. A missing default file is not an error (a
//! named one is).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::{Cli, Command};
use crate::config::{Config, ConfigError};

/// The DCS sections `--dcs-url` replaces (all of them, as patronictl drops every DCS it knows).
const DCS_SECTIONS: [&str; 6] = [
    "etcd",
    "etcd3",
    "consul",
    "zookeeper",
    "exhibitor",
    "kubernetes",
];

/// `click.get_app_dir('patroni')` on Linux: `$XDG_CONFIG_HOME/patroni`, else `~/.config/patroni`.
pub fn default_config_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let base = match env.get("XDG_CONFIG_HOME").filter(|s| !s.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(env.get("HOME")?).join(".config"),
    };
    Some(base.join("patroni").join("patronictl.yaml"))
}

/// A parsed `--dcs-url`: the config section it stands for and the namespace its path names.
#[derive(Debug, Clone, PartialEq)]
pub struct DcsUrl {
    pub section: &'static str,
    pub body: Value,
    pub namespace: Option<String>,
}

/// patronictl's `parse_dcs`: `DCS://HOST:PORT/NAMESPACE`; no scheme means the one whose default port is given
/// (else `etcd`), no host `localhost`, no port the DCS's default.
pub fn parse_dcs_url(url: &str) -> Result<DcsUrl, String> {
    const DEFAULTS: [(&str, u16); 4] = [
        ("zookeeper", 2181),
        ("consul", 8500),
        ("etcd", 2379),
        ("etcd3", 2379),
    ];
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", url.trim_start_matches("//")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("invalid port in DCS URL {url:?}"))?;
            (h, Some(port))
        }
        None => (authority, None),
    };
    let section = if scheme.is_empty() {
        DEFAULTS
            .iter()
            .find(|(_, p)| Some(*p) == port)
            .map(|(s, _)| *s)
            .unwrap_or("etcd")
    } else {
        DEFAULTS
            .iter()
            .map(|(s, _)| *s)
            .find(|s| *s == scheme)
            .ok_or_else(|| format!("Unknown dcs scheme: {scheme}"))?
    };
    let default_port = DEFAULTS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, p)| *p)
        .unwrap_or(2379);
    let host = if host.is_empty() { "localhost" } else { host };
    let address = format!("{host}:{}", port.unwrap_or(default_port));
    let body = if section == "zookeeper" {
        json!({ "hosts": [address] })
    } else {
        json!({ "host": address })
    };
    let path = path.trim();
    let namespace = (!path.is_empty() && path != "/").then(|| path.to_string());
    Ok(DcsUrl {
        section,
        body,
        namespace,
    })
}

impl Command {
    /// The first cluster name the command line gives, the scope when the config names none.
    pub fn cluster_hint(&self) -> Option<&str> {
        match self {
            Command::List { clusters, .. } | Command::Topology { clusters, .. } => {
                clusters.first().map(String::as_str)
            }
            Command::Switchover { cluster, .. }
            | Command::Failover { cluster, .. }
            | Command::EditConfig { cluster, .. }
            | Command::ShowConfig { cluster }
            | Command::Pause { cluster, .. }
            | Command::Resume { cluster, .. }
            | Command::History { cluster, .. }
            | Command::Remove { cluster, .. }
            | Command::Dsn { cluster, .. }
            | Command::Query { cluster, .. }
            | Command::DemoteCluster { cluster, .. }
            | Command::PromoteCluster { cluster, .. } => cluster.as_deref(),
            Command::Restart { targets, .. }
            | Command::Reload { targets, .. }
            | Command::Reinit { targets, .. }
            | Command::Flush { targets, .. }
            | Command::Version { targets } => targets.names.first().map(String::as_str),
            Command::Run { .. }
            | Command::Validate { .. }
            | Command::Fencer { .. }
            | Command::Template { .. } => None,
        }
    }
}

/// The configuration a ctl command runs with (see the module head).
pub fn ctl_config(cli: &Cli, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let path = cli
        .config
        .clone()
        .or_else(|| default_config_path(env).filter(|p| p.is_file()));
    let mut tree = Config::load_tree(path.as_deref(), env)?;
    let Value::Object(root) = &mut tree else {
        return Config::from_tree(tree);
    };
    if let Some(url) = &cli.dcs_url {
        let parsed = parse_dcs_url(url).map_err(|message| ConfigError::Invalid {
            key: "--dcs-url".into(),
            expected: "DCS://HOST:PORT/NAMESPACE".into(),
            got: format!("{url:?}: {message}"),
        })?;
        for s in DCS_SECTIONS {
            root.remove(s);
        }
        root.insert(parsed.section.into(), parsed.body);
        if let Some(ns) = parsed.namespace {
            root.insert("namespace".into(), json!(ns));
        }
    }
    if cli.insecure {
        let ctl = root
            .entry("ctl")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(c) = ctl {
            c.insert("insecure".into(), json!(true));
        }
    }
    if !root.contains_key("scope") {
        if let Some(name) = cli.command.cluster_hint() {
            root.insert("scope".into(), json!(name));
        }
    }
    Config::from_tree(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_urls_read_as_patronictl_reads_them() {
        let u = parse_dcs_url("etcd3://random.com:2399/customnamespace").unwrap();
        assert_eq!(u.section, "etcd3");
        assert_eq!(u.body, json!({"host": "random.com:2399"}));
        assert_eq!(u.namespace.as_deref(), Some("/customnamespace"));
        assert_eq!(
            parse_dcs_url("etcd://:2399").unwrap().body,
            json!({"host": "localhost:2399"})
        );
        assert_eq!(
            parse_dcs_url("etcd://test").unwrap().body,
            json!({"host": "test:2379"})
        );
        let zk = parse_dcs_url("localhost:2181").unwrap();
        assert_eq!(
            zk.section, "zookeeper",
            "no scheme: the DCS whose port it is"
        );
        assert_eq!(zk.body, json!({"hosts": ["localhost:2181"]}));
        assert_eq!(
            parse_dcs_url("consul://c1").unwrap().body,
            json!({"host": "c1:8500"})
        );
        assert!(parse_dcs_url("raft://x")
            .unwrap_err()
            .contains("Unknown dcs scheme: raft"));
        assert!(parse_dcs_url("etcd://h:port").is_err());
    }

    #[test]
    fn the_default_file_is_patronictls() {
        let env: BTreeMap<String, String> = [("HOME".to_string(), "/home/pg".to_string())].into();
        assert_eq!(
            default_config_path(&env).unwrap(),
            PathBuf::from("/home/pg/.config/patroni/patronictl.yaml")
        );
        let env: BTreeMap<String, String> =
            [("XDG_CONFIG_HOME".to_string(), "/xdg".to_string())].into();
        assert_eq!(
            default_config_path(&env).unwrap(),
            PathBuf::from("/xdg/patroni/patronictl.yaml")
        );
    }
}
