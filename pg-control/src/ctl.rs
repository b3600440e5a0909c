//! [`PgCtl`]: one local PostgreSQL driven through its binaries (initdb, pg_ctl, pg_basebackup, pg_rewind,
//! pg_controldata) and tokio-postgres.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ha_core::pg::Upstream;
use tracing::warn;

use crate::conf::{self, ManagedConf, Recovery};
use crate::error::{Error, Result};
use crate::os::{self, RunAs};
use crate::settings::PgSettings;
use crate::state::NodeState;

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

/// The node's own configuration that may change at run time.
#[derive(Debug, Clone)]
pub(crate) struct LocalConf {
    pub parameters: BTreeMap<String, String>,
    pub pg_hba: Vec<String>,
}

/// When pg_hba asks clients for passwords, every role we connect as needs one.
fn check_passwords(s: &PgSettings, pg_hba: &[String]) -> Result<()> {
    if !conf::hba_needs_password(pg_hba) {
        return Ok(());
    }
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
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::MissingCredentials(format!(
            "pg_hba asks for passwords but {} has none: set authentication.<role>.password",
            missing.join(", ")
        )))
    }
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
    /// The node's own parameters and pg_hba lines: from the settings, replaceable at run time
    /// ([`PgCtl::set_local_config`]) when the daemon re-reads its configuration file.
    local: Mutex<LocalConf>,
    pub(crate) op_lock: tokio::sync::Mutex<()>,
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
        check_passwords(&s, &s.pg_hba)?;
        let ctl = PgCtl {
            run_as,
            version_num,
            state: Mutex::new(NodeState::default()),
            local: Mutex::new(LocalConf {
                parameters: s.parameters.clone(),
                pg_hba: s.pg_hba.clone(),
            }),
            op_lock: tokio::sync::Mutex::new(()),
            s,
        };
        ctl.check_data_dir()?;
        ctl.load_state_file();
        Ok(ctl)
    }

    /// Waits for the other operations on this server to finish, bounded: a call queued behind a long clone
    /// fails with a timeout instead of hanging its caller. The wait bound is the stop timeout.
    pub(crate) async fn op_guard(
        &self,
        operation: &str,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>> {
        let t = self.s.timeouts.stop;
        tokio::time::timeout(t, self.op_lock.lock())
            .await
            .map_err(|_| Error::Timeout {
                operation: format!("{operation} (waiting for another operation on this server)"),
                timeout_ms: t.as_millis() as u64,
            })
    }

    /// The settings this controller was created with (the local parameters and pg_hba as they were then; see
    /// [`PgCtl::set_local_config`]).
    pub fn settings(&self) -> &PgSettings {
        &self.s
    }

    /// Replaces the node's local parameters and pg_hba lines (the daemon re-read its configuration file). They
    /// take effect with the next regenerated configuration: call [`PgCtl::reload`] (or restart) afterwards.
    /// Refused if the new pg_hba asks for passwords that are not configured.
    pub fn set_local_config(
        &self,
        parameters: BTreeMap<String, String>,
        pg_hba: Vec<String>,
    ) -> Result<()> {
        check_passwords(&self.s, &pg_hba)?;
        *self.local.lock().unwrap_or_else(|p| p.into_inner()) = LocalConf { parameters, pg_hba };
        Ok(())
    }

    pub(crate) fn local_conf(&self) -> LocalConf {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `server_version_num` of the binaries, e.g. 150018.
    pub fn binary_version(&self) -> u32 {
        self.version_num
    }

    pub(crate) fn write_pgpass(&self) -> Result<()> {
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
    pub(crate) fn primary_conninfo(&self, up: &Upstream) -> Result<String> {
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
    ///
    /// On a standby, the recovery-sensitive parameters are raised to the control file's settings (see
    /// [`ManagedConf::parameters`]); [`PgCtl::observe`] still reports them pending a restart while the server runs
    /// with other values than configured.
    pub(crate) async fn write_config(&self, role: Role<'_>) -> Result<()> {
        let recovery_minimums = match &role {
            Role::Primary => BTreeMap::new(),
            Role::Standby(_) => match self.controldata().await {
                Ok(cd) => cd.recovery_minimums,
                Err(e) => {
                    warn!(error = %e, "pg_controldata failed: the standby's settings are not raised to the control file's");
                    BTreeMap::new()
                }
            },
        };
        self.write_config_with(role, &recovery_minimums)
    }

    fn write_config_with(
        &self,
        role: Role<'_>,
        recovery_minimums: &BTreeMap<String, u64>,
    ) -> Result<()> {
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
        let local = self.local_conf();
        let base =
            conf::parse_simple_conf(&std::fs::read_to_string(&base_path).unwrap_or_default());
        let managed = ManagedConf {
            cluster: &st.cluster_parameters,
            local: &local.parameters,
            port: self.s.port,
            listen_host: &self.s.listen_host,
            socket_dir: &self.s.socket_dir,
            cluster_name: None,
            recovery: recovery.as_ref(),
            recovery_minimums,
            base: &base,
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
        if !local.pg_hba.is_empty() {
            os::write_file(
                &self.run_as,
                &dd.join("pg_hba.conf"),
                &conf::render_hba(&local.pg_hba),
                0o600,
            )?;
        }
        self.write_pgpass()
    }

    /// The role the data directory is configured for now (standby.signal), with the remembered upstream.
    pub(crate) fn current_role_upstream(&self) -> Option<Upstream> {
        self.node_state().upstream.map(|u| Upstream {
            name: u.name,
            conn_url: u.conn_url,
        })
    }

    pub(crate) fn is_standby_configured(&self) -> bool {
        self.s.data_dir.join("standby.signal").exists()
    }

    pub(crate) async fn rewrite_current_config(&self) -> Result<()> {
        if self.is_standby_configured() {
            let up = self.current_role_upstream();
            self.write_config(Role::Standby(up.as_ref())).await
        } else {
            self.write_config(Role::Primary).await
        }
    }

    /// The recovery-sensitive parameters whose running value (`running`: "name=setting" from pg_settings) is not
    /// the configured one: a standby raised them to the control file's settings, and only a restart (once the
    /// primary runs with the configured values too) brings them where they are configured.
    pub(crate) fn recovery_sensitive_pending(&self, running: &[String]) -> Vec<String> {
        let st = self.node_state();
        let local = self.local_conf();
        let base = conf::parse_simple_conf(
            &std::fs::read_to_string(self.s.data_dir.join("postgresql.base.conf"))
                .unwrap_or_default(),
        );
        let none = BTreeMap::new();
        let managed = ManagedConf {
            cluster: &st.cluster_parameters,
            local: &local.parameters,
            port: self.s.port,
            listen_host: &self.s.listen_host,
            socket_dir: &self.s.socket_dir,
            cluster_name: None,
            recovery: None,
            recovery_minimums: &none,
            base: &base,
        };
        let wanted = managed.configured_recovery_values();
        running
            .iter()
            .filter_map(|r| {
                let (name, value) = r.split_once('=')?;
                let w = wanted.get(name)?;
                match (w.trim().parse::<u64>(), value.trim().parse::<u64>()) {
                    (Ok(w), Ok(v)) if w != v => Some(name.to_string()),
                    _ => None,
                }
            })
            .collect()
    }

    pub(crate) fn check_port_free(&self) -> Result<()> {
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

}
