//! Patroni's YAML configuration, so that an existing Patroni config file starts a hactl node unchanged.
//!
//! Loading is three steps, each testable alone: the file is read into a tree ([`value::yaml_to_json`]), the
//! `PATRONI_*` environment is deep-merged over it ([`env::environment_configuration`]), then the tree is read into
//! typed sections here. Every error names the full key (`postgresql.authentication.superuser`) and what was
//! expected; keys hactl does not know are warnings, never errors, because Patroni files carry options for features
//! (Kubernetes, Citus, custom bootstrap...) a hactl node can run without.
//!
//! # Layout
//! - `schema`: the typed sections and [`Config`] itself; [`ConfigError`] in `error`.
//! - [`value`]: the YAML tree with the key path at hand; [`env`](mod@env): the `PATRONI_*` variables.
//! - One parser per section: `restapi` (with `ctl`), `dcs` (etcd, Consul, ZooKeeper), `bootstrap`, `postgresql`,
//!   `tags`, `log`.
//! - Here: [`Config::load`] and the top level (`scope`, `namespace`, `name`, unsupported sections).

pub mod env;
pub mod value;

mod bootstrap;
mod dcs;
mod error;
pub mod haproxy;
pub mod log;
mod postgresql;
mod restapi;
mod schema;
mod tags;
pub mod watchdog;

pub use error::ConfigError;
pub use schema::{
    BasicAuth, BootstrapConfig, Callbacks, Config, ConsulConfig, CtlConfig, DaemonRequired,
    DcsConfig, EtcdConfig, HostPort, InitdbOption, LogConfig, LogFormat, LogType, PgAuthentication,
    PgUser, PostgresqlConfig, ReplicaMethodConfig, RestApiConfig, ZookeeperConfig,
    DEFAULT_NAMESPACE,
};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use value::Section;

/// Top-level sections Patroni knows that hactl does not implement: accepted with a warning.
const UNSUPPORTED_SECTIONS: &[&str] = &["kubernetes", "raft", "exhibitor", "citus"];

/// Where to read the environment from.
pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

fn parse_yaml(origin: &str, text: &str) -> Result<Value, ConfigError> {
    let y: serde_norway::Value = serde_norway::from_str(text).map_err(|e| ConfigError::Yaml {
        origin: origin.to_string(),
        message: e.to_string(),
    })?;
    Ok(value::yaml_to_json(y))
}

impl Config {
    /// Reads a config file (or, with no file, `PATRONI_CONFIGURATION` or the environment alone), applies the
    /// `PATRONI_*` overrides from `env`, and checks it. Does not check the daemon's required keys: see
    /// [`Config::validate_for_daemon`].
    pub fn load(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        Config::from_tree(Config::load_tree(path, env)?)
    }

    /// The config tree [`Config::load`] checks: the file (or `PATRONI_CONFIGURATION`) with the `PATRONI_*`
    /// overrides merged in. The CLI patches it (`--dcs-url`, the cluster named on the command line) before
    /// [`Config::from_tree`].
    pub fn load_tree(
        path: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Value, ConfigError> {
        let mut tree = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    path: p.to_path_buf(),
                    source,
                })?;
                parse_yaml(&p.display().to_string(), &text)?
            }
            None => match env.get(env::PATRONI_CONFIGURATION) {
                // Patroni: the whole-config variable replaces both the file and the other variables.
                Some(doc) => return parse_yaml(env::PATRONI_CONFIGURATION, doc),
                None => Value::Object(Map::new()),
            },
        };
        if tree.is_null() {
            tree = Value::Object(Map::new());
        }
        value::deep_merge(&mut tree, env::environment_configuration(env)?);
        Ok(tree)
    }

    /// Parses a YAML document without the environment (tests, `hactl validate --no-env`).
    pub fn from_yaml_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_tree(parse_yaml("config", text)?)
    }

    /// Reads a config tree (YAML already merged with the environment).
    pub fn from_tree(tree: Value) -> Result<Config, ConfigError> {
        let root = Section::root(&tree)?;
        let mut warnings = Vec::new();
        let mut known: Vec<&str> = vec![
            "scope",
            "namespace",
            "name",
            "restapi",
            "ctl",
            "etcd",
            "etcd3",
            "consul",
            "zookeeper",
            "bootstrap",
            "postgresql",
            "tags",
            "log",
        ];
        // Dynamic keys at the top level are accepted by Patroni's validator but only `bootstrap.dcs` and the DCS
        // `config` key set them.
        for k in [
            "ttl",
            "loop_wait",
            "retry_timeout",
            "maximum_lag_on_failover",
            "synchronous_mode",
        ] {
            if root.has(k) {
                warnings.push(format!(
                    "`{k}` at the top level is ignored: set it in `bootstrap.dcs` or with `hactl edit-config`"
                ));
            }
            known.push(k);
        }
        for s in UNSUPPORTED_SECTIONS {
            if root.has(s) {
                warnings.push(format!("`{s}` is not supported by hactl and is ignored"));
            }
            known.push(s);
        }
        known.push("watchdog");
        known.push("haproxy");
        let haproxy = haproxy::parse_haproxy(&root.section("haproxy")?, &mut warnings)?;
        let watchdog = watchdog::parse_watchdog(&root.section("watchdog")?, &mut warnings)?;
        root.warn_unknown(&known, &mut warnings);

        let scope = root.required_string("scope")?;
        let namespace = root
            .string("namespace")?
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let name = root.string("name")?;

        let restapi = restapi::parse_restapi(&root.section("restapi")?, &mut warnings)?;
        let ctl = restapi::parse_ctl(&root.section("ctl")?, &mut warnings)?;
        let dcs = dcs::parse_dcs(&root, &mut warnings)?;
        let bootstrap = bootstrap::parse_bootstrap(&root.section("bootstrap")?, &mut warnings)?;
        let postgresql = postgresql::parse_postgresql(&root.section("postgresql")?, &mut warnings)?;
        let tags = tags::parse_tags(&root, &mut warnings)?;
        let log = log::parse_log(&root.section("log")?, &mut warnings)?;

        Ok(Config {
            scope,
            namespace,
            name,
            restapi,
            ctl,
            dcs,
            bootstrap,
            postgresql,
            tags,
            log,
            watchdog,
            haproxy,
            warnings,
        })
    }
}

/// An optional `host:port` key, read by the `restapi` and `postgresql` parsers.
fn opt_host_port(s: &Section, key: &str) -> Result<Option<HostPort>, ConfigError> {
    s.string(key)?
        .map(|v| HostPort::parse(&s.key(key), &v))
        .transpose()
}

/// An optional path key (empty counts as absent), read by the `postgresql` and `log` parsers.
fn opt_path(s: &Section, key: &str) -> Result<Option<PathBuf>, ConfigError> {
    Ok(s.string(key)?.filter(|p| !p.is_empty()).map(PathBuf::from))
}

#[cfg(test)]
mod tests;

/// What the tests of the modules that consume a configuration (the daemon's settings builders) start from.
#[cfg(test)]
pub(crate) mod test_support {
    pub(crate) use super::postgresql::tests::load;
    pub(crate) use super::tests::MINIMAL;
}
