//! Patroni's YAML configuration, so that an existing Patroni config file starts a hactl node unchanged.
//!
//! Loading is three steps, each testable alone: the file is read into a tree ([`value::yaml_to_json`]), the
//! `PATRONI_*` environment is deep-merged over it ([`env::environment_configuration`]), then the tree is read into
//! typed sections here. Every error names the full key (`postgresql.authentication.superuser`) and what was
//! expected; keys hactl does not know are warnings, never errors, because Patroni files carry options for features
//! (Kubernetes, Citus, custom bootstrap...) a hactl node can run without.

pub mod env;
pub mod value;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ha_core::decision::NodeIdentity;
use ha_core::model::{GlobalConfig, Tags};
use serde_json::{Map, Value};

use value::Section;

/// Patroni's default namespace.
pub const DEFAULT_NAMESPACE: &str = "/service/";

/// Why a configuration was refused. Each variant names the key (or variable) to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not valid YAML: {message}")]
    Yaml { origin: String, message: String },
    #[error("`{key}` is required")]
    Missing { key: String },
    #[error("`{key}`: expected {expected}, got {got}")]
    Invalid {
        key: String,
        expected: String,
        got: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("no DCS configured: add one of `etcd3`, `etcd`, `consul`, `zookeeper` (or PATRONI_ETCD3_HOSTS...)")]
    NoDcs,
    #[error("`bootstrap.dcs`: {0}")]
    Timing(#[from] ha_core::model::ConfigError),
}

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
    pub certfile: Option<String>,
    pub keyfile: Option<String>,
}

/// `ctl`: how the CLI authenticates to members' REST API.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CtlConfig {
    pub authentication: Option<BasicAuth>,
    pub insecure: bool,
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
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
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
}

/// A PostgreSQL role from `postgresql.authentication`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgUser {
    pub username: String,
    pub password: Option<String>,
    /// sslmode, sslcert... as given.
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
}

/// `log`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Patroni's level names: DEBUG, INFO, WARNING, ERROR, CRITICAL.
    pub level: String,
    pub format: Option<String>,
    pub dir: Option<PathBuf>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "INFO".into(),
            format: None,
            dir: None,
        }
    }
}

impl LogConfig {
    /// The `tracing` filter for Patroni's level name.
    pub fn tracing_filter(&self) -> &'static str {
        match self.level.to_ascii_uppercase().as_str() {
            "DEBUG" | "NOTSET" => "debug",
            "WARNING" | "WARN" => "warn",
            "ERROR" | "CRITICAL" | "FATAL" => "error",
            _ => "info",
        }
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
    /// Unknown or unsupported keys, one line each: log them at start.
    pub warnings: Vec<String>,
}

/// Top-level sections Patroni knows that hactl does not implement: accepted with a warning.
const UNSUPPORTED_SECTIONS: &[&str] = &["kubernetes", "raft", "exhibitor", "citus", "watchdog"];

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
                Some(doc) => {
                    return Config::from_tree(parse_yaml(env::PATRONI_CONFIGURATION, doc)?)
                }
                None => Value::Object(Map::new()),
            },
        };
        if tree.is_null() {
            tree = Value::Object(Map::new());
        }
        value::deep_merge(&mut tree, env::environment_configuration(env)?);
        Config::from_tree(tree)
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
        root.warn_unknown(&known, &mut warnings);

        let scope = root.required_string("scope")?;
        let namespace = root
            .string("namespace")?
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let name = root.string("name")?;

        let restapi = parse_restapi(&root.section("restapi")?, &mut warnings)?;
        let ctl = parse_ctl(&root.section("ctl")?, &mut warnings)?;
        let dcs = parse_dcs(&root, &mut warnings)?;
        let bootstrap = parse_bootstrap(&root.section("bootstrap")?, &mut warnings)?;
        let postgresql = parse_postgresql(&root.section("postgresql")?, &mut warnings)?;
        let tags = parse_tags(&root, &mut warnings)?;
        let log = parse_log(&root.section("log")?, &mut warnings)?;

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
            warnings,
        })
    }

    /// The keys the daemon cannot start without (Patroni's validator's required set): `name`, `restapi.listen` and
    /// `connect_address`, a DCS, `postgresql.listen`, `connect_address`, `data_dir`, and the superuser and
    /// replication users.
    pub fn validate_for_daemon(&self) -> Result<(), ConfigError> {
        let missing = |key: &str| ConfigError::Missing { key: key.into() };
        if self.name.as_deref().map_or(true, |n| n.trim().is_empty()) {
            return Err(missing("name"));
        }
        if self.restapi.listen.is_none() {
            return Err(missing("restapi.listen"));
        }
        if self.restapi.connect_address.is_none() {
            return Err(missing("restapi.connect_address"));
        }
        if self.dcs.is_none() {
            return Err(ConfigError::NoDcs);
        }
        let pg = &self.postgresql;
        if pg.listen.is_none() {
            return Err(missing("postgresql.listen"));
        }
        if pg.connect_address.is_none() {
            return Err(missing("postgresql.connect_address"));
        }
        if pg.data_dir.is_none() {
            return Err(missing("postgresql.data_dir"));
        }
        if pg.authentication.superuser.is_none() {
            return Err(missing("postgresql.authentication.superuser"));
        }
        if pg.authentication.replication.is_none() {
            return Err(missing("postgresql.authentication.replication"));
        }
        Ok(())
    }

    /// The DCS key prefix, e.g. `/service/batman/`.
    pub fn key_path(&self) -> ha_core::model::KeyPath {
        ha_core::model::KeyPath::new(&self.namespace, &self.scope)
    }

    /// `http://connect_address/patroni`, as members publish it (plain HTTP: the REST API has no TLS yet, so a
    /// `certfile` does not turn it into https).
    pub fn api_url(&self) -> Option<String> {
        self.restapi
            .connect_address
            .as_ref()
            .map(|a| format!("http://{a}/patroni"))
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

    /// The credentials the CLI sends to members: `ctl.authentication`, else `restapi.authentication`.
    pub fn ctl_auth(&self) -> Option<&BasicAuth> {
        self.ctl
            .authentication
            .as_ref()
            .or(self.restapi.authentication.as_ref())
    }
}

fn parse_auth(s: &Section, warnings: &mut Vec<String>) -> Result<Option<BasicAuth>, ConfigError> {
    let a = s.section("authentication")?;
    if a.map.is_none() {
        return Ok(None);
    }
    a.warn_unknown(&["username", "password"], warnings);
    Ok(Some(BasicAuth {
        username: a.required_string("username")?,
        password: a.required_string("password")?,
    }))
}

fn opt_host_port(s: &Section, key: &str) -> Result<Option<HostPort>, ConfigError> {
    s.string(key)?
        .map(|v| HostPort::parse(&s.key(key), &v))
        .transpose()
}

fn parse_restapi(s: &Section, warnings: &mut Vec<String>) -> Result<RestApiConfig, ConfigError> {
    let known: Vec<&str> = env::RESTAPI_PARAMS
        .iter()
        .copied()
        .chain(["authentication"])
        .collect();
    s.warn_unknown(&known, warnings);
    if s.has("certfile") {
        warnings.push(format!(
            "`{}`: hactl's REST API serves plain HTTP only (no TLS yet); members publish http:// API URLs",
            s.key("certfile")
        ));
    }
    for k in ["allowlist", "allowlist_include_members", "verify_client"] {
        if s.has(k) {
            warnings.push(format!("`{}` is not enforced by hactl yet", s.key(k)));
        }
    }
    Ok(RestApiConfig {
        listen: opt_host_port(s, "listen")?,
        connect_address: opt_host_port(s, "connect_address")?,
        authentication: parse_auth(s, warnings)?,
        certfile: s.string("certfile")?,
        keyfile: s.string("keyfile")?,
    })
}

fn parse_ctl(s: &Section, warnings: &mut Vec<String>) -> Result<CtlConfig, ConfigError> {
    s.warn_unknown(
        &[
            "authentication",
            "insecure",
            "cacert",
            "certfile",
            "keyfile",
            "keyfile_password",
        ],
        warnings,
    );
    Ok(CtlConfig {
        authentication: parse_auth(s, warnings)?,
        insecure: s.bool("insecure")?.unwrap_or(false),
    })
}

fn parse_etcd(s: &Section, warnings: &mut Vec<String>) -> Result<EtcdConfig, ConfigError> {
    s.warn_unknown(
        &[
            "host",
            "hosts",
            "port",
            "url",
            "proxy",
            "srv",
            "srv_suffix",
            "protocol",
            "use_proxies",
            "username",
            "password",
            "cacert",
            "cert",
            "key",
            "key_password",
            "verify",
            "retry_timeout",
        ],
        warnings,
    );
    let mut protocol = s.string("protocol")?.unwrap_or_else(|| "http".into());
    if protocol != "http" && protocol != "https" {
        return Err(ConfigError::Invalid {
            key: s.key("protocol"),
            expected: "http or https".into(),
            got: format!("{protocol:?}"),
        });
    }
    let mut hosts = Vec::new();
    if let Some(list) = s.string_list("hosts")? {
        hosts = list;
    } else if let Some(h) = s.string("host")? {
        hosts.push(h);
    } else if let Some(url) = s.string("url")? {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| ConfigError::Invalid {
            key: s.key("url"),
            expected: "a URL like http://host:2379".into(),
            got: format!("{url:?}"),
        })?;
        protocol = scheme.to_string();
        hosts.push(rest.trim_end_matches('/').to_string());
    }
    for k in ["proxy", "srv"] {
        if s.has(k) {
            warnings.push(format!(
                "`{}` is not supported by hactl; list the endpoints in `hosts`",
                s.key(k)
            ));
        }
    }
    if hosts.is_empty() && !s.has("srv") && !s.has("proxy") {
        return Err(ConfigError::Missing {
            key: format!("{} (host, hosts or url)", s.path),
        });
    }
    for (i, h) in hosts.iter().enumerate() {
        HostPort::parse(&format!("{}[{i}]", s.key("hosts")), h)?;
    }
    Ok(EtcdConfig {
        hosts,
        protocol,
        username: s.string("username")?,
        password: s.string("password")?,
        cacert: s.string("cacert")?,
        cert: s.string("cert")?,
        key: s.string("key")?,
    })
}

fn parse_dcs(root: &Section, warnings: &mut Vec<String>) -> Result<Option<DcsConfig>, ConfigError> {
    let present: Vec<&str> = ["etcd3", "etcd", "consul", "zookeeper"]
        .into_iter()
        .filter(|k| root.has(k))
        .collect();
    if present.len() > 1 {
        warnings.push(format!(
            "several DCS sections ({}): using `{}`",
            present.join(", "),
            present[0]
        ));
    }
    let Some(kind) = present.first() else {
        return Ok(None);
    };
    let s = root.section(kind)?;
    Ok(Some(match *kind {
        "etcd3" => DcsConfig::Etcd3(parse_etcd(&s, warnings)?),
        "etcd" => {
            warnings.push(
                "`etcd` (API v2): hactl talks etcd's v3 API to the same endpoints; the keys are not shared with v2 clients"
                    .into(),
            );
            DcsConfig::Etcd(parse_etcd(&s, warnings)?)
        }
        "consul" => {
            s.warn_unknown(
                &[
                    "host",
                    "url",
                    "port",
                    "scheme",
                    "token",
                    "verify",
                    "cacert",
                    "cert",
                    "key",
                    "dc",
                    "consistency",
                    "checks",
                    "register_service",
                    "service_tags",
                    "service_check_interval",
                    "service_check_tls_server_name",
                ],
                warnings,
            );
            let mut scheme = s.string("scheme")?.unwrap_or_else(|| "http".into());
            let mut host = s.string("host")?;
            if host.is_none() {
                if let Some(url) = s.string("url")? {
                    if let Some((sch, rest)) = url.split_once("://") {
                        scheme = sch.to_string();
                        host = Some(rest.trim_end_matches('/').to_string());
                    }
                }
            }
            let mut host = host.unwrap_or_else(|| "127.0.0.1:8500".into());
            if !host.contains(':') {
                let port = s.u64("port")?.unwrap_or(8500);
                host = format!("{host}:{port}");
            }
            HostPort::parse(&s.key("host"), &host)?;
            DcsConfig::Consul(ConsulConfig {
                host,
                scheme,
                token: s.string("token")?,
                dc: s.string("dc")?,
                consistency: s.string("consistency")?,
                checks: s.string_list("checks")?,
                register_service: s.bool("register_service")?.unwrap_or(false),
                verify: s.bool("verify")?,
                cacert: s.string("cacert")?,
                cert: s.string("cert")?,
                key: s.string("key")?,
            })
        }
        _ => {
            s.warn_unknown(
                &[
                    "hosts",
                    "use_ssl",
                    "cacert",
                    "cert",
                    "key",
                    "key_password",
                    "verify",
                    "set_acls",
                    "auth_data",
                ],
                warnings,
            );
            let hosts = s.string_list("hosts")?.unwrap_or_default();
            if hosts.is_empty() {
                return Err(ConfigError::Missing {
                    key: s.key("hosts"),
                });
            }
            DcsConfig::Zookeeper(ZookeeperConfig {
                hosts,
                use_ssl: s.bool("use_ssl")?.unwrap_or(false),
            })
        }
    }))
}

fn parse_bootstrap(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<BootstrapConfig, ConfigError> {
    s.warn_unknown(
        &[
            "dcs",
            "initdb",
            "pg_hba",
            "method",
            "post_bootstrap",
            "post_init",
            "users",
        ],
        warnings,
    );
    for k in ["method", "post_bootstrap", "post_init", "users"] {
        if s.has(k) {
            warnings.push(format!(
                "`{}` is not supported by hactl and is ignored",
                s.key(k)
            ));
        }
    }
    let dcs_tree = s.section("dcs")?;
    let dcs: GlobalConfig = match dcs_tree.map {
        None => GlobalConfig::default(),
        Some(m) => {
            serde_json::from_value(Value::Object(m.clone())).map_err(|e| ConfigError::Invalid {
                key: dcs_tree.path.clone(),
                expected: "Patroni's dynamic configuration".into(),
                got: e.to_string(),
            })?
        }
    };
    dcs.timing()?;
    let mut initdb = Vec::new();
    if let Some(v) = s.get("initdb") {
        let items = v
            .as_array()
            .ok_or_else(|| ConfigError::invalid(&s.key("initdb"), "a list of options", v))?;
        for (i, item) in items.iter().enumerate() {
            let key = format!("{}[{i}]", s.key("initdb"));
            match item {
                Value::String(f) => initdb.push(InitdbOption::Flag(f.clone())),
                Value::Object(m) if m.len() == 1 => {
                    let (k, v) = m.iter().next().expect("one entry");
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        other => {
                            return Err(ConfigError::invalid(
                                &format!("{key}.{k}"),
                                "a scalar",
                                other,
                            ))
                        }
                    };
                    initdb.push(InitdbOption::Value(k.clone(), v));
                }
                other => {
                    return Err(ConfigError::invalid(
                        &key,
                        "an option name or a one-key mapping like {encoding: UTF8}",
                        other,
                    ))
                }
            }
        }
    }
    Ok(BootstrapConfig {
        dcs,
        initdb,
        pg_hba: s.string_list("pg_hba")?.unwrap_or_default(),
    })
}

fn parse_user(s: &Section, key: &str) -> Result<Option<PgUser>, ConfigError> {
    let u = s.section(key)?;
    let Some(m) = u.map else {
        return Ok(None);
    };
    let mut options = BTreeMap::new();
    for (k, v) in m {
        if k != "username" && k != "password" {
            if let Some(s) = v.as_str() {
                options.insert(k.clone(), s.to_string());
            }
        }
    }
    Ok(Some(PgUser {
        username: u.required_string("username")?,
        password: u.string("password")?,
        options,
    }))
}

fn opt_path(s: &Section, key: &str) -> Result<Option<PathBuf>, ConfigError> {
    Ok(s.string(key)?.filter(|p| !p.is_empty()).map(PathBuf::from))
}

fn parse_postgresql(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<PostgresqlConfig, ConfigError> {
    s.warn_unknown(
        &[
            "listen",
            "connect_address",
            "proxy_address",
            "data_dir",
            "config_dir",
            "bin_dir",
            "bin_name",
            "pgpass",
            "authentication",
            "parameters",
            "pg_hba",
            "pg_ident",
            "use_pg_rewind",
            "callbacks",
            "pre_promote",
            "before_stop",
            "create_replica_methods",
            "basebackup",
            "remove_data_directory_on_rewind_failure",
            "remove_data_directory_on_diverged_timelines",
            "recovery_conf",
            "custom_conf",
            "use_unix_socket",
            "use_unix_socket_repl",
            "pg_ctl_timeout",
            "database",
            "replica_method",
        ],
        warnings,
    );
    let auth = s.section("authentication")?;
    auth.warn_unknown(&["superuser", "replication", "rewind"], warnings);
    let cb = s.section("callbacks")?;
    cb.warn_unknown(
        &[
            "on_start",
            "on_stop",
            "on_restart",
            "on_reload",
            "on_role_change",
        ],
        warnings,
    );
    let mut bin_name = BTreeMap::new();
    let bn = s.section("bin_name")?;
    if let Some(m) = bn.map {
        for (k, v) in m {
            match v.as_str() {
                Some(x) => {
                    bin_name.insert(k.clone(), x.to_string());
                }
                None => return Err(ConfigError::invalid(&bn.key(k), "a program name", v)),
            }
        }
    }
    let parameters = s.raw_map("parameters")?;
    for (k, v) in &parameters {
        if v.is_object() || v.is_array() {
            return Err(ConfigError::invalid(
                &format!("{}.{k}", s.key("parameters")),
                "a scalar parameter value",
                v,
            ));
        }
    }
    Ok(PostgresqlConfig {
        listen: opt_host_port(s, "listen")?,
        connect_address: opt_host_port(s, "connect_address")?,
        data_dir: opt_path(s, "data_dir")?,
        config_dir: opt_path(s, "config_dir")?,
        bin_dir: opt_path(s, "bin_dir")?,
        bin_name,
        pgpass: opt_path(s, "pgpass")?,
        authentication: PgAuthentication {
            superuser: parse_user(&auth, "superuser")?,
            replication: parse_user(&auth, "replication")?,
            rewind: parse_user(&auth, "rewind")?,
        },
        parameters,
        pg_hba: s.string_list("pg_hba")?.unwrap_or_default(),
        use_pg_rewind: s.bool("use_pg_rewind")?,
        callbacks: Callbacks {
            on_start: cb.string("on_start")?,
            on_stop: cb.string("on_stop")?,
            on_restart: cb.string("on_restart")?,
            on_reload: cb.string("on_reload")?,
            on_role_change: cb.string("on_role_change")?,
        },
        pre_promote: s.string("pre_promote")?,
    })
}

fn parse_tags(root: &Section, warnings: &mut Vec<String>) -> Result<Tags, ConfigError> {
    let s = root.section("tags")?;
    let Some(m) = s.map else {
        return Ok(Tags::default());
    };
    let tags: Tags = serde_json::from_value(Value::Object(m.clone())).map_err(|e| {
        ConfigError::Invalid {
            key: "tags".into(),
            expected: "tags (nofailover, failover_priority, noloadbalance, clonefrom, nosync, nostream: booleans; replicatefrom: a member name)".into(),
            got: e.to_string(),
        }
    })?;
    if let (Some(b), Some(p)) = (tags.nofailover, tags.failover_priority) {
        if b == (p > 0) {
            warnings.push(format!(
                "tags: nofailover: {b} conflicts with failover_priority: {p}; nofailover wins"
            ));
        }
    }
    Ok(tags)
}

fn parse_log(s: &Section, warnings: &mut Vec<String>) -> Result<LogConfig, ConfigError> {
    s.warn_unknown(
        &[
            "type",
            "level",
            "traceback_level",
            "format",
            "dateformat",
            "static_fields",
            "max_queue_size",
            "dir",
            "mode",
            "file_size",
            "file_num",
            "loggers",
            "deduplicate_heartbeat_logs",
        ],
        warnings,
    );
    let level = s.string("level")?.unwrap_or_else(|| "INFO".into());
    if !matches!(
        level.to_ascii_uppercase().as_str(),
        "DEBUG" | "INFO" | "WARNING" | "WARN" | "ERROR" | "CRITICAL" | "FATAL" | "NOTSET"
    ) {
        return Err(ConfigError::Invalid {
            key: s.key("level"),
            expected: "one of DEBUG, INFO, WARNING, ERROR, CRITICAL".into(),
            got: format!("{level:?}"),
        });
    }
    Ok(LogConfig {
        level,
        format: s.string("format")?,
        dir: opt_path(s, "dir")?,
    })
}

#[cfg(test)]
mod tests;
