//! Running PostgreSQL's binaries as this server's user: `pg_bin` with the pgpass file in the environment,
//! pg_controldata, and `pg_ctl start` with the end of the server log when a start fails (that is where PostgreSQL
//! says why).

use std::time::Duration;

use crate::controldata::ControlData;
use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;

/// pg_ctl's own `-t` ran out ("server did not start in time", "server did not promote in time"): a timeout, not
/// a failure; the server may still get there.
pub(crate) fn pg_ctl_timeout(e: Error, operation: &str, t: Duration) -> Error {
    match e {
        Error::Command { ref stderr, .. } if stderr.contains("in time") => Error::Timeout {
            operation: operation.to_string(),
            timeout_ms: t.as_millis() as u64,
        },
        other => other,
    }
}

impl PgCtl {
    pub(crate) fn pg_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGPASSFILE", self.s.pgpass.to_string_lossy().into_owned()),
            (
                "PGSERVICEFILE",
                self.service_file().to_string_lossy().into_owned(),
            ),
        ]
    }

    pub(crate) async fn pg_bin(
        &self,
        binary: &str,
        args: Vec<String>,
        timeout: Duration,
    ) -> Result<os::Output> {
        os::run(
            &self.run_as,
            &self.s.binary(binary),
            &args,
            &self.pg_env(),
            timeout,
        )
        .await
    }

    pub(crate) async fn controldata(&self) -> Result<ControlData> {
        self.controldata_within(self.s.timeouts.command).await
    }

    pub(crate) async fn controldata_within(&self, timeout: Duration) -> Result<ControlData> {
        let out = os::run(
            &self.run_as,
            &self.s.binary("pg_controldata"),
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

    pub(crate) fn secs(d: Duration) -> String {
        d.as_secs().max(1).to_string()
    }

    /// `pg_ctl start` with the port on the command line, waiting until it accepts connections.
    pub(crate) async fn pg_ctl_start(&self) -> Result<()> {
        self.pg_ctl_start_within(self.s.timeouts.start).await
    }

    /// `pg_ctl start -w -t <t>`: fails with [`Error::Timeout`] when the server does not accept connections within
    /// `t`, and leaves it starting.
    pub(crate) async fn pg_ctl_start_within(&self, t: Duration) -> Result<()> {
        if self.live_postmaster().is_some() {
            return Err(Error::wrong_state("start", "PostgreSQL is already running"));
        }
        self.remove_stale_pid_file()?;
        self.check_port_free()?;
        os::ensure_dir(&self.run_as, &self.s.socket_dir, 0o755)?;
        if !self.s.log_file.exists() {
            os::write_file(&self.run_as, &self.s.log_file, "", 0o600)?;
        }
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
                match &self.s.config_dir {
                    None => format!("-p {}", self.s.port),
                    // pg_ctl passes -o to postgres through a shell: the path is quoted for it.
                    Some(_) => format!(
                        "-p {} --config-file={}",
                        self.s.port,
                        shlex::try_quote(
                            &self.s.conf_dir().join("postgresql.conf").to_string_lossy()
                        )
                        .map_err(|e| Error::BadSetting(format!("config_dir: {e}")))?
                    ),
                },
            ],
            t + Duration::from_secs(5),
        )
        .await
        .map_err(|e| pg_ctl_timeout(e, "start", t))
        .map_err(|e| self.with_log_tail(e))?;
        Ok(())
    }

    /// Adds the end of the server log to a failed start: that is where PostgreSQL says why.
    pub(crate) fn with_log_tail(&self, e: Error) -> Error {
        match e {
            Error::Command {
                command,
                status,
                stderr,
            } => Error::Command {
                command,
                status,
                stderr: format!("{stderr}; server log: {}", self.log_tail(5)),
            },
            other => other,
        }
    }

    /// The last `lines` lines of the server log, reading at most its last 16 KiB (the log only grows).
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.s.log_file) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.reverse();
        tail.join(" | ")
    }
}
