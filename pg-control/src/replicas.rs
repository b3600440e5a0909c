//! Copies and rejoins: clone with pg_basebackup, pg_rewind, reinitialize, and replication slots.

use std::time::Instant;

use ha_core::pg::{Lineage, Upstream};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::conf::{self, Endpoint, Role};
use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;
use crate::settings::PgSettings;

/// How long `PgCtl::source_lineage` may take: the HA loop asks it while holding a lease, on top of its own
/// observation, so it is kept well under a loop.
const LINEAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl PgCtl {
    /// Creates this member's replication slot on `up` if it is missing (best effort: a warning if `up` cannot
    /// be reached). A standby whose primary_slot_name does not exist on its upstream never streams, and the
    /// primary's slot step may not have run yet right after a failover.
    pub(crate) async fn ensure_own_slot_on(&self, up: &Upstream) {
        if up.remote.is_some() {
            // A standby cluster's source: its slot (`primary_slot_name`) is that cluster's to make.
            return;
        }
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

    /// Copies the data directory from `source` with pg_basebackup (WAL streamed, fast checkpoint, through this
    /// member's replication slot, created on the source when missing) and configures it as `source`'s standby.
    /// Leaves it stopped.
    pub async fn clone_from(&self, source: &Upstream) -> Result<()> {
        let _g = self.op_guard("clone_from").await?;
        self.create_replica(Some(source))
            .instrument(info_span!("pg_clone", node = %self.s.name, source = %source.name))
            .await
    }

    pub(crate) async fn clone_inner(&self, source: &Upstream, operation: &str) -> Result<()> {
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
        let slot_exists = if source.remote.is_some() {
            // Another cluster: no slot of ours is made there.
            Err(Error::wrong_state("clone", "a standby cluster's source"))
        } else {
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
            .map_err(|e| e.into_error("clone", self.s.timeouts.query))
        };
        let conninfo = self.command_conninfo(
            &ep,
            &self.conn.replication,
            &self.s.replication.username,
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
            Err(_) if source.remote.is_some() => {}
            Err(e) => {
                warn!(error = %e, "cannot check the source's replication slots: cloning without a slot")
            }
        }
        args.extend(self.s.basebackup_options.iter().cloned());
        let started = Instant::now();
        if let Err(e) = self
            .pg_bin("pg_basebackup", args, self.s.timeouts.clone)
            .await
        {
            // The directory was empty before: emptying it again deletes only this attempt's partial copy (a
            // pg_basebackup killed by our timeout cannot clean up after itself), so the next clone can start.
            if let Err(w) = self.wipe_data_dir() {
                warn!(error = %w, "could not remove the partial copy");
            }
            return Err(e);
        }
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pg_basebackup done"
        );
        self.remember_upstream(Some(source))?;
        self.write_config(Role::Standby(Some(source))).await?;
        Ok(())
    }

    /// The timeline and history of `source` (a standby cluster's source), as its newest `.history` file in
    /// `pg_wal` says, asked as the superuser (the site is a copy of the source: the same roles). Bounded by
    /// one second: the HA loop asks this while it holds a lease. `None` when it does not answer.
    pub async fn source_lineage(&self, source: &Upstream) -> Option<Lineage> {
        let ep = self.endpoint(source).ok()?;
        let ask = self.with_client(self.remote_config(&ep), |c| async move {
            c.query_opt(
                "SELECT name, pg_read_file('pg_wal/' || name) FROM pg_ls_waldir() \
                 WHERE name ~ '^[0-9A-F]{8}\\.history$' ORDER BY name DESC LIMIT 1",
                &[],
            )
            .await
        });
        let row = match tokio::time::timeout(LINEAGE_WAIT, ask).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => {
                debug!(source = %source.name, error = ?e, "the source's timeline history: no answer");
                return None;
            }
            Err(_) => return None,
        };
        // No history file: the source never left timeline 1.
        let Some(row) = row else {
            return Some(Lineage {
                timeline: 1,
                switches: Vec::new(),
            });
        };
        let name: String = row.get(0);
        let text: String = row.get(1);
        let timeline = u64::from_str_radix(name.strip_suffix(".history")?, 16).ok()?;
        Some(Lineage {
            timeline,
            switches: crate::controldata::parse_history(&text),
        })
    }

    pub(crate) fn endpoint(&self, up: &Upstream) -> Result<Endpoint> {
        conf::parse_conn_url(&up.conn_url).ok_or_else(|| {
            Error::BadSetting(format!(
                "cannot read host and port from {}'s conn_url {:?}",
                up.name, up.conn_url
            ))
        })
    }

    /// pg_rewind from `source` (CHECKPOINT on it first, so its control file shows its new timeline), then
    /// regenerates this node's configuration (pg_rewind copied the source's) as `source`'s standby. The server
    /// must be stopped; an unclean stop is recovered by pg_rewind itself (single-user mode, PostgreSQL 13+).
    pub async fn rewind(&self, source: &Upstream) -> Result<()> {
        let _g = self.op_guard("rewind").await?;
        self.rewind_inner(source)
            .instrument(info_span!("pg_rewind", node = %self.s.name, source = %source.name))
            .await
    }

    pub(crate) async fn rewind_inner(&self, source: &Upstream) -> Result<()> {
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
        let (source_tli, source_lsn) = self
            .with_client(self.remote_config(&ep), |c| async move {
                c.batch_execute("CHECKPOINT").await?;
                let r = c
                    .query_one(
                        "SELECT (SELECT timeline_id FROM pg_control_checkpoint())::bigint,
                            (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                  ELSE pg_current_wal_lsn() END)::text",
                        &[],
                    )
                    .await?;
                Ok((r.get::<_, i64>(0), r.get::<_, Option<String>>(1)))
            })
            .await
            .map_err(|e| e.into_error("CHECKPOINT on the rewind source", self.s.timeouts.query))?;
        // A standby stopped cleanly on the source's timeline, no further than the source: its WAL is a prefix of
        // the source's, nothing to rewind. pg_rewind itself may fail on it: with its last restartpoint still on
        // the previous timeline it looks for the divergence point in WAL the standby never wrote on that timeline.
        let cd = self.controldata().await?;
        let source_lsn = source_lsn
            .as_deref()
            .and_then(crate::controldata::parse_lsn);
        if cd.clean_shutdown()
            && cd.timeline() == source_tli.max(0) as u64
            && source_lsn.is_some_and(|l| cd.lsn() <= l)
        {
            info!(
                timeline = cd.timeline(),
                "already on the source's timeline and behind it: no rewind needed"
            );
            self.remember_upstream(Some(source))?;
            return self.write_config(Role::Standby(Some(source))).await;
        }
        self.write_pgpass()?;
        let cred = self.s.rewind_credentials();
        let source_server = self.command_conninfo(
            &ep,
            &self.conn.rewind,
            &cred.username,
            &[
                ("dbname", &self.s.database),
                ("application_name", "hactl-rewind"),
            ],
        );
        // pg_rewind recovers an unclean target with `postgres --single`, which refuses a standby ("standby mode
        // is not supported by single-user servers"): the signal files go, and the standby configuration written
        // below puts standby.signal back (or, if pg_rewind fails, the files are restored as they were).
        let mut removed = Vec::new();
        for name in ["standby.signal", "recovery.signal"] {
            let f = self.s.data_dir.join(name);
            if f.exists() {
                std::fs::remove_file(&f).map_err(|e| Error::io(&f, e))?;
                removed.push(f);
            }
        }
        let started = Instant::now();
        let mut args = vec![
            "-D".into(),
            self.data_dir_arg(),
            format!("--source-server={source_server}"),
        ];
        // The configuration outside the data directory, for the single-user recovery of an unclean target
        // (pg_rewind's --config-file, PostgreSQL 15+).
        if self.s.config_dir.is_some() && self.binary_version() >= 150_000 {
            args.push(format!(
                "--config-file={}",
                self.s.conf_dir().join("postgresql.conf").display()
            ));
        }
        let out = self.pg_bin("pg_rewind", args, self.s.timeouts.rewind).await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                for f in &removed {
                    if let Err(w) = os::write_file(&self.run_as, f, "", 0o600) {
                        warn!(file = ?f, error = %w, "could not restore the signal file after a failed pg_rewind");
                    }
                }
                return Err(e);
            }
        };
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            output = %out.stderr.lines().last().unwrap_or(""),
            "pg_rewind done"
        );
        self.remember_upstream(Some(source))?;
        self.write_config(Role::Standby(Some(source))).await?;
        Ok(())
    }

    pub(crate) async fn source_system_id(&self, ep: &Endpoint, operation: &str) -> Result<String> {
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
        let _g = self.op_guard("reinitialize").await?;
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
    pub(crate) fn wipe_data_dir(&self) -> Result<()> {
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
}
