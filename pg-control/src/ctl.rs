//! [`PgCtl`]: one local PostgreSQL driven through its binaries (initdb, pg_ctl, pg_basebackup, pg_rewind,
//! pg_controldata) and tokio-postgres.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ha_core::pg::{StopMode, Upstream};
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;
use tracing::{info, info_span, warn, Instrument};

use crate::conf::{self, Endpoint, ManagedConf, Recovery};
use crate::controldata::ControlData;
use crate::error::{Error, Result};
use crate::os::{self, RunAs};
use crate::settings::PgSettings;

/// The PostgreSQL major versions this crate is written and tested for.
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 13..=17;

const BINARIES: &[&str] = &[
    "initdb",
    "pg_ctl",
    "postgres",
    "pg_basebackup",
    "pg_rewind",
    "pg_controldata",
];

/// What this node remembers across daemon restarts (in [`PgSettings::state_file`]): PostgreSQL's files do not say
/// which member a standby follows, and the cluster-wide parameters must survive a regenerated postgresql.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeState {
    pub upstream: Option<StoredUpstream>,
    pub cluster_parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredUpstream {
    pub name: String,
    pub conn_url: String,
}

/// What [`PgCtl::ensure_slots`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotChanges {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

/// The role a (re)generated configuration is for.
#[derive(Debug, Clone)]
pub(crate) enum Role<'a> {
    Primary,
    Standby(Option<&'a Upstream>),
}

/// Why a connection attempt gave no answer.
#[derive(Debug)]
pub(crate) enum ConnError {
    Timeout,
    /// The server answered "starting up" / "shutting down" (SQLSTATE 57P03).
    NotAccepting(String),
    Other(String),
}

impl ConnError {
    pub(crate) fn into_error(self, operation: &str, timeout: Duration) -> Error {
        match self {
            ConnError::Timeout => Error::Timeout {
                operation: operation.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            },
            ConnError::NotAccepting(m) | ConnError::Other(m) => Error::query(operation, m),
        }
    }
}

fn classify(e: tokio_postgres::Error) -> ConnError {
    match e.code() {
        Some(c) if *c == tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW => {
            ConnError::NotAccepting(e.to_string())
        }
        _ => ConnError::Other(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        }),
    }
}

/// Aborts the spawned connection task when the query is done or abandoned: a connection to a hung server would
/// otherwise wait forever.
struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// One local PostgreSQL. Implements [`ha_core::pg::PgControl`]; the inherent methods of the same names return this
/// crate's typed [`Error`] (the trait's return [`ha_core::pg::PgError`]).
///
/// Mutating operations are serialized; [`PgCtl::observe`](crate::PgCtl::observe) never waits for them.
pub struct PgCtl {
    pub(crate) s: PgSettings,
    pub(crate) run_as: RunAs,
    pub(crate) version_num: u32,
    pub(crate) state: Mutex<NodeState>,
    op_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PgCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCtl")
            .field("name", &self.s.name)
            .field("data_dir", &self.s.data_dir)
            .field("port", &self.s.port)
            .field("version_num", &self.version_num)
            .finish()
    }
}

impl PgCtl {
    /// Checks the settings against the machine (user, binaries and their version, data directory ownership and
    /// version, credentials) without changing anything, and loads the state file.
    pub async fn new(settings: PgSettings) -> Result<PgCtl> {
        let s = settings;
        if s.name.trim().is_empty() {
            return Err(Error::BadSetting("name is empty".into()));
        }
        if s.port == 0 {
            return Err(Error::BadSetting("port is 0".into()));
        }
        let run_as = RunAs::resolve(s.os_user.as_deref())?;
        for b in BINARIES {
            let p = s.bin_dir.join(b);
            let ok = std::fs::metadata(&p)
                .map(|m| {
                    m.is_file()
                        && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
                .unwrap_or(false);
            if !ok {
                return Err(Error::BinDir {
                    bin_dir: s.bin_dir.clone(),
                    binary: b.to_string(),
                });
            }
        }
        let out = os::run(
            &run_as,
            &s.bin_dir.join("postgres"),
            &["--version".to_string()],
            &[],
            s.timeouts.command,
        )
        .await?;
        let version_num = os::parse_version(&out.stdout).ok_or_else(|| Error::WrongVersion {
            detail: format!(
                "cannot read a version from `postgres --version`: {:?}",
                out.stdout.trim()
            ),
        })?;
        let major = version_num / 10000;
        if !SUPPORTED_MAJORS.contains(&major) {
            return Err(Error::WrongVersion {
                detail: format!(
                    "{:?} holds PostgreSQL {major}; supported are {}..={}",
                    s.bin_dir,
                    SUPPORTED_MAJORS.start(),
                    SUPPORTED_MAJORS.end()
                ),
            });
        }
        if s.superuser.username.trim().is_empty() {
            return Err(Error::MissingCredentials(
                "superuser.username is empty".into(),
            ));
        }
        if s.replication.username.trim().is_empty() {
            return Err(Error::MissingCredentials(
                "replication.username is empty: replicas need a role to stream as".into(),
            ));
        }
        if conf::hba_needs_password(&s.pg_hba) {
            let mut missing = Vec::new();
            if s.superuser.password.is_none() {
                missing.push("superuser");
            }
            if s.replication.password.is_none() {
                missing.push("replication");
            }
            if s.rewind.as_ref().is_some_and(|r| r.password.is_none()) {
                missing.push("rewind");
            }
            if !missing.is_empty() {
                return Err(Error::MissingCredentials(format!(
                    "pg_hba asks for passwords but {} has none: set authentication.<role>.password",
                    missing.join(", ")
                )));
            }
        }
        let ctl = PgCtl {
            run_as,
            version_num,
            state: Mutex::new(NodeState::default()),
            op_lock: tokio::sync::Mutex::new(()),
            s,
        };
        ctl.check_data_dir()?;
        if let Ok(text) = std::fs::read_to_string(&ctl.s.state_file) {
            match serde_json::from_str::<NodeState>(&text) {
                Ok(st) => *ctl.state.lock().unwrap_or_else(|p| p.into_inner()) = st,
                Err(e) => {
                    warn!(file = ?ctl.s.state_file, error = %e, "ignoring an unreadable state file")
                }
            }
        }
        Ok(ctl)
    }

    pub fn settings(&self) -> &PgSettings {
        &self.s
    }

    /// `server_version_num` of the binaries, e.g. 150018.
    pub fn binary_version(&self) -> u32 {
        self.version_num
    }

    /// The member this node follows, as last told (clone, start_replica, follow, rewind).
    pub fn upstream_name(&self) -> Option<String> {
        self.node_state().upstream.map(|u| u.name)
    }

    /// A tokio-postgres config for the local server over its unix socket, as the superuser.
    pub fn local_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.s.socket_dir)
            .port(self.s.port)
            .user(&self.s.superuser.username)
            .dbname(dbname)
            .application_name("hactl")
            .connect_timeout(self.s.timeouts.query);
        if let Some(p) = &self.s.superuser.password {
            c.password(p);
        }
        c
    }

    /// A tokio-postgres config for another member, as the superuser.
    pub(crate) fn remote_config(&self, ep: &Endpoint) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&ep.host)
            .port(ep.port)
            .user(&self.s.superuser.username)
            .dbname("postgres")
            .application_name("hactl")
            .connect_timeout(self.s.timeouts.query);
        if let Some(p) = &self.s.superuser.password {
            c.password(p);
        }
        c
    }

    /// Connects and runs `f`, the whole bounded by the query timeout.
    pub(crate) async fn with_client<T, F, Fut>(
        &self,
        config: tokio_postgres::Config,
        f: F,
    ) -> std::result::Result<T, ConnError>
    where
        F: FnOnce(tokio_postgres::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    {
        let work = async move {
            let (client, connection) = config.connect(NoTls).await.map_err(classify)?;
            let _guard = AbortOnDrop(tokio::spawn(async move {
                let _ = connection.await;
            }));
            f(client).await.map_err(classify)
        };
        match tokio::time::timeout(self.s.timeouts.query, work).await {
            Ok(r) => r,
            Err(_) => Err(ConnError::Timeout),
        }
    }

    /// Runs statements on the local server (as the superuser), each bounded by the query timeout.
    pub async fn execute_local(&self, sql: &str) -> Result<()> {
        let sql = sql.to_string();
        self.with_client(self.local_config("postgres"), |c| async move {
            c.batch_execute(&sql).await
        })
        .await
        .map_err(|e| e.into_error("query", self.s.timeouts.query))
    }

    pub(crate) fn node_state(&self) -> NodeState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update_state(&self, f: impl FnOnce(&mut NodeState)) -> Result<()> {
        let snapshot = {
            let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut g);
            g.clone()
        };
        let text = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
        os::write_file(&self.run_as, &self.s.state_file, &text, 0o600)
    }

    pub(crate) fn initialized(&self) -> bool {
        self.s.data_dir.join("PG_VERSION").is_file()
    }

    fn data_dir_empty(&self) -> Result<bool> {
        match std::fs::read_dir(&self.s.data_dir) {
            Ok(mut d) => Ok(d.next().is_none()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(Error::io(&self.s.data_dir, e)),
        }
    }

    /// The data directory, if it exists, must belong to the PostgreSQL user and match the binaries' major version.
    fn check_data_dir(&self) -> Result<()> {
        let dd = &self.s.data_dir;
        if let Some(owner) = os::owner_uid(dd) {
            if owner != self.run_as.uid {
                return Err(Error::DataDirOwner {
                    path: dd.clone(),
                    owner_uid: owner,
                    expected_uid: self.run_as.uid,
                });
            }
        }
        if let Ok(v) = std::fs::read_to_string(dd.join("PG_VERSION")) {
            let data_major: u32 = v.trim().parse().unwrap_or(0);
            if data_major != self.version_num / 10000 {
                return Err(Error::WrongVersion {
                    detail: format!(
                        "data directory {dd:?} is PostgreSQL {}, the binaries in {:?} are {}: use the matching bin_dir",
                        v.trim(),
                        self.s.bin_dir,
                        self.version_num / 10000
                    ),
                });
            }
        }
        Ok(())
    }

    pub(crate) async fn controldata(&self) -> Result<ControlData> {
        self.controldata_within(self.s.timeouts.command).await
    }

    pub(crate) async fn controldata_within(&self, timeout: Duration) -> Result<ControlData> {
        let out = os::run(
            &self.run_as,
            &self.s.bin_dir.join("pg_controldata"),
            &["-D".into(), self.s.data_dir.to_string_lossy().into_owned()],
            &[],
            timeout,
        )
        .await?;
        ControlData::parse(&out.stdout).ok_or_else(|| Error::Command {
            command: "pg_controldata".into(),
            status: "unparsable output".into(),
            stderr: out.stdout.chars().take(200).collect(),
        })
    }

    /// The postmaster's pid if one is alive for our data directory.
    pub(crate) fn live_postmaster(&self) -> Option<i32> {
        os::read_pid_file(&self.s.data_dir)
            .map(|p| p.pid)
            .filter(|pid| os::is_live_postgres(*pid))
    }

    /// Removes a postmaster.pid whose process is gone (or a zombie nobody reaps): a new postmaster would
    /// otherwise take the zombie for a running server.
    fn remove_stale_pid_file(&self) -> Result<()> {
        if let Some(p) = os::read_pid_file(&self.s.data_dir) {
            if !os::is_live_postgres(p.pid) {
                let f = self.s.data_dir.join("postmaster.pid");
                info!(
                    pid = p.pid,
                    "removing the stale postmaster.pid of a dead server"
                );
                std::fs::remove_file(&f).map_err(|e| Error::io(f, e))?;
            }
        }
        // The socket's lock file names the dead postmaster too; PostgreSQL clears it itself only when that pid
        // does not exist, and a zombie exists.
        let lock = self
            .s
            .socket_dir
            .join(format!(".s.PGSQL.{}.lock", self.s.port));
        let lock_pid = std::fs::read_to_string(&lock)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        if let Some(pid) = lock_pid {
            if !os::is_live_postgres(pid) {
                info!(pid, lock = ?lock, "removing the stale socket lock of a dead server");
                let _ = std::fs::remove_file(
                    self.s.socket_dir.join(format!(".s.PGSQL.{}", self.s.port)),
                );
                std::fs::remove_file(&lock).map_err(|e| Error::io(&lock, e))?;
            }
        }
        Ok(())
    }

    fn pg_env(&self) -> Vec<(&'static str, String)> {
        vec![("PGPASSFILE", self.s.pgpass.to_string_lossy().into_owned())]
    }

    async fn pg_bin(
        &self,
        binary: &str,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<os::Output> {
        os::run(
            &self.run_as,
            &self.s.bin_dir.join(binary),
            &args,
            &self.pg_env(),
            timeout,
        )
        .await
    }

    fn data_dir_arg(&self) -> String {
        self.s.data_dir.to_string_lossy().into_owned()
    }

    fn write_pgpass(&self) -> Result<()> {
        let mut entries: Vec<(&str, &str)> = Vec::new();
        for c in [
            Some(&self.s.replication),
            Some(&self.s.superuser),
            self.s.rewind.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(p) = &c.password {
                entries.push((&c.username, p));
            }
        }
        if let Some(parent) = self.s.pgpass.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        os::write_file(
            &self.run_as,
            &self.s.pgpass,
            &conf::render_pgpass(&entries),
            0o600,
        )
    }

    /// The conninfo a standby of `up` streams with.
    fn primary_conninfo(&self, up: &Upstream) -> Result<String> {
        let ep = conf::parse_conn_url(&up.conn_url).ok_or_else(|| {
            Error::BadSetting(format!(
                "cannot read host and port from {}'s conn_url {:?}",
                up.name, up.conn_url
            ))
        })?;
        Ok(conf::conninfo(
            &ep,
            &self.s.replication.username,
            &self.s.pgpass,
            &[("application_name", &self.s.name), ("sslmode", "prefer")],
        ))
    }

    /// Regenerates every file we own in the data directory for `role`: postgresql.conf (moving a user's file to
    /// postgresql.base.conf first), standby.signal, pg_hba.conf, and the pgpass file beside it.
    pub(crate) fn write_config(&self, role: Role<'_>) -> Result<()> {
        let dd = &self.s.data_dir;
        let conf_path = dd.join("postgresql.conf");
        let base_path = dd.join("postgresql.base.conf");
        let current = std::fs::read_to_string(&conf_path).unwrap_or_default();
        if !current.is_empty() && !current.starts_with(conf::MANAGED_MARKER) {
            let target = if base_path.exists() {
                dd.join("postgresql.conf.before-hactl")
            } else {
                base_path.clone()
            };
            std::fs::rename(&conf_path, &target).map_err(|e| Error::io(&conf_path, e))?;
        }
        if !base_path.exists() {
            os::write_file(&self.run_as, &base_path, "", 0o600)?;
        }
        let recovery = match &role {
            Role::Primary => None,
            Role::Standby(up) => Some(Recovery {
                primary_conninfo: up.map(|u| self.primary_conninfo(u)).transpose()?,
                primary_slot_name: up.map(|_| PgSettings::slot_name(&self.s.name)),
            }),
        };
        let st = self.node_state();
        let managed = ManagedConf {
            cluster: &st.cluster_parameters,
            local: &self.s.parameters,
            port: self.s.port,
            listen_host: &self.s.listen_host,
            socket_dir: &self.s.socket_dir,
            cluster_name: None,
            recovery: recovery.as_ref(),
        };
        os::write_file(&self.run_as, &conf_path, &managed.render(), 0o600)?;
        let signal = dd.join("standby.signal");
        match role {
            Role::Primary => {
                if signal.exists() {
                    std::fs::remove_file(&signal).map_err(|e| Error::io(&signal, e))?;
                }
            }
            Role::Standby(_) => os::write_file(&self.run_as, &signal, "", 0o600)?,
        }
        if !self.s.pg_hba.is_empty() {
            os::write_file(
                &self.run_as,
                &dd.join("pg_hba.conf"),
                &conf::render_hba(&self.s.pg_hba),
                0o600,
            )?;
        }
        self.write_pgpass()
    }

    /// The role the data directory is configured for now (standby.signal), with the remembered upstream.
    fn current_role_upstream(&self) -> Option<Upstream> {
        self.node_state().upstream.map(|u| Upstream {
            name: u.name,
            conn_url: u.conn_url,
        })
    }

    fn is_standby_configured(&self) -> bool {
        self.s.data_dir.join("standby.signal").exists()
    }

    fn rewrite_current_config(&self) -> Result<()> {
        if self.is_standby_configured() {
            let up = self.current_role_upstream();
            self.write_config(Role::Standby(up.as_ref()))
        } else {
            self.write_config(Role::Primary)
        }
    }

    fn remember_upstream(&self, up: Option<&Upstream>) -> Result<()> {
        self.update_state(|st| {
            st.upstream = up.map(|u| StoredUpstream {
                name: u.name.clone(),
                conn_url: u.conn_url.clone(),
            })
        })
    }

    fn check_port_free(&self) -> Result<()> {
        for host in self.s.listen_host.split(',').map(str::trim) {
            let host = match host {
                "*" | "" => "0.0.0.0",
                "localhost" => "127.0.0.1",
                h => h,
            };
            if let Err(e) = std::net::TcpListener::bind((host, self.s.port)) {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    return Err(Error::PortInUse {
                        host: host.to_string(),
                        port: self.s.port,
                    });
                }
            }
        }
        Ok(())
    }

    fn secs(d: Duration) -> String {
        d.as_secs().max(1).to_string()
    }

    /// `pg_ctl start` with the port on the command line, waiting until it accepts connections.
    async fn pg_ctl_start(&self) -> Result<()> {
        if self.live_postmaster().is_some() {
            return Err(Error::wrong_state("start", "PostgreSQL is already running"));
        }
        self.remove_stale_pid_file()?;
        self.check_port_free()?;
        os::ensure_dir(&self.run_as, &self.s.socket_dir, 0o755)?;
        if !self.s.log_file.exists() {
            os::write_file(&self.run_as, &self.s.log_file, "", 0o600)?;
        }
        let t = self.s.timeouts.start;
        self.pg_bin(
            "pg_ctl",
            vec![
                "start".into(),
                "-D".into(),
                self.data_dir_arg(),
                "-l".into(),
                self.s.log_file.to_string_lossy().into_owned(),
                "-w".into(),
                "-t".into(),
                Self::secs(t),
                "-o".into(),
                format!("-p {}", self.s.port),
            ],
            t + Duration::from_secs(5),
        )
        .await
        .map_err(|e| self.with_log_tail(e))?;
        Ok(())
    }

    /// Adds the end of the server log to a failed start: that is where PostgreSQL says why.
    fn with_log_tail(&self, e: Error) -> Error {
        match e {
            Error::Command {
                command,
                status,
                stderr,
            } => {
                let log = std::fs::read_to_string(&self.s.log_file).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Error::Command {
                    command,
                    status,
                    stderr: format!("{stderr}; server log: {}", tail.join(" | ")),
                }
            }
            other => other,
        }
    }

    async fn start_as(&self, role: Role<'_>) -> Result<()> {
        if !self.initialized() {
            return Err(Error::NotInitialized {
                path: self.s.data_dir.clone(),
            });
        }
        self.check_data_dir()?;
        if self.live_postmaster().is_some() {
            return Err(Error::wrong_state("start", "PostgreSQL is already running"));
        }
        let up = match &role {
            Role::Primary => None,
            Role::Standby(u) => *u,
        };
        self.remember_upstream(up)?;
        if let Some(u) = up {
            self.ensure_own_slot_on(u).await;
        }
        self.write_config(role)?;
        self.pg_ctl_start().await
    }

    /// Creates this member's replication slot on `up` if it is missing (best effort: a warning if `up` cannot
    /// be reached). A standby whose primary_slot_name does not exist on its upstream never streams, and the
    /// primary's [`PgCtl::ensure_slots`] may not have run yet right after a failover.
    async fn ensure_own_slot_on(&self, up: &Upstream) {
        let Ok(ep) = self.endpoint(up) else { return };
        let slot = PgSettings::slot_name(&self.s.name);
        let r = self
            .with_client(self.remote_config(&ep), |c| async move {
                let exists = c
                    .query_opt(
                        "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await?
                    .is_some();
                if !exists {
                    c.execute(
                        "SELECT pg_create_physical_replication_slot($1, true)",
                        &[&slot],
                    )
                    .await?;
                }
                Ok(!exists)
            })
            .await;
        match r {
            Ok(true) => info!(upstream = %up.name, "created our replication slot on the upstream"),
            Ok(false) => {}
            Err(e) => {
                warn!(upstream = %up.name, error = ?e, "could not check our replication slot on the upstream")
            }
        }
    }

    // ---- the operations (typed errors) --------------------------------------------------------------------

    /// initdb, the managed configuration, start as primary, the roles. Returns the system identifier.
    pub async fn bootstrap(&self) -> Result<String> {
        let _g = self.op_lock.lock().await;
        self.bootstrap_inner()
            .instrument(info_span!("pg_bootstrap", node = %self.s.name))
            .await
    }

    async fn bootstrap_inner(&self) -> Result<String> {
        let dd = self.s.data_dir.clone();
        self.check_data_dir()?;
        if !self.data_dir_empty()? {
            return Err(Error::DataDirNotEmpty {
                path: dd,
                operation: "bootstrap".into(),
            });
        }
        self.check_port_free()?;
        os::ensure_dir(&self.run_as, &dd, 0o700)?;
        self.write_pgpass()?;
        let mut args = vec![
            "-D".to_string(),
            self.data_dir_arg(),
            "-U".into(),
            self.s.superuser.username.clone(),
        ];
        let pwfile = {
            let mut p = dd.clone().into_os_string();
            p.push(".initdb-pw");
            PathBuf::from(p)
        };
        if let Some(pw) = &self.s.superuser.password {
            os::write_file(&self.run_as, &pwfile, &format!("{pw}\n"), 0o600)?;
            args.push(format!("--pwfile={}", pwfile.to_string_lossy()));
        }
        args.extend(self.s.initdb.iter().flat_map(|o| o.to_args()));
        let started = Instant::now();
        let r = self.pg_bin("initdb", args, self.s.timeouts.initdb).await;
        let _ = std::fs::remove_file(&pwfile);
        r?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "initdb done"
        );
        let r = async {
            self.remember_upstream(None)?;
            self.write_config(Role::Primary)?;
            self.pg_ctl_start().await?;
            self.create_roles().await?;
            Ok(self.controldata().await?.system_id)
        }
        .await;
        match r {
            Ok(sysid) => {
                info!(system_id = %sysid, "bootstrapped a new cluster");
                Ok(sysid)
            }
            Err(e) => {
                self.set_failed_bootstrap_aside().await;
                Err(e)
            }
        }
    }

    /// After a bootstrap that failed past initdb: stop what may run and move the half-made directory aside
    /// (`<data_dir>.failed-<unix seconds>`), so the next attempt starts from an empty directory and nothing is
    /// deleted. Best effort: a directory that cannot be renamed (a mount point) stays, and the next bootstrap
    /// says it is not empty.
    async fn set_failed_bootstrap_aside(&self) {
        if let Some(pid) = self.live_postmaster() {
            let _ = self.fence_pid(pid).await;
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut aside = self.s.data_dir.clone().into_os_string();
        aside.push(format!(".failed-{secs}"));
        match std::fs::rename(&self.s.data_dir, &aside) {
            Ok(()) => {
                warn!(moved_to = ?aside, "bootstrap failed: moved the new data directory aside")
            }
            Err(e) => {
                warn!(error = %e, "bootstrap failed and the data directory could not be moved aside")
            }
        }
    }

    async fn create_roles(&self) -> Result<()> {
        // Statements carrying passwords must not reach the server log, whatever log_statement says.
        let mut sql = String::from(
            "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; SET log_min_error_statement TO 'panic';\n",
        );
        let preamble = sql.len();
        let su = &self.s.superuser.username;
        let rep = &self.s.replication;
        if rep.username != *su {
            sql.push_str(&format!(
                "CREATE ROLE {} WITH LOGIN REPLICATION{};\n",
                quote_ident(&rep.username),
                rep.password
                    .as_ref()
                    .map(|p| format!(" PASSWORD {}", quote_literal(p)))
                    .unwrap_or_default()
            ));
        }
        if let Some(rw) = &self.s.rewind {
            if rw.username != *su && rw.username != rep.username {
                let r = quote_ident(&rw.username);
                sql.push_str(&format!(
                    "CREATE ROLE {r} WITH LOGIN{};\n",
                    rw.password
                        .as_ref()
                        .map(|p| format!(" PASSWORD {}", quote_literal(p)))
                        .unwrap_or_default()
                ));
                // What pg_rewind reads from the source (PostgreSQL documents these grants for a non-superuser).
                for f in [
                    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                    "pg_catalog.pg_stat_file(text, boolean)",
                    "pg_catalog.pg_read_binary_file(text)",
                    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
                ] {
                    sql.push_str(&format!("GRANT EXECUTE ON FUNCTION {f} TO {r};\n"));
                }
            }
        }
        if sql.len() == preamble {
            return Ok(());
        }
        self.execute_local(&sql).await
    }

    /// Copies the data directory from `source` with pg_basebackup (WAL streamed, fast checkpoint, through this
    /// member's replication slot, created on the source when missing) and configures it as `source`'s standby.
    /// Leaves it stopped.
    pub async fn clone_from(&self, source: &Upstream) -> Result<()> {
        let _g = self.op_lock.lock().await;
        self.clone_inner(source, "clone")
            .instrument(info_span!("pg_clone", node = %self.s.name, source = %source.name))
            .await
    }

    async fn clone_inner(&self, source: &Upstream, operation: &str) -> Result<()> {
        let dd = self.s.data_dir.clone();
        self.check_data_dir()?;
        if self.live_postmaster().is_some() {
            return Err(Error::wrong_state(operation, "PostgreSQL is running"));
        }
        if !self.data_dir_empty()? {
            return Err(Error::DataDirNotEmpty {
                path: dd,
                operation: operation.into(),
            });
        }
        let ep = self.endpoint(source)?;
        os::ensure_dir(&self.run_as, &dd, 0o700)?;
        self.write_pgpass()?;
        let slot = PgSettings::slot_name(&self.s.name);
        let slot_exists = {
            let slot = slot.clone();
            self.with_client(self.remote_config(&ep), |c| async move {
                c.query_opt(
                    "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await
                .map(|r| r.is_some())
            })
            .await
        };
        let conninfo = conf::conninfo(
            &ep,
            &self.s.replication.username,
            &self.s.pgpass,
            &[("application_name", &self.s.name)],
        );
        let mut args = vec![
            "-D".to_string(),
            self.data_dir_arg(),
            "-d".into(),
            conninfo,
            "-X".into(),
            "stream".into(),
            "-c".into(),
            "fast".into(),
            "-w".into(),
        ];
        match slot_exists {
            Ok(true) => args.extend(["-S".to_string(), slot]),
            Ok(false) => args.extend(["-C".to_string(), "-S".to_string(), slot]),
            Err(e) => {
                warn!(error = ?e, "cannot check the source's replication slots: cloning without a slot")
            }
        }
        let started = Instant::now();
        self.pg_bin("pg_basebackup", args, self.s.timeouts.clone)
            .await?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pg_basebackup done"
        );
        self.remember_upstream(Some(source))?;
        self.write_config(Role::Standby(Some(source)))?;
        Ok(())
    }

    fn endpoint(&self, up: &Upstream) -> Result<Endpoint> {
        conf::parse_conn_url(&up.conn_url).ok_or_else(|| {
            Error::BadSetting(format!(
                "cannot read host and port from {}'s conn_url {:?}",
                up.name, up.conn_url
            ))
        })
    }

    /// Starts as a primary: no standby.signal, no recovery settings.
    ///
    /// A standby's data directory (standby.signal present) is started as a standby with no upstream and then
    /// promoted: removing standby.signal and starting would end recovery on the *same* timeline, and a diverged
    /// old primary on that timeline would then look like a prefix to pg_rewind ("no rewind required").
    pub async fn start_primary(&self) -> Result<()> {
        let _g = self.op_lock.lock().await;
        async {
            if self.is_standby_configured() && self.initialized() {
                info!("the data directory is a standby's: starting it in recovery, then promoting");
                self.start_as(Role::Standby(None)).await?;
                return self.promote_inner().await;
            }
            self.start_as(Role::Primary).await
        }
        .instrument(info_span!("pg_start_primary", node = %self.s.name))
        .await
    }

    /// Starts as a standby of `upstream` (or, with `None`, a standby that replays what it has and waits).
    pub async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<()> {
        let _g = self.op_lock.lock().await;
        self.start_as(Role::Standby(upstream))
            .instrument(info_span!("pg_start_replica", node = %self.s.name))
            .await
    }

    /// `pg_ctl stop -m <mode>`. A server that is not running is already stopped.
    pub async fn stop(&self, mode: StopMode) -> Result<()> {
        let _g = self.op_lock.lock().await;
        self.stop_inner(mode)
            .instrument(info_span!("pg_stop", node = %self.s.name, ?mode))
            .await
    }

    async fn stop_inner(&self, mode: StopMode) -> Result<()> {
        if self.live_postmaster().is_none() {
            return Ok(());
        }
        let m = match mode {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        let t = self.s.timeouts.stop;
        let r = self
            .pg_bin(
                "pg_ctl",
                vec![
                    "stop".into(),
                    "-D".into(),
                    self.data_dir_arg(),
                    "-m".into(),
                    m.into(),
                    "-w".into(),
                    "-t".into(),
                    Self::secs(t),
                ],
                t + Duration::from_secs(5),
            )
            .await;
        match r {
            Err(Error::Command { stderr, .. }) if stderr.contains("does not shut down") => {
                Err(Error::Timeout {
                    operation: format!("stop ({m})"),
                    timeout_ms: t.as_millis() as u64,
                })
            }
            Err(Error::Command { stderr, .. })
                if stderr.contains("Is server running?") && self.live_postmaster().is_none() =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Fast stop, then start in the same role (standby.signal and upstream kept): applies restart-only parameters.
    pub async fn restart(&self) -> Result<()> {
        let _g = self.op_lock.lock().await;
        async {
            if self.live_postmaster().is_none() {
                return Err(Error::wrong_state("restart", "PostgreSQL is not running"));
            }
            self.stop_inner(StopMode::Fast).await?;
            self.rewrite_current_config()?;
            self.pg_ctl_start().await
        }
        .instrument(info_span!("pg_restart", node = %self.s.name))
        .await
    }

    /// Regenerates the configuration for the current role and makes the server re-read it.
    pub async fn reload(&self) -> Result<()> {
        let _g = self.op_lock.lock().await;
        self.rewrite_current_config()?;
        self.reload_inner().await
    }

    async fn reload_inner(&self) -> Result<()> {
        if self.live_postmaster().is_none() {
            return Err(Error::wrong_state("reload", "PostgreSQL is not running"));
        }
        self.pg_bin(
            "pg_ctl",
            vec!["reload".into(), "-D".into(), self.data_dir_arg()],
            self.s.timeouts.command,
        )
        .await
        .map(|_| ())
    }

    /// `pg_ctl promote -w`: returns once the server is out of recovery (checked with a query).
    pub async fn promote(&self) -> Result<()> {
        let _g = self.op_lock.lock().await;
        self.promote_inner()
            .instrument(info_span!("pg_promote", node = %self.s.name))
            .await
    }

    async fn promote_inner(&self) -> Result<()> {
        if self.live_postmaster().is_none() {
            return Err(Error::wrong_state("promote", "PostgreSQL is not running"));
        }
        if !self.is_standby_configured() {
            // Already a primary? Then there is nothing to do.
            let in_recovery = self
                .with_client(self.local_config("postgres"), |c| async move {
                    c.query_one("SELECT pg_is_in_recovery()", &[])
                        .await
                        .map(|r| r.get::<_, bool>(0))
                })
                .await
                .map_err(|e| e.into_error("promote", self.s.timeouts.query))?;
            if !in_recovery {
                return Ok(());
            }
        }
        let t = self.s.timeouts.promote;
        self.pg_bin(
            "pg_ctl",
            vec![
                "promote".into(),
                "-D".into(),
                self.data_dir_arg(),
                "-w".into(),
                "-t".into(),
                Self::secs(t),
            ],
            t + Duration::from_secs(5),
        )
        .await?;
        let in_recovery = self
            .with_client(self.local_config("postgres"), |c| async move {
                c.query_one("SELECT pg_is_in_recovery()", &[])
                    .await
                    .map(|r| r.get::<_, bool>(0))
            })
            .await
            .map_err(|e| e.into_error("promote", self.s.timeouts.query))?;
        if in_recovery {
            return Err(Error::Command {
                command: "pg_ctl promote".into(),
                status: "0".into(),
                stderr: "the server is still in recovery".into(),
            });
        }
        self.remember_upstream(None)?;
        // standby.signal is gone; drop the recovery settings from the file too so a restart stays a primary.
        self.write_config(Role::Primary)?;
        Ok(())
    }

    /// Points a running standby at `upstream`: PostgreSQL 13+ re-reads primary_conninfo on reload, no restart.
    pub async fn follow(&self, upstream: &Upstream) -> Result<()> {
        let _g = self.op_lock.lock().await;
        async {
            if self.live_postmaster().is_none() {
                return Err(Error::wrong_state("follow", "PostgreSQL is not running"));
            }
            if !self.is_standby_configured() {
                return Err(Error::wrong_state(
                    "follow",
                    "PostgreSQL runs as a primary; stop it and start it as a replica",
                ));
            }
            self.remember_upstream(Some(upstream))?;
            self.ensure_own_slot_on(upstream).await;
            self.write_config(Role::Standby(Some(upstream)))?;
            self.reload_inner().await
        }
        .instrument(info_span!("pg_follow", node = %self.s.name, upstream = %upstream.name))
        .await
    }

    /// pg_rewind from `source` (CHECKPOINT on it first, so its control file shows its new timeline), then
    /// regenerates this node's configuration (pg_rewind copied the source's) as `source`'s standby. The server
    /// must be stopped; an unclean stop is recovered by pg_rewind itself (single-user mode, PostgreSQL 13+).
    pub async fn rewind(&self, source: &Upstream) -> Result<()> {
        let _g = self.op_lock.lock().await;
        self.rewind_inner(source)
            .instrument(info_span!("pg_rewind", node = %self.s.name, source = %source.name))
            .await
    }

    async fn rewind_inner(&self, source: &Upstream) -> Result<()> {
        self.check_data_dir()?;
        if !self.initialized() {
            return Err(Error::NotInitialized {
                path: self.s.data_dir.clone(),
            });
        }
        if self.live_postmaster().is_some() {
            return Err(Error::wrong_state(
                "rewind",
                "PostgreSQL is running; stop it first",
            ));
        }
        self.remove_stale_pid_file()?;
        let ep = self.endpoint(source)?;
        let local = self.controldata().await?.system_id;
        let theirs = self.source_system_id(&ep, "rewind").await?;
        if local != theirs {
            return Err(Error::ForeignCluster {
                path: self.s.data_dir.clone(),
                operation: "rewind".into(),
                local_system_id: local,
                source_name: source.name.clone(),
                source_system_id: theirs,
            });
        }
        self.with_client(self.remote_config(&ep), |c| async move {
            c.batch_execute("CHECKPOINT").await
        })
        .await
        .map_err(|e| e.into_error("CHECKPOINT on the rewind source", self.s.timeouts.query))?;
        self.write_pgpass()?;
        let cred = self.s.rewind_credentials();
        let source_server = conf::conninfo(
            &ep,
            &cred.username,
            &self.s.pgpass,
            &[("dbname", "postgres"), ("application_name", "hactl-rewind")],
        );
        let started = Instant::now();
        let out = self
            .pg_bin(
                "pg_rewind",
                vec![
                    "-D".into(),
                    self.data_dir_arg(),
                    format!("--source-server={source_server}"),
                ],
                self.s.timeouts.rewind,
            )
            .await?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            output = %out.stderr.lines().last().unwrap_or(""),
            "pg_rewind done"
        );
        self.remember_upstream(Some(source))?;
        self.write_config(Role::Standby(Some(source)))?;
        Ok(())
    }

    async fn source_system_id(&self, ep: &Endpoint, operation: &str) -> Result<String> {
        self.with_client(self.remote_config(ep), |c| async move {
            c.query_one(
                "SELECT system_identifier::text FROM pg_control_system()",
                &[],
            )
            .await
            .map(|r| r.get::<_, String>(0))
        })
        .await
        .map_err(|e| {
            e.into_error(
                &format!("{operation}: reading the source's system identifier"),
                self.s.timeouts.query,
            )
        })
    }

    /// Wipes the data directory and clones again from `source`. Refuses (deleting nothing) when the directory
    /// holds another cluster than the source's, or when the source cannot tell its identifier.
    pub async fn reinitialize(&self, source: &Upstream) -> Result<()> {
        let _g = self.op_lock.lock().await;
        async {
            self.check_data_dir()?;
            if self.live_postmaster().is_some() {
                return Err(Error::wrong_state("reinitialize", "PostgreSQL is running; stop it first"));
            }
            let ep = self.endpoint(source)?;
            let theirs = self.source_system_id(&ep, "reinitialize").await?;
            if self.initialized() {
                match self.controldata().await {
                    Ok(cd) if cd.system_id != theirs => {
                        return Err(Error::ForeignCluster {
                            path: self.s.data_dir.clone(),
                            operation: "reinitialize".into(),
                            local_system_id: cd.system_id,
                            source_name: source.name.clone(),
                            source_system_id: theirs,
                        })
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "the control file is unreadable: the data directory is damaged, wiping it"),
                }
            }
            self.wipe_data_dir()?;
            self.clone_inner(source, "reinitialize").await
        }
        .instrument(info_span!("pg_reinitialize", node = %self.s.name, source = %source.name))
        .await
    }

    /// Removes the data directory's contents (the directory itself and its ownership stay).
    fn wipe_data_dir(&self) -> Result<()> {
        let dd = &self.s.data_dir;
        let Ok(entries) = std::fs::read_dir(dd) else {
            return Ok(());
        };
        warn!(data_dir = ?dd, "wiping the data directory");
        for e in entries {
            let e = e.map_err(|e| Error::io(dd, e))?;
            let p = e.path();
            let r = if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            r.map_err(|err| Error::io(&p, err))?;
        }
        Ok(())
    }

    /// Stores the cluster-wide parameters, regenerates postgresql.conf and, if the server runs, reloads it and
    /// returns the parameters that wait for a restart.
    pub async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let _g = self.op_lock.lock().await;
        async {
            self.update_state(|st| st.cluster_parameters = parameters.clone())?;
            if !self.initialized() {
                return Ok(Vec::new());
            }
            self.rewrite_current_config()?;
            if self.live_postmaster().is_none() {
                return Ok(Vec::new());
            }
            self.reload_and_wait().await?;
            self.pending_restart().await
        }
        .instrument(info_span!("pg_apply_parameters", node = %self.s.name))
        .await
    }

    /// Reloads through SQL and waits until the postmaster has re-read the files (`pg_conf_load_time` moved), so a
    /// following read of pg_settings sees the new state.
    async fn reload_and_wait(&self) -> Result<()> {
        let q = self.s.timeouts.query;
        let before: std::time::SystemTime = self
            .with_client(self.local_config("postgres"), |c| async move {
                let r = c.query_one("SELECT pg_conf_load_time()", &[]).await?;
                c.batch_execute("SELECT pg_reload_conf()").await?;
                Ok(r.get(0))
            })
            .await
            .map_err(|e| e.into_error("reload", q))?;
        let deadline = Instant::now() + q;
        loop {
            let now: std::time::SystemTime = self
                .with_client(self.local_config("postgres"), |c| async move {
                    c.query_one("SELECT pg_conf_load_time()", &[])
                        .await
                        .map(|r| r.get(0))
                })
                .await
                .map_err(|e| e.into_error("reload", q))?;
            if now > before {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    operation: "reload (waiting for the server to re-read its configuration)"
                        .into(),
                    timeout_ms: q.as_millis() as u64,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Parameters changed in the files that only a restart applies (pg_settings.pending_restart).
    pub async fn pending_restart(&self) -> Result<Vec<String>> {
        self.with_client(self.local_config("postgres"), |c| async move {
            let rows = c
                .query(
                    "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name",
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
        })
        .await
        .map_err(|e| e.into_error("pending_restart", self.s.timeouts.query))
    }

    /// On a primary: makes the physical replication slots exactly the members' (`members` minus this node):
    /// creates the missing ones (reserving WAL at once) and drops inactive physical slots of members no longer
    /// listed. A slot in use is never dropped. Pass every member of the cluster.
    pub async fn ensure_slots(&self, members: &[String]) -> Result<SlotChanges> {
        let me = PgSettings::slot_name(&self.s.name);
        let wanted: std::collections::BTreeSet<String> = members
            .iter()
            .map(|m| PgSettings::slot_name(m))
            .filter(|s| *s != me)
            .collect();
        let q = self.s.timeouts.query;
        self.with_client(self.local_config("postgres"), |c| async move {
            let mut changes = SlotChanges::default();
            let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
            if in_recovery {
                return Ok(Err(Error::wrong_state(
                    "ensure_slots",
                    "this server is a standby; slots are managed on the primary",
                )));
            }
            let rows = c
                .query(
                    "SELECT slot_name::text, active FROM pg_replication_slots WHERE slot_type = 'physical'",
                    &[],
                )
                .await?;
            let existing: BTreeMap<String, bool> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for w in &wanted {
                if !existing.contains_key(w) {
                    c.execute("SELECT pg_create_physical_replication_slot($1, true)", &[w])
                        .await?;
                    changes.created.push(w.clone());
                }
            }
            for (name, active) in &existing {
                if !wanted.contains(name) && !active {
                    c.execute("SELECT pg_drop_replication_slot($1)", &[name]).await?;
                    changes.dropped.push(name.clone());
                }
            }
            Ok(Ok(changes))
        })
        .await
        .map_err(|e| e.into_error("ensure_slots", q))?
    }

    /// SIGKILLs the postmaster and every child of it. The postmaster is SIGSTOPped first so it cannot fork new
    /// backends between the listing and the kill; a stopped postmaster's backends keep serving their clients,
    /// so killing only the postmaster would not stop writes. Waits (bounded) until they are gone.
    pub async fn fence(&self) -> Result<()> {
        let Some(pid) = self.live_postmaster() else {
            return Ok(());
        };
        self.fence_pid(pid)
            .instrument(info_span!("pg_fence", node = %self.s.name, pid))
            .await
    }

    async fn fence_pid(&self, pid: i32) -> Result<()> {
        os::signal(pid, libc::SIGSTOP);
        let mut victims = os::children_of(pid);
        os::signal(pid, libc::SIGKILL);
        for c in &victims {
            os::signal(*c, libc::SIGKILL);
        }
        victims.push(pid);
        warn!(killed = ?victims, "fenced PostgreSQL with SIGKILL");
        let deadline = Instant::now() + self.s.timeouts.stop.min(Duration::from_secs(10));
        loop {
            let alive: Vec<i32> = victims
                .iter()
                .copied()
                .filter(|p| os::is_live_postgres(*p))
                .collect();
            if alive.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    operation: format!("fence (processes {alive:?} survived SIGKILL)"),
                    timeout_ms: self.s.timeouts.stop.as_millis() as u64,
                });
            }
            for p in &alive {
                os::signal(*p, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.s.data_dir
    }
}
