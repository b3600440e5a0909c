//! The typed configuration: one struct per Patroni section (`restapi`, `ctl`, the DCS, `bootstrap`, `postgresql`,
//! `log`) and the whole [`Config`], with what the rest of hactl asks of it (the daemon's required keys, the URLs a
//! member publishes, its identity). Parsing into these types is in the section parsers beside this file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ha_core::decision::NodeIdentity;
use ha_core::model::{GlobalConfig, Tags};
use serde_json::{Map, Value};

use super::ConfigError;

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

/// `etcd3` or `etcd`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdConfig {
    /// `host:port` of every endpoint (from `host`, `hosts` or `url`).
    pub hosts: Vec<String>,
    /// `http` or `https`.
    pub protocol: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The CA that signs the servers' certificates (https); the system's CAs when unset.
    pub cacert: Option<String>,
    /// The client certificate; its key is `key`, or inside this file when `key` is unset.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// The password of an encrypted (PKCS#8) `key`.
    pub key_password: Option<String>,
}

impl EtcdConfig {
    /// `http://h:p` for each host.
    pub fn endpoints(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| format!("{}://{}", self.protocol, h))
            .collect()
    }
}

/// `consul`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsulConfig {
    /// `host:port`, default `127.0.0.1:8500`.
    pub host: String,
    pub scheme: String,
    pub token: Option<String>,
    pub dc: Option<String>,
    pub consistency: Option<String>,
    pub checks: Option<Vec<String>>,
    pub register_service: bool,
    pub verify: Option<bool>,
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `zookeeper`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZookeeperConfig {
    pub hosts: Vec<String>,
    pub use_ssl: bool,
    /// `auth_data`: `(scheme, credential)` pairs sent on every connection, e.g. `("digest", "user:password")`.
    pub auth_data: Vec<(String, String)>,
    /// `set_acls`: `(principal, permissions)`; the principal is `scheme:id` (a bare x509 name is refused at load).
    pub set_acls: Vec<(String, Vec<String>)>,
}

/// The DCS section: Patroni uses the first one it finds in this order.
#[derive(Debug, Clone, PartialEq)]
pub enum DcsConfig {
    Etcd3(EtcdConfig),
    /// etcd's v2 API: hactl talks v3 to the same endpoints (a warning says so).
    Etcd(EtcdConfig),
    Consul(ConsulConfig),
    Zookeeper(ZookeeperConfig),
}

impl DcsConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            DcsConfig::Etcd3(_) => "etcd3",
            DcsConfig::Etcd(_) => "etcd",
            DcsConfig::Consul(_) => "consul",
            DcsConfig::Zookeeper(_) => "zookeeper",
        }
    }
}

/// One `bootstrap.initdb` item: `data-checksums` or `{encoding: UTF8}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitdbOption {
    Flag(String),
    Value(String, String),
}

impl InitdbOption {
    /// The initdb command-line argument.
    pub fn to_arg(&self) -> String {
        match self {
            InitdbOption::Flag(f) => format!("--{f}"),
            InitdbOption::Value(k, v) => format!("--{k}={v}"),
        }
    }
}

/// `bootstrap`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootstrapConfig {
    /// Written once to the DCS `config` key by the node that bootstraps the cluster.
    pub dcs: GlobalConfig,
    pub initdb: Vec<InitdbOption>,
    pub pg_hba: Vec<String>,
    /// `method` other than `initdb`, with its section.
    pub method: Option<BootstrapMethod>,
    /// `post_bootstrap` (or `post_init`).
    pub post_bootstrap: Option<String>,
}

/// `bootstrap.method: <name>` and its `bootstrap.<name>` section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootstrapMethod {
    pub name: String,
    pub command: String,
    /// Do not pass `--scope` and `--datadir`.
    pub no_params: bool,
    pub keep_existing_recovery_conf: bool,
    pub recovery_conf: BTreeMap<String, String>,
    /// Every other key, passed as `--key=value`.
    pub params: Vec<(String, String)>,
}

/// A PostgreSQL role from `postgresql.authentication`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgUser {
    pub username: String,
    pub password: Option<String>,
    /// The libpq connection options (`sslmode`, `sslrootcert`, ...; `pg_control::KNOWN_OPTIONS`), as given:
    /// unknown keys are refused at load, values by pg-control when it starts.
    pub options: BTreeMap<String, String>,
}

/// `postgresql.authentication`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgAuthentication {
    pub superuser: Option<PgUser>,
    pub replication: Option<PgUser>,
    pub rewind: Option<PgUser>,
}

/// `postgresql.callbacks`: each run as `<cmd> <action> <role> <scope>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Callbacks {
    pub on_start: Option<String>,
    pub on_stop: Option<String>,
    pub on_restart: Option<String>,
    pub on_reload: Option<String>,
    pub on_role_change: Option<String>,
}

/// `postgresql`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostgresqlConfig {
    pub listen: Option<HostPort>,
    pub connect_address: Option<HostPort>,
    pub data_dir: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    /// Overrides of binary names (`bin_name: {pg_ctl: ...}`).
    pub bin_name: BTreeMap<String, String>,
    pub pgpass: Option<PathBuf>,
    pub authentication: PgAuthentication,
    /// Local parameters: they override the cluster-wide ones.
    pub parameters: Map<String, Value>,
    pub pg_hba: Vec<String>,
    pub use_pg_rewind: Option<bool>,
    pub callbacks: Callbacks,
    /// `postgresql.pre_promote`: a non-zero exit cancels the promotion.
    pub pre_promote: Option<String>,
    /// `create_replica_methods`, in order, with their sections.
    pub replica_methods: Vec<ReplicaMethodConfig>,
}

/// One entry of `postgresql.create_replica_methods`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplicaMethodConfig {
    pub name: String,
    /// `None`: `basebackup` (pg_basebackup).
    pub command: Option<String>,
    pub no_leader: bool,
    pub keep_data: bool,
    pub no_params: bool,
    /// Every other key of the section, passed as `--key=value`.
    pub params: Vec<(String, String)>,
}

/// `log.type`: Patroni's plain text lines, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogType {
    #[default]
    Plain,
    Json,
}

/// `log.format`: a Python logging format string (`%(asctime)s %(levelname)s: %(message)s`), or for JSON logs the
/// fields to write, as a list or as a mapping from field to the name it is written under.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFormat {
    Text(String),
    Fields(Vec<(String, String)>),
}

/// `log`: Patroni's keys, every one acted on or warned about at load.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Patroni's level names: DEBUG, INFO, WARNING, ERROR, CRITICAL.
    pub level: String,
    pub log_type: LogType,
    /// `None`: Patroni's default, `%(asctime)s %(levelname)s: %(message)s`.
    pub format: Option<LogFormat>,
    /// strftime format of `%(asctime)s`; `None`: Python's `2026-12-01 10:00:00,123`.
    pub dateformat: Option<String>,
    /// Written into every JSON line.
    pub static_fields: BTreeMap<String, String>,
    /// Log to `dir/patroni.log` (rotated) instead of standard error.
    pub dir: Option<PathBuf>,
    /// Permissions of the log file (`mode: 0o600`).
    pub mode: Option<u32>,
    /// Rotate after this many bytes (Patroni: 25000000).
    pub file_size: u64,
    /// Rotated files kept (Patroni: 4).
    pub file_num: u32,
    /// Per-target levels (`loggers: {dcs_etcd: DEBUG}`): hactl's crates are its targets.
    pub loggers: BTreeMap<String, String>,
    /// Log a repeated "no action" heartbeat line once, not every loop.
    pub deduplicate_heartbeat_logs: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "INFO".into(),
            log_type: LogType::Plain,
            format: None,
            dateformat: None,
            static_fields: BTreeMap::new(),
            dir: None,
            mode: None,
            file_size: 25_000_000,
            file_num: 4,
            loggers: BTreeMap::new(),
            deduplicate_heartbeat_logs: false,
        }
    }
}

impl LogConfig {
    /// The `tracing` filter: Patroni's level name for everything, then each `loggers` entry for its target.
    pub fn tracing_filter(&self) -> String {
        let mut directives = vec![tracing_level(&self.level).to_string()];
        directives.extend(
            self.loggers
                .iter()
                .map(|(target, level)| format!("{target}={}", tracing_level(level))),
        );
        directives.join(",")
    }
}

/// `tracing`'s level for one of Patroni's level names.
pub fn tracing_level(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "DEBUG" | "NOTSET" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        _ => "info",
    }
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
    /// Unknown or unsupported keys, one line each: log them at start.
    pub warnings: Vec<String>,
}

/// The daemon's required keys, read out of a [`Config`] by [`Config::validate_for_daemon`]. Holding one is the
/// proof the keys were there: the daemon takes them from here rather than unwrapping the config's options again
/// on the word of a check made elsewhere. The DCS and the PostgreSQL users are checked too, but read by their own
/// builders ([`crate::dcs::connect`], [`crate::daemon::pg_settings`]).
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

    /// `postgres://connect_address/postgres`, as members publish it.
    pub fn conn_url(&self) -> Option<String> {
        self.postgresql
            .connect_address
            .as_ref()
            .map(|a| format!("postgres://{a}/postgres"))
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
