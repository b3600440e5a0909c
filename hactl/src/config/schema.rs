//! The typed configuration: one struct per Patroni section (`restapi`, `ctl`, the DCS, `bootstrap`, `postgresql`,
//! `log`) and the whole [`Config`], with what the rest of hactl asks of it (the daemon's required keys, the URLs a
//! member publishes, its identity). Parsing into these types is in the section parsers beside this file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ha_core::decision::NodeIdentity;
use ha_core::model::{GlobalConfig, Tags};
use serde_json::{Map, Value};

use super::ConfigError;

mod dcs;
mod log;
mod postgresql;

pub use self::dcs::{ConsulConfig, DcsConfig, EtcdConfig, ZookeeperConfig};
pub use self::log::{LogConfig, LogFormat, LogType};
pub use self::postgresql::{
    BootstrapConfig, BootstrapMethod, Callbacks, InitdbOption, PgAuthentication, PgUser,
    PostgresqlConfig, ReplicaMethodConfig,
};

/// Patroni's default namespace.
pub const DEFAULT_NAMESPACE: &str = "/service/";

/// `host:port` as Patroni writes listen and connect addresses. `host` may be a comma-separated list for
/// `postgresql.listen` (`0.0.0.0,::` style) and is empty for "all interfaces".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port`, `[v6]:port` or `:port`.
    pub fn parse(key: &str, s: &str) -> Result<HostPort, ConfigError> {
        let bad = || ConfigError::Invalid {
            key: key.to_string(),
            expected: "host:port".into(),
            got: format!("{s:?}"),
        };
        let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(HostPort { host, port })
    }
    /// The address to bind: `*`, empty and `0.0.0.0` all mean every IPv4 interface; the first of a list otherwise.
    pub fn bind_host(&self) -> &str {
        let first = self.host.split(',').next().unwrap_or("").trim();
        match first {
            "" | "*" => "0.0.0.0",
            h => h,
        }
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A username and password (REST basic auth, ctl credentials, DCS credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// `restapi`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestApiConfig {
    pub listen: Option<HostPort>,
    pub connect_address: Option<HostPort>,
    /// Required on unsafe methods (POST/PATCH/PUT/DELETE) when set.
    pub authentication: Option<BasicAuth>,
    /// HTTPS when set (`certfile` and the keys beside it); the API URL members publish is then `https://`.
    pub tls: Option<crate::tls::ServerTlsSettings>,
    /// `allowlist`: networks, addresses or host names allowed to change anything (resolved at start).
    pub allowlist: Vec<String>,
    pub allowlist_include_members: bool,
    /// `http_extra_headers`, then `https_extra_headers` when serving HTTPS: added to every response.
    pub extra_headers: Vec<(String, String)>,
}

/// `ctl`: how the CLI authenticates to members' REST API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CtlConfig {
    pub authentication: Option<BasicAuth>,
    pub insecure: bool,
    pub cacert: Option<std::path::PathBuf>,
    pub certfile: Option<std::path::PathBuf>,
    pub keyfile: Option<std::path::PathBuf>,
    pub keyfile_password: Option<String>,
}

/// A whole node configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub scope: String,
    pub namespace: String,
    pub name: Option<String>,
    pub restapi: RestApiConfig,
    pub ctl: CtlConfig,
    pub dcs: Option<DcsConfig>,
    pub bootstrap: BootstrapConfig,
    pub postgresql: PostgresqlConfig,
    pub tags: Tags,
    pub log: LogConfig,
    pub watchdog: super::watchdog::WatchdogConfig,
    /// `haproxy`: the HAProxy runtime APIs told of this node's role changes (hactl's own section).
    pub haproxy: super::haproxy::HaproxyConfig,
    /// Unknown or unsupported keys, one line each: log them at start.
    pub warnings: Vec<String>,
}

/// The daemon's required keys, read out of a [`Config`] by [`Config::validate_for_daemon`]. Holding one is the
/// proof the keys were there: the daemon takes them from here rather than unwrapping the config's options again
/// on the word of a check made elsewhere. The DCS and the PostgreSQL users are checked too, but read by their own
/// builders ([`crate::dcs::connect_node`], [`crate::daemon::pg_settings`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonRequired {
    /// `name`, not blank.
    pub name: String,
    /// `restapi.listen`.
    pub restapi_listen: HostPort,
    /// `restapi.connect_address`.
    pub restapi_connect_address: HostPort,
    /// `postgresql.listen`.
    pub postgresql_listen: HostPort,
    /// `postgresql.connect_address`.
    pub postgresql_connect_address: HostPort,
    /// `postgresql.data_dir`.
    pub data_dir: PathBuf,
}

impl Config {
    /// The keys the daemon cannot start without (Patroni's validator's required set): `name`, `restapi.listen` and
    /// `connect_address`, a DCS, `postgresql.listen`, `connect_address`, `data_dir`, and the superuser and
    /// replication users. The first one missing is the error; when none is, the values are returned.
    pub fn validate_for_daemon(&self) -> Result<DaemonRequired, ConfigError> {
        let missing = |key: &str| ConfigError::Missing { key: key.into() };
        let name = match self.name.as_deref() {
            Some(n) if !n.trim().is_empty() => n.to_string(),
            _ => return Err(missing("name")),
        };
        let Some(restapi_listen) = self.restapi.listen.clone() else {
            return Err(missing("restapi.listen"));
        };
        let Some(restapi_connect_address) = self.restapi.connect_address.clone() else {
            return Err(missing("restapi.connect_address"));
        };
        if self.dcs.is_none() {
            return Err(ConfigError::NoDcs);
        }
        let pg = &self.postgresql;
        let Some(postgresql_listen) = pg.listen.clone() else {
            return Err(missing("postgresql.listen"));
        };
        let Some(postgresql_connect_address) = pg.connect_address.clone() else {
            return Err(missing("postgresql.connect_address"));
        };
        let Some(data_dir) = pg.data_dir.clone() else {
            return Err(missing("postgresql.data_dir"));
        };
        if pg.authentication.superuser.is_none() {
            return Err(missing("postgresql.authentication.superuser"));
        }
        if pg.authentication.replication.is_none() {
            return Err(missing("postgresql.authentication.replication"));
        }
        Ok(DaemonRequired {
            name,
            restapi_listen,
            restapi_connect_address,
            postgresql_listen,
            postgresql_connect_address,
            data_dir,
        })
    }

    /// The DCS key prefix, e.g. `/service/batman/`.
    pub fn key_path(&self) -> ha_core::model::KeyPath {
        ha_core::model::KeyPath::new(&self.namespace, &self.scope)
    }

    /// `http://connect_address/patroni`, as members publish it (plain HTTP: the REST API has no TLS yet, so a
    /// `certfile` does not turn it into https).
    pub fn api_url(&self) -> Option<String> {
        self.restapi.connect_address.as_ref().map(|a| {
            format!(
                "{}://{a}/patroni",
                if self.restapi.tls.is_some() {
                    "https"
                } else {
                    "http"
                }
            )
        })
    }

    /// `postgres://connect_address/<database>` (`postgres` unless `postgresql.database` says otherwise), as members
    /// publish it.
    pub fn conn_url(&self) -> Option<String> {
        self.postgresql
            .connect_address
            .as_ref()
            .map(|a| format!("postgres://{a}/{}", self.database()))
    }

    /// `postgres://proxy_address/<database>`: the member's `proxy_url`, when `postgresql.proxy_address` is set (a
    /// pooler in front of this node, as Patroni publishes it).
    pub fn proxy_url(&self) -> Option<String> {
        self.postgresql
            .proxy_address
            .as_ref()
            .map(|a| format!("postgres://{a}/{}", self.database()))
    }

    /// `postgresql.database`, `postgres` by default.
    pub fn database(&self) -> &str {
        match self.postgresql.database.as_str() {
            "" => "postgres",
            d => d,
        }
    }

    /// Who this node is, for the driver.
    pub fn node_identity(&self, version: &str) -> NodeIdentity {
        NodeIdentity {
            name: self.name.clone().unwrap_or_default(),
            conn_url: self.conn_url().unwrap_or_default(),
            api_url: self.api_url().unwrap_or_default(),
            tags: self.tags.clone(),
            version: version.to_string(),
        }
    }

    /// How this process talks HTTPS to members (the CLI, and the daemon's own requests): each `ctl` key, else the
    /// `restapi` one, as Patroni's `PatroniRequest` reads them (`cacert` falls back to `restapi.cafile`).
    pub fn client_tls(&self) -> crate::tls::client::ClientTlsSettings {
        let server = self.restapi.tls.as_ref();
        crate::tls::client::ClientTlsSettings {
            cacert: self
                .ctl
                .cacert
                .clone()
                .or_else(|| server.and_then(|t| t.cafile.clone())),
            certfile: self
                .ctl
                .certfile
                .clone()
                .or_else(|| server.map(|t| t.certfile.clone())),
            keyfile: if self.ctl.certfile.is_some() {
                self.ctl.keyfile.clone()
            } else {
                self.ctl
                    .keyfile
                    .clone()
                    .or_else(|| server.and_then(|t| t.keyfile.clone()))
            },
            keyfile_password: self
                .ctl
                .keyfile_password
                .clone()
                .or_else(|| server.and_then(|t| t.keyfile_password.clone())),
            insecure: self.ctl.insecure,
        }
    }

    /// The credentials the CLI sends to members: `ctl.authentication`, else `restapi.authentication`.
    pub fn ctl_auth(&self) -> Option<&BasicAuth> {
        self.ctl
            .authentication
            .as_ref()
            .or(self.restapi.authentication.as_ref())
    }
}
