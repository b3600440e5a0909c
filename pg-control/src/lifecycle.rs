//! The server's life: bootstrap, start as primary or replica, stop, restart, reload, promote, follow, and the
//! cluster-wide parameters.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ha_core::pg::{StopMode, Upstream};
use tracing::{info, info_span, warn, Instrument};

use crate::binaries::pg_ctl_timeout;
use crate::conf::Role;
use crate::connect::{quote_ident, quote_literal};
use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;

impl PgCtl {
    /// Starts the postmaster for `role`: remembers the upstream, makes sure our slot exists on it, regenerates
    /// the configuration, then `pg_ctl start`.
    pub(crate) async fn start_as(&self, role: Role<'_>) -> Result<()> {
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
        self.write_config(role).await?;
        self.pg_ctl_start().await
    }

    /// initdb, the managed configuration, start as primary, the roles. Returns the system identifier.
    pub async fn bootstrap(&self) -> Result<String> {
        let _g = self.op_guard("bootstrap").await?;
        self.bootstrap_inner()
            .instrument(info_span!("pg_bootstrap", node = %self.s.name))
            .await
    }

    pub(crate) async fn bootstrap_inner(&self) -> Result<String> {
        let dd = self.s.data_dir.clone();
        self.check_data_dir()?;
        if !self.data_dir_empty()? {
            return Err(Error::DataDirNotEmpty {
                path: dd,
                operation: "bootstrap".into(),
            });
        }
        self.check_port_free()?;
        if let Some(m) = &self.s.custom_bootstrap {
            let r = async {
                let sysid = self.custom_bootstrap_inner(m).await?;
                if let Some(cmd) = &self.s.post_bootstrap {
                    self.run_post_bootstrap(cmd).await?;
                }
                Ok(sysid)
            }
            .await;
            return match r {
                Ok(sysid) => {
                    info!(system_id = %sysid, "bootstrapped a new cluster by its custom method");
                    Ok(sysid)
                }
                Err(e) => {
                    if dd.exists() {
                        self.set_failed_bootstrap_aside().await;
                    }
                    Err(e)
                }
            };
        }
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
            self.write_config(Role::Primary).await?;
            self.pg_ctl_start().await?;
            self.create_roles().await?;
            if let Some(cmd) = &self.s.post_bootstrap {
                self.run_post_bootstrap(cmd).await?;
            }
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
    pub(crate) async fn set_failed_bootstrap_aside(&self) {
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

    pub(crate) async fn create_roles(&self) -> Result<()> {
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

    /// Starts as a primary: no standby.signal, no recovery settings.
    ///
    /// A standby's data directory (standby.signal present) is started as a standby with no upstream and then
    /// promoted: removing standby.signal and starting would end recovery on the *same* timeline, and a diverged
    /// old primary on that timeline would then look like a prefix to pg_rewind ("no rewind required").
    pub async fn start_primary(&self) -> Result<()> {
        let _g = self.op_guard("start_primary").await?;
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
        let _g = self.op_guard("start_replica").await?;
        self.start_as(Role::Standby(upstream))
            .instrument(info_span!("pg_start_replica", node = %self.s.name))
            .await
    }

    /// `pg_ctl stop -m <mode>`. A server that is not running is already stopped.
    pub async fn stop(&self, mode: StopMode) -> Result<()> {
        let _g = self.op_guard("stop").await?;
        self.stop_inner(mode)
            .instrument(info_span!("pg_stop", node = %self.s.name, ?mode))
            .await
    }

    pub(crate) async fn stop_inner(&self, mode: StopMode) -> Result<()> {
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
    /// A server that is not running is started in the role its data directory is configured for, as `pg_ctl
    /// restart` and Patroni's restart do (an operator restarts a stopped node in maintenance mode this way).
    pub async fn restart(&self) -> Result<()> {
        let _g = self.op_guard("restart").await?;
        async {
            if !self.initialized() {
                return Err(Error::wrong_state(
                    "restart",
                    "the data directory is not initialized",
                ));
            }
            self.stop_inner(StopMode::Fast).await?;
            self.rewrite_current_config().await?;
            self.pg_ctl_start().await
        }
        .instrument(info_span!("pg_restart", node = %self.s.name))
        .await
    }

    /// Regenerates the configuration for the current role and makes the server re-read it.
    pub async fn reload(&self) -> Result<()> {
        let _g = self.op_guard("reload").await?;
        self.rewrite_current_config().await?;
        self.reload_inner().await
    }

    pub(crate) async fn reload_inner(&self) -> Result<()> {
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
        let _g = self.op_guard("promote").await?;
        self.promote_inner()
            .instrument(info_span!("pg_promote", node = %self.s.name))
            .await
    }

    pub(crate) async fn promote_inner(&self) -> Result<()> {
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
        .await
        .map_err(|e| pg_ctl_timeout(e, "promote", t))?;
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
        self.write_config(Role::Primary).await?;
        Ok(())
    }

    /// Points a running standby at `upstream`: PostgreSQL 13+ re-reads primary_conninfo on reload, no restart.
    pub async fn follow(&self, upstream: &Upstream) -> Result<()> {
        let _g = self.op_guard("follow").await?;
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
            self.write_config(Role::Standby(Some(upstream))).await?;
            self.reload_inner().await
        }
        .instrument(info_span!("pg_follow", node = %self.s.name, upstream = %upstream.name))
        .await
    }

    /// Stores the cluster-wide parameters, regenerates postgresql.conf and, if the server runs, reloads it and
    /// returns the parameters that wait for a restart.
    pub async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let _g = self.op_guard("apply_parameters").await?;
        async {
            if !self.initialized() {
                // Before initdb or a clone there is nowhere to write yet (the data directory, maybe its parent, do
                // not exist): kept in memory for the first configuration, saved with the state file at the start.
                ha_core::sync::lock(&self.state).cluster_parameters = parameters.clone();
                return Ok(Vec::new());
            }
            self.update_state(|st| st.cluster_parameters = parameters.clone())?;
            self.rewrite_current_config().await?;
            if self.live_postmaster().is_none() {
                return Ok(Vec::new());
            }
            self.reload_and_wait().await?;
            self.pending_restart().await
        }
        .instrument(info_span!("pg_apply_parameters", node = %self.s.name))
        .await
    }

    /// Sets `synchronous_standby_names` as the leader manages it (`None`: back to the configured value),
    /// regenerates postgresql.conf and, if the server runs, reloads it and waits until it has re-read the file.
    pub async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<()> {
        let _g = self.op_guard("set_synchronous_standby_names").await?;
        async {
            self.update_state(|st| st.synchronous_standby_names = value.map(String::from))?;
            if !self.initialized() {
                return Ok(());
            }
            self.rewrite_current_config().await?;
            if self.live_postmaster().is_some() {
                self.reload_and_wait().await?;
            }
            Ok(())
        }
        .instrument(info_span!("pg_set_synchronous_standby_names", node = %self.s.name, ?value))
        .await
    }

    /// Reloads through SQL and waits until the postmaster has re-read the files (`pg_conf_load_time` moved), so a
    /// following read of pg_settings sees the new state.
    pub(crate) async fn reload_and_wait(&self) -> Result<()> {
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
    ///
    /// Also the recovery-sensitive parameters a standby runs with at other values than configured (raised to the
    /// control file's settings when it started).
    pub async fn pending_restart(&self) -> Result<Vec<String>> {
        let (mut pending, running) = self
            .with_client(self.local_config("postgres"), |c| async move {
                let rows = c
                    .query(
                        "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name",
                        &[],
                    )
                    .await?;
                let running = c.query(crate::observe::RECOVERY_SENSITIVE_SQL, &[]).await?;
                Ok((
                    rows.iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>(),
                    running
                        .iter()
                        .map(|r| r.get::<_, String>(0))
                        .collect::<Vec<_>>(),
                ))
            })
            .await
            .map_err(|e| e.into_error("pending_restart", self.s.timeouts.query))?;
        for name in self.recovery_sensitive_pending(&running) {
            if !pending.contains(&name) {
                pending.push(name);
            }
        }
        pending.sort();
        Ok(pending)
    }
}
