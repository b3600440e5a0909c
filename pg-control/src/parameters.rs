//! The cluster-wide parameters: stored, written to postgresql.conf and reloaded; the leader-managed
//! `synchronous_standby_names`; what waits for a restart.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tracing::{info_span, Instrument};

use crate::ctl::PgCtl;
use crate::error::{Error, Result};

/// How long after the first nudge of the standbys the second comes ([`PgCtl::nudge_standbys`]).
const NUDGE_AGAIN_AFTER: Duration = Duration::from_millis(100);

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
    /// regenerates postgresql.conf and, if the server runs, reloads it and waits until it has re-read the file; a
    /// primary then nudges its standbys ([`PgCtl::nudge_standbys`]) so that commits waiting for a standby it now
    /// names are released at once.
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
                self.nudge_standbys().await;
            }
            Ok(())
        }
        .instrument(info_span!("pg_set_synchronous_standby_names", node = %self.s.name, ?value))
        .await
    }

    /// On a primary, commits one empty transaction without waiting for any standby (`synchronous_commit = local`;
    /// a transaction id is its only content), twice, 100 ms apart.
    ///
    /// Why: a walsender re-reads `synchronous_standby_names` on the reload but releases the commits waiting for its
    /// standby only when that standby next reports a flushed position, which an idle standby does every
    /// `wal_receiver_status_interval` (10 s by default). A commit made while the leader named no reachable standby
    /// (strict mode after a failover names the old primary, or none) already reached the standby newly named, so
    /// nothing new would make it report: the writes waited up to 10 s more after a failover. The nudge's WAL makes
    /// every streaming standby flush and report at once; the second one covers a walsender that had not yet
    /// processed the reload when the first report arrived. Best effort: on a standby, or if it fails, nothing
    /// happens (the periodic report still comes).
    pub async fn nudge_standbys(&self) {
        for round in 0..2 {
            if round > 0 {
                tokio::time::sleep(NUDGE_AGAIN_AFTER).await;
            }
            let r = self
                .with_client(self.local_config("postgres"), |c| async move {
                    let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
                    if !in_recovery {
                        c.batch_execute(
                            "BEGIN; SET LOCAL synchronous_commit TO local; SELECT pg_current_xact_id(); COMMIT",
                        )
                        .await?;
                    }
                    Ok(in_recovery)
                })
                .await;
            match r {
                Ok(false) => {}
                Ok(true) => return,
                Err(e) => {
                    tracing::debug!(error = ?e, "could not nudge the standbys");
                    return;
                }
            }
        }
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
