//! Bootstrap by a command instead of initdb (Patroni's `bootstrap.method`: a restore from a backup, a clone of
//! another cluster), and `post_bootstrap`, run once the new cluster is up.
//!
//! The command creates the data directory itself; the server then starts as a primary, or with the method's
//! `recovery_conf` recovers first (a point-in-time restore) and is promoted when recovery ends. The roles the
//! configuration names are created or, when the restored cluster has them, given the configured passwords.

use std::path::Path;
use std::time::{Duration, Instant};

use tracing::info;

use crate::conf::Role;
use crate::connect::{quote_ident, quote_literal};
use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;
use crate::settings::CustomBootstrap;

/// The daemon's working directory, where a user's command runs (its script may be named relative to it).
fn daemon_dir() -> std::path::PathBuf {
    std::env::current_dir().unwrap_or_else(|_| std::path::PathBuf::from("/"))
}

/// A custom command may restore a large backup: it is bounded, but generously.
const CUSTOM_BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

impl PgCtl {
    pub(crate) async fn custom_bootstrap_inner(&self, m: &CustomBootstrap) -> Result<String> {
        let dd = self.s.data_dir.clone();
        // The command creates the directory (a copy, a restore); an empty one left from before is removed.
        if dd.exists() {
            std::fs::remove_dir(&dd).map_err(|e| Error::io(&dd, e))?;
        }
        self.write_pgpass()?;
        let (program, args) = m.argv.split_first().ok_or_else(|| Error::Command {
            command: "bootstrap method".into(),
            status: "no command".into(),
            stderr: String::new(),
        })?;
        let started = Instant::now();
        os::run_in(
            &self.run_as,
            Path::new(program),
            args,
            &self.pg_env(),
            CUSTOM_BOOTSTRAP_TIMEOUT,
            &daemon_dir(),
        )
        .await?;
        if !self.initialized() {
            return Err(Error::NotInitialized { path: dd });
        }
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "custom bootstrap command done"
        );
        os::ensure_dir(&self.run_as, &dd, 0o700)?;
        if !m.keep_existing_recovery_conf {
            for f in ["recovery.signal", "standby.signal"] {
                let p = dd.join(f);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
        }
        self.remember_upstream(None)?;
        let recovering = !m.recovery_conf.is_empty();
        if recovering {
            // Before the configuration is written: a server that recovers needs the recovery-sensitive settings
            // at least as high as the backup's (see `write_config`).
            os::write_file(&self.run_as, &dd.join("recovery.signal"), "", 0o600)?;
        }
        self.write_config(Role::Primary).await?;
        if recovering {
            self.append_recovery_conf(m)?;
        }
        self.pg_ctl_start().await?;
        if recovering {
            self.wait_out_of_recovery(CUSTOM_BOOTSTRAP_TIMEOUT).await?;
            // Promoted: the configuration goes back to the managed one, without the recovery settings.
            self.write_config(Role::Primary).await?;
            self.reload_and_wait().await?;
        }
        self.create_or_update_roles().await?;
        Ok(self.controldata().await?.system_id)
    }

    /// The method's recovery settings after the managed ones, and `recovery.signal`.
    fn append_recovery_conf(&self, m: &CustomBootstrap) -> Result<()> {
        let dd = &self.s.data_dir;
        let conf = self.s.conf_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| Error::io(&conf, e))?;
        text.push_str("\n# recovery settings of the bootstrap method, until the promotion\n");
        for (k, v) in &m.recovery_conf {
            text.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        os::write_file(&self.run_as, &conf, &text, 0o600)?;
        os::write_file(&self.run_as, &dd.join("recovery.signal"), "", 0o600)
    }

    async fn wait_out_of_recovery(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let in_recovery: Option<bool> = self
                .with_client(self.local_config(&self.s.database), |c| async move {
                    c.query_one("SELECT pg_is_in_recovery()", &[])
                        .await
                        .map(|r| r.get(0))
                })
                .await
                .ok();
            if in_recovery == Some(false) {
                return Ok(());
            }
            if Instant::now() > deadline || self.live_postmaster().is_none() {
                return Err(Error::Timeout {
                    operation: "recovery of the custom bootstrap".into(),
                    timeout_ms: timeout.as_millis() as u64,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Patroni's `create_or_update_role` for the superuser's password, the replication role and the rewind role:
    /// a restored cluster may have them already, with other passwords.
    pub(crate) async fn create_or_update_roles(&self) -> Result<()> {
        let mut sql = String::from(
            "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; SET log_min_error_statement TO 'panic';\n",
        );
        let role = |name: &str, attrs: &str, password: Option<&String>| {
            let pw = password
                .map(|p| format!(" PASSWORD {}", quote_literal(p)))
                .unwrap_or_default();
            format!(
                "DO $hactl$ BEGIN IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {lit}) THEN \
                 ALTER ROLE {id} WITH {attrs}{pw}; ELSE CREATE ROLE {id} WITH {attrs}{pw}; END IF; END $hactl$;\n",
                lit = quote_literal(name),
                id = quote_ident(name),
            )
        };
        let su = &self.s.superuser;
        sql.push_str(&role(&su.username, "SUPERUSER LOGIN", su.password.as_ref()));
        let rep = &self.s.replication;
        if rep.username != su.username {
            sql.push_str(&role(
                &rep.username,
                "LOGIN REPLICATION",
                rep.password.as_ref(),
            ));
        }
        if let Some(rw) = self.s.rewind.as_ref().filter(|r| r.username != su.username) {
            sql.push_str(&role(&rw.username, "LOGIN", rw.password.as_ref()));
            for f in [
                "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                "pg_catalog.pg_stat_file(text, boolean)",
                "pg_catalog.pg_read_binary_file(text)",
                "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
            ] {
                sql.push_str(&format!(
                    "GRANT EXECUTE ON FUNCTION {f} TO {};\n",
                    quote_ident(&rw.username)
                ));
            }
        }
        self.execute_local(&sql).await
    }

    /// `post_bootstrap`: the command with a connection string to the new cluster as its last argument (the
    /// superuser's password in a pgpass file of its own), as Patroni runs it; a non-zero exit fails the bootstrap.
    pub(crate) async fn run_post_bootstrap(&self, argv: &[String]) -> Result<()> {
        let Some((program, args)) = argv.split_first() else {
            return Ok(());
        };
        let su = &self.s.superuser;
        let mut pgpass = self.s.data_dir.clone().into_os_string();
        pgpass.push(".post-bootstrap-pgpass");
        let pgpass = std::path::PathBuf::from(pgpass);
        let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
        os::write_file(
            &self.run_as,
            &pgpass,
            &format!(
                "*:{}:*:{}:{}\n",
                self.s.port,
                escape(&su.username),
                escape(su.password.as_deref().unwrap_or(""))
            ),
            0o600,
        )?;
        let dsn = format!(
            "dbname={} user={} host={} port={}",
            self.s.database,
            su.username,
            self.s.socket_dir.display(),
            self.s.port
        );
        let mut args = args.to_vec();
        args.push(dsn);
        let env = vec![
            ("PGPASSFILE", pgpass.to_string_lossy().into_owned()),
            (
                "PGOPTIONS",
                "-c synchronous_commit=local -c statement_timeout=0".to_string(),
            ),
        ];
        let r = os::run_in(
            &self.run_as,
            Path::new(program),
            &args,
            &env,
            self.s.timeouts.initdb,
            &daemon_dir(),
        )
        .await;
        let _ = std::fs::remove_file(&pgpass);
        r.map(|_| info!(command = %program, "post_bootstrap done"))
    }
}
