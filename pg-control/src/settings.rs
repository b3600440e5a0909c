//! Everything [`crate::PgCtl`] needs to know about one local PostgreSQL: Patroni's `postgresql:` section.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A role name, its password and the libpq connection options it connects to other members with. The password
/// only ever goes into the 0600 pgpass file, an initdb `--pwfile` that is removed right after, or a `CREATE ROLE`
/// statement: never onto a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The role name (`postgresql.authentication.<role>.username`).
    pub username: String,
    /// Its password (`postgresql.authentication.<role>.password`). `None`: the role has none, which
    /// [`PgCtl::new`](crate::PgCtl::new) refuses when pg_hba asks for passwords.
    #[serde(default)]
    pub password: Option<String>,
    /// Patroni's `authentication.<role>` connection options (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
    /// `sslpassword`, `sslcrl`, `sslcrldir`, `sslsni`, `gssencmode`, `channel_binding`, `sslnegotiation`), as
    /// given. [`PgCtl::new`](crate::PgCtl::new) refuses an unknown key and a value it cannot honour, naming it;
    /// see `conn_options` for what each one does on each path.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Credentials {
    /// A role and its password, with no connection options.
    pub fn new(username: &str, password: Option<&str>) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.map(str::to_string),
            options: BTreeMap::new(),
        }
    }

    /// The same credentials with one more connection option (`sslmode`, `sslrootcert`, ...).
    pub fn with_option(mut self, key: &str, value: &str) -> Credentials {
        self.options.insert(key.to_string(), value.to_string());
        self
    }
}

/// One of `postgresql.create_replica_methods`: `basebackup` (pg_basebackup, an empty `argv`) or a command such as
/// pgBackRest's restore (Patroni's `postgresql.<method>` section).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaMethod {
    /// The method's name as `create_replica_methods` lists it (`basebackup`, `pgbackrest`, ...); it names the
    /// method in logs and errors.
    pub name: String,
    /// The program and its arguments (`--scope`, `--datadir`, `--role=replica` and the method's own keys);
    /// `--connstring=` to the source is added when there is one, unless `no_params`. Empty: pg_basebackup.
    pub argv: Vec<String>,
    /// Usable without a running leader (a restore from a backup repository).
    pub no_leader: bool,
    /// Run on the existing data directory instead of an empty one.
    pub keep_data: bool,
    /// Patroni's `no_params`: the command gets its own arguments only, no `--connstring` (pgBackRest's `restore`
    /// refuses options it does not know).
    pub no_params: bool,
}

/// A custom bootstrap method (Patroni's `bootstrap.<method>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomBootstrap {
    /// The program and its arguments, `--scope`/`--datadir` and the method's own `--key=value` included.
    pub argv: Vec<String>,
    /// Keep the recovery settings and signal files the command left (pgBackRest, Barman write their own).
    pub keep_existing_recovery_conf: bool,
    /// Recovery settings to start with (`restore_command`, `recovery_target_*`): the server recovers with them
    /// and is promoted when recovery ends.
    pub recovery_conf: BTreeMap<String, String>,
}

/// One initdb option, as Patroni's `bootstrap.initdb` list holds them: `- data-checksums` or `- encoding: UTF8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InitdbOption {
    /// An option without a value, e.g. `data-checksums` (passed as `--data-checksums`).
    Flag(String),
    /// Options with a value, e.g. `encoding: UTF8` (passed as `--encoding=UTF8`); Patroni's list item is a map of
    /// one key.
    Value(BTreeMap<String, String>),
}

impl InitdbOption {
    /// An option without a value, e.g. `InitdbOption::flag("data-checksums")`.
    pub fn flag(name: &str) -> InitdbOption {
        InitdbOption::Flag(name.to_string())
    }
    /// An option with a value, e.g. `InitdbOption::value("encoding", "UTF8")`.
    pub fn value(name: &str, value: &str) -> InitdbOption {
        InitdbOption::Value(BTreeMap::from([(name.to_string(), value.to_string())]))
    }
    /// The command-line form: `--data-checksums`, `--encoding=UTF8`.
    pub(crate) fn to_args(&self) -> Vec<String> {
        match self {
            InitdbOption::Flag(f) => vec![format!("--{}", f.trim_start_matches('-'))],
            InitdbOption::Value(m) => m
                .iter()
                .map(|(k, v)| format!("--{}={}", k.trim_start_matches('-'), v))
                .collect(),
        }
    }
}

/// Bounds on each kind of call. A hung PostgreSQL makes a call fail with a timeout, never hang the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting plus one query (observe, CHECKPOINT, slot management). Patroni's `retry_timeout` is a natural bound.
    pub query: Duration,
    /// `pg_ctl start` until the server accepts connections (crash recovery may take a while).
    pub start: Duration,
    /// How long [`crate::PgCtl::start_primary`] waits for a primary to accept connections before it returns with the
    /// server still starting (crash recovery). The HA loop must keep renewing its leader lock meanwhile, so this is
    /// well under the lease; how long the start may take in all is the decision's `primary_start_timeout`.
    pub primary_start_wait: Duration,
    /// `pg_ctl stop`, any mode.
    pub stop: Duration,
    /// `pg_ctl promote` until out of recovery.
    pub promote: Duration,
    /// initdb.
    pub initdb: Duration,
    /// pg_basebackup: grows with the database size.
    pub clone: Duration,
    /// pg_rewind.
    pub rewind: Duration,
    /// Short helper commands: pg_controldata, `postgres --version`, `pg_ctl reload`.
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            query: Duration::from_secs(5),
            start: Duration::from_secs(60),
            primary_start_wait: Duration::from_secs(10),
            stop: Duration::from_secs(60),
            promote: Duration::from_secs(60),
            initdb: Duration::from_secs(120),
            clone: Duration::from_secs(3600),
            rewind: Duration::from_secs(600),
            command: Duration::from_secs(10),
        }
    }
}

/// Settings of one local PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// The member name: `application_name` towards the upstream and (sanitized) the replication slot name.
    pub name: String,
    /// PostgreSQL's binaries (initdb, pg_ctl, postgres, pg_basebackup, pg_rewind, pg_controldata).
    pub bin_dir: PathBuf,
    /// `postgresql.data_dir`: the cluster's data directory, owned by the user PostgreSQL runs as, mode 0700.
    pub data_dir: PathBuf,
    /// `listen_addresses`.
    pub listen_host: String,
    /// `port`, also passed on every start's command line so a config copied by pg_rewind cannot change it.
    pub port: u16,
    /// Where other members reach this server (for the conn_url the daemon publishes).
    pub connect_host: String,
    /// `unix_socket_directories`: local connections (observe, role creation) go through it.
    pub socket_dir: PathBuf,
    /// Patroni's `postgresql.database`: the database hactl's own connections use (local ones, pg_rewind's source)
    /// and the one the published `conn_url` names. `postgres` by default; it must exist.
    pub database: String,
    /// The OS user that runs PostgreSQL. Required when this process runs as root.
    pub os_user: Option<String>,
    /// `postgresql.authentication.superuser`: initdb's bootstrap superuser, and the role hactl connects to its own
    /// server as (observe, slots, role creation).
    pub superuser: Credentials,
    /// `postgresql.authentication.replication`: the role replicas stream as and pg_basebackup connects as; created
    /// at bootstrap when it is not the superuser.
    pub replication: Credentials,
    /// The role pg_rewind connects as; the superuser when `None`.
    pub rewind: Option<Credentials>,
    /// Per-node parameters (`postgresql.parameters` of the local config): they win over the cluster-wide ones.
    pub parameters: BTreeMap<String, String>,
    /// pg_hba.conf lines; when empty, initdb's file (plus nothing) is kept.
    pub pg_hba: Vec<String>,
    /// pg_ident.conf lines (Patroni's `postgresql.pg_ident`); when empty, initdb's file is kept.
    pub pg_ident: Vec<String>,
    /// Patroni's `postgresql.bin_name`: a binary's name in `bin_dir` where it is not the usual one, keyed by the
    /// usual name (`pg_ctl`, `initdb`, `pg_controldata`, `pg_basebackup`, `pg_rewind`, `postgres`).
    pub bin_name: BTreeMap<String, String>,
    /// Patroni's `postgresql.basebackup`: pg_basebackup options (`--max-rate=100M`, `--waldir=/wal`, `--verbose`)
    /// added after hactl's own (`-X stream -c fast`, the member's slot), so a later option wins where
    /// pg_basebackup takes the last one.
    pub basebackup_options: Vec<String>,
    /// `bootstrap.initdb`.
    pub initdb: Vec<InitdbOption>,
    /// `bootstrap.method` other than initdb: a command that fills the data directory (a restore from backup, a
    /// clone of another cluster) instead of initdb.
    pub custom_bootstrap: Option<CustomBootstrap>,
    /// Patroni's `postgresql.config_dir`: where postgresql.conf, postgresql.base.conf, pg_hba.conf and
    /// pg_ident.conf live when not in the data directory (a Debian-style `/etc/postgresql/15/main`). The server is
    /// started with `--config-file` there, and the managed postgresql.conf points `hba_file` and `ident_file` at
    /// it unless the node's parameters set them. `None`: the data directory.
    pub config_dir: Option<PathBuf>,
    /// Patroni's `postgresql.custom_conf`: the user's base configuration file the managed postgresql.conf
    /// includes instead of `postgresql.base.conf` (relative paths from the data directory, as PostgreSQL resolves
    /// an `include`); hactl then neither creates nor includes `postgresql.base.conf`.
    pub custom_conf: Option<PathBuf>,
    /// The node's own `postgresql.recovery_conf`: recovery settings a standby gets besides `primary_conninfo`,
    /// `primary_slot_name` and `recovery_target_timeline` (which hactl writes); when set, it replaces the
    /// cluster-wide one, as Patroni's local configuration replaces the dynamic one.
    pub recovery_conf: BTreeMap<String, String>,
    /// `postgresql.create_replica_methods`, in order; empty: pg_basebackup only.
    pub replica_methods: Vec<ReplicaMethod>,
    /// The other methods defined in the `postgresql` section (`postgresql.<name>.command`) but not listed there:
    /// a standby cluster's `standby_cluster.create_replica_methods` may name them
    /// ([`ha_core::pg::RemoteSource::create_replica_methods`]).
    pub other_replica_methods: Vec<ReplicaMethod>,
    /// Patroni's `postgresql.before_stop`: a command run (as the PostgreSQL user, bounded by the stop timeout)
    /// right before a smart or fast stop of a running server; its exit status is logged, never fatal. Not run
    /// before an immediate stop: that is a demotion that must not wait (a lost lock, a failed stop).
    pub before_stop: Option<Vec<String>>,
    /// `bootstrap.post_bootstrap` (or `post_init`): run after the new cluster is up, with a connection string as
    /// its last argument; a non-zero exit fails the bootstrap.
    pub post_bootstrap: Option<Vec<String>>,
    /// The pgpass file holding the passwords (written 0600, owned by `os_user`).
    pub pgpass: PathBuf,
    /// The server log `pg_ctl -l` writes (outside the data directory so pg_basebackup and pg_rewind skip it).
    pub log_file: PathBuf,
    /// Small JSON file remembering the upstream name and the cluster-wide parameters across daemon restarts.
    pub state_file: PathBuf,
    /// Bounds on each kind of call.
    pub timeouts: Timeouts,
}

impl PgSettings {
    /// Where the configuration files live: `config_dir`, else the data directory.
    pub fn conf_dir(&self) -> &Path {
        self.config_dir.as_deref().unwrap_or(&self.data_dir)
    }

    /// The user's base configuration: `custom_conf` (relative to postgresql.conf's directory, as PostgreSQL
    /// resolves an `include`) or `postgresql.base.conf`.
    pub fn base_conf(&self) -> PathBuf {
        match &self.custom_conf {
            Some(c) => self.conf_dir().join(c),
            None => self.conf_dir().join("postgresql.base.conf"),
        }
    }

    /// The path of one of PostgreSQL's binaries, by its usual name: in `bin_dir`, under its `bin_name` if set.
    pub fn binary(&self, usual: &str) -> PathBuf {
        self.bin_dir
            .join(self.bin_name.get(usual).map_or(usual, String::as_str))
    }

    /// Settings with defaults: listens and connects on 127.0.0.1, the socket, pgpass, log and state files beside the
    /// data directory (`<data_dir>.pgpass`, ...), superuser `postgres`, replication role `replicator`, no passwords.
    pub fn new(
        name: &str,
        bin_dir: impl Into<PathBuf>,
        data_dir: impl Into<PathBuf>,
        port: u16,
    ) -> Self {
        let data_dir: PathBuf = data_dir.into();
        let beside = |ext: &str| -> PathBuf {
            let mut s = data_dir.clone().into_os_string();
            s.push(ext);
            PathBuf::from(s)
        };
        PgSettings {
            name: name.to_string(),
            bin_dir: bin_dir.into(),
            listen_host: "127.0.0.1".into(),
            port,
            connect_host: "127.0.0.1".into(),
            socket_dir: data_dir
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/tmp")),
            database: "postgres".into(),
            os_user: None,
            superuser: Credentials::new("postgres", None),
            replication: Credentials::new("replicator", None),
            rewind: None,
            parameters: BTreeMap::new(),
            pg_hba: Vec::new(),
            pg_ident: Vec::new(),
            bin_name: BTreeMap::new(),
            basebackup_options: Vec::new(),
            initdb: Vec::new(),
            custom_bootstrap: None,
            config_dir: None,
            custom_conf: None,
            recovery_conf: BTreeMap::new(),
            replica_methods: Vec::new(),
            other_replica_methods: Vec::new(),
            before_stop: None,
            post_bootstrap: None,
            pgpass: beside(".pgpass"),
            log_file: beside(".log"),
            state_file: beside(".hactl.json"),
            data_dir,
            timeouts: Timeouts::default(),
        }
    }

    /// The conn_url other members use to reach this server (Patroni's member `conn_url`).
    pub fn conn_url(&self) -> String {
        format!(
            "postgres://{}:{}/{}",
            ha_core::model::url_host(&self.connect_host),
            self.port,
            self.database
        )
    }

    /// The role pg_rewind uses.
    pub fn rewind_credentials(&self) -> &Credentials {
        self.rewind.as_ref().unwrap_or(&self.superuser)
    }

    /// The replication slot name for a member, as Patroni derives it ([`ha_core::model::slot_name`]).
    pub fn slot_name(member: &str) -> String {
        ha_core::model::slot_name(member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initdb_options_take_both_patroni_forms() {
        let opts: Vec<InitdbOption> =
            serde_json::from_str(r#"["data-checksums", {"encoding": "UTF8"}]"#).unwrap();
        let args: Vec<String> = opts.iter().flat_map(|o| o.to_args()).collect();
        assert_eq!(args, vec!["--data-checksums", "--encoding=UTF8"]);
    }

    #[test]
    fn slot_names_are_sanitized_like_patroni() {
        assert_eq!(PgSettings::slot_name("Node-1.dc"), "node_1_dc");
    }

    #[test]
    fn an_ipv6_connect_host_is_bracketed_in_the_conn_url() {
        let mut s = PgSettings::new("n", "/bin", "/tmp/d", 5433);
        s.connect_host = "::1".into();
        assert_eq!(s.conn_url(), "postgres://[::1]:5433/postgres");
        s.connect_host = "10.0.0.1".into();
        assert_eq!(s.conn_url(), "postgres://10.0.0.1:5433/postgres");
    }
}
