//! What is refused before anything changes: the settings, the binaries and their version, and the credentials
//! when a [`PgCtl`] is made (and again for new pg_hba lines at run time); the port before a start. The data
//! directory's own checks are in `datadir`.

use crate::conf;
use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os::{self, RunAs};
use crate::settings::PgSettings;

/// The PostgreSQL major versions this crate is written and tested for.
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<u32> = 13..=17;

/// The binaries the operations run: every one must be in `bin_dir` and executable.
const BINARIES: &[&str] = &[
    "initdb",
    "pg_ctl",
    "postgres",
    "pg_basebackup",
    "pg_rewind",
    "pg_controldata",
];

/// A node needs a name and a port.
pub(crate) fn check_name_and_port(s: &PgSettings) -> Result<()> {
    if s.name.trim().is_empty() {
        return Err(Error::BadSetting("name is empty".into()));
    }
    if s.port == 0 {
        return Err(Error::BadSetting("port is 0".into()));
    }
    Ok(())
}

/// Every binary we run is in `bin_dir` and executable.
pub(crate) fn check_binaries(s: &PgSettings) -> Result<()> {
    for b in BINARIES {
        let p = s.binary(b);
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
    Ok(())
}

/// `server_version_num` of the binaries (`postgres --version`), refused unless its major is one of
/// [`SUPPORTED_MAJORS`].
pub(crate) async fn binary_version(s: &PgSettings, run_as: &RunAs) -> Result<u32> {
    let out = os::run(
        run_as,
        &s.binary("postgres"),
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
    Ok(version_num)
}

/// Every parameter name the binaries know (`postgres --describe-config`, one tab-separated line each), so a
/// parameter another major renamed or dropped can be translated or left out instead of stopping the server. `None`
/// (and a warning) if it cannot be read: the parameters are then written as configured.
pub(crate) async fn server_parameters(
    s: &PgSettings,
    run_as: &RunAs,
    version_num: u32,
) -> Option<crate::conf::ServerParameters> {
    let out = os::run(
        run_as,
        &s.binary("postgres"),
        &["--describe-config".to_string()],
        &[],
        s.timeouts.command,
    )
    .await;
    let names: std::collections::BTreeSet<String> = match out {
        Ok(o) => o
            .stdout
            .lines()
            .filter_map(|l| l.split('\t').next())
            .filter(|n| !n.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the server's parameters; writing them as configured");
            return None;
        }
    };
    (!names.is_empty()).then_some(crate::conf::ServerParameters { version_num, names })
}

/// Every role we connect as has a name.
pub(crate) fn check_usernames(s: &PgSettings) -> Result<()> {
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
    Ok(())
}

/// When pg_hba asks clients for passwords, every role we connect as needs one.
pub(crate) fn check_passwords(s: &PgSettings, pg_hba: &[String]) -> Result<()> {
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

impl PgCtl {
    /// Refuses a start when something already listens on our port on one of our listen hosts.
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
