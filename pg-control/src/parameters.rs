//! The cluster-wide parameters: stored, written to postgresql.conf and reloaded; the leader-managed
//! `synchronous_standby_names`; what waits for a restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{info_span, Instrument};

use crate::ctl::PgCtl;
use crate::error::{Error, Result};

impl PgCtl {
    /// Stores the cluster-wide parameters, regenerates postgresql.conf and, if the server runs, reloads it and
    /// returns the parameters that wait for a restart.
    pub async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let recovery_conf = ha_core::sync::lock(&self.state)
            .cluster_recovery_conf
            .clone();
        self.apply_cluster_config(parameters, &recovery_conf).await
    }

    /// [`PgCtl::apply_parameters`] with the cluster-wide `postgresql.recovery_conf` too.
    pub async fn apply_cluster_config(
        &self,
        parameters: &BTreeMap<String, String>,
        recovery_conf: &BTreeMap<String, String>,
    ) -> Result<Vec<String>> {
        let _g = self.op_guard("apply_parameters").await?;
        async {
            if !self.initialized() {
                // Before initdb or a clone there is nowhere to write yet (the data directory, maybe its parent, do
                // not exist): kept in memory for the first configuration, saved with the state file at the start.
                let mut st = ha_core::sync::lock(&self.state);
                st.cluster_parameters = parameters.clone();
                st.cluster_recovery_conf = recovery_conf.clone();
                return Ok(Vec::new());
            }
            self.update_state(|st| {
                st.cluster_parameters = parameters.clone();
                st.cluster_recovery_conf = recovery_conf.clone();
            })?;
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
