//! `bootstrap` and `postgresql`: initdb options, bootstrap methods, users, callbacks, replica methods.

#[allow(unused_imports)]
use super::*;

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
    /// `proxy_address`: a connection pooler in front of this node; published as the member's `proxy_url`.
    pub proxy_address: Option<HostPort>,
    /// `database`: the database hactl connects to locally and names in `conn_url` (Patroni's default `postgres`).
    pub database: String,
    pub data_dir: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
    /// `custom_conf`: the base configuration file the managed postgresql.conf includes instead of
    /// `postgresql.base.conf`.
    pub custom_conf: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    /// Overrides of binary names, keyed by the usual name (`pg_ctl`, `initdb`, ...).
    pub bin_name: BTreeMap<String, String>,
    pub pgpass: Option<PathBuf>,
    pub authentication: PgAuthentication,
    /// Local parameters: they override the cluster-wide ones.
    pub parameters: Map<String, Value>,
    pub pg_hba: Vec<String>,
    pub use_pg_rewind: Option<bool>,
    /// `remove_data_directory_on_rewind_failure`: after a failed pg_rewind, wipe the data directory and clone again.
    pub remove_data_directory_on_rewind_failure: bool,
    /// `remove_data_directory_on_diverged_timelines`: with pg_rewind off, wipe a diverged node and clone again.
    pub remove_data_directory_on_diverged_timelines: bool,
    pub callbacks: Callbacks,
    /// `postgresql.pre_promote`: a non-zero exit cancels the promotion.
    pub pre_promote: Option<String>,
    /// `before_stop`: a command run right before a smart or fast stop.
    pub before_stop: Option<String>,
    /// `pg_ident`: pg_ident.conf lines.
    pub pg_ident: Vec<String>,
    /// `basebackup`: pg_basebackup options, as `--name[=value]`.
    pub basebackup: Vec<String>,
    /// `pg_ctl_timeout` in seconds: how long a start or a stop may take.
    pub pg_ctl_timeout: Option<f64>,
    /// `recovery_conf`: a standby's extra recovery settings (replaces the cluster-wide one when set).
    pub recovery_conf: BTreeMap<String, String>,
    /// `create_replica_methods`, in order, with their sections.
    pub replica_methods: Vec<ReplicaMethodConfig>,
    /// The other `postgresql.<name>` sections with a `command`: methods a standby cluster's
    /// `standby_cluster.create_replica_methods` may name.
    pub other_replica_methods: Vec<ReplicaMethodConfig>,
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
