//! [`PgCtl`]: one local PostgreSQL driven through its binaries (initdb, pg_ctl, pg_basebackup, pg_rewind,
//! pg_controldata) and tokio-postgres.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::conf;
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
