//! The server's life: start as primary or replica, stop, restart, reload, promote, follow (its first start is
//! `bootstrap`, its parameters `parameters`).

use std::path::Path;
use std::time::Duration;

use ha_core::pg::{StopMode, Upstream};
use tracing::{info, info_span, warn, Instrument};

use crate::binaries::pg_ctl_timeout;
use crate::conf::Role;
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
        let primary = matches!(role, Role::Primary);
        self.write_config(role).await?;
        if !primary {
            return self.pg_ctl_start().await;
        }
        let wait = self
            .s
            .timeouts
            .primary_start_wait
            .min(self.s.timeouts.start);
        match self.pg_ctl_start_within(wait).await {
            Err(Error::Timeout { .. }) if self.live_postmaster().is_some() => {
                info!(
                    wait_ms = wait.as_millis() as u64,
                    "PostgreSQL is still starting as primary (crash recovery); it is watched from here on"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// Starts as a primary: no standby.signal, no recovery settings. Returns once the server accepts connections or,
    /// when that takes longer than `timeouts.primary_start_wait` (a long crash recovery), once it is starting:
    /// [`PgCtl::observe`] then says `Starting`, and the caller keeps its leader lock while it waits.
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
        async {
            if upstream.is_some_and(|u| u.remote.is_some()) {
                self.archive_shutdown_checkpoint().await;
            }
            self.start_as(Role::Standby(upstream)).await
        }
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
        if mode != StopMode::Immediate {
            if let Some((program, args)) = self.s.before_stop.as_ref().and_then(|a| a.split_first())
            {
                let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
                match os::run_in(
                    &self.run_as,
                    Path::new(program),
                    args,
                    &self.pg_env(),
                    t,
                    &cwd,
                )
                .await
                {
                    Ok(_) => info!(command = %program, "before_stop done"),
                    Err(e) => {
                        warn!(command = %program, error = %e, "before_stop failed; stopping anyway")
                    }
                }
            }
        }
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
                .with_client(self.local_config(&self.s.database), |c| async move {
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
            .with_client(self.local_config(&self.s.database), |c| async move {
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
}
