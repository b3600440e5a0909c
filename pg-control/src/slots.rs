//! Replication slots on the local server: what the observation reports, the changes the decision plans
//! ([`ha_core::decision::slots`]), and Patroni's copy of a logical slot from the primary into a standby.
//!
//! The node's state file remembers which slots hactl made (or adopted because the configuration names them): the
//! decision drops no other (see the rules in `ha_core::decision::slots`).

use std::path::Path;

use ha_core::model::SlotKind;
use ha_core::pg::{LocalSlot, SlotPlan, StopMode, Upstream};
use tracing::{info, info_span, warn, Instrument};

use crate::ctl::PgCtl;
use crate::error::{Error, Result};

/// Every non-temporary slot, with what the decision needs of it.
pub(crate) const SLOTS_SQL: &str =
    "SELECT slot_name::text, slot_type::text, plugin::text, database::text,
  pg_wal_lsn_diff(restart_lsn, '0/0')::bigint, pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint,
  xmin IS NOT NULL, active, COALESCE(wal_status = 'lost', false)
  FROM pg_replication_slots WHERE NOT temporary ORDER BY slot_name";

/// The rows of [`SLOTS_SQL`], `managed` set for the slots hactl made.
pub(crate) fn parse_slots(
    rows: &[tokio_postgres::Row],
    managed: &std::collections::BTreeSet<String>,
) -> Vec<LocalSlot> {
    rows.iter()
        .map(|r| {
            let name: String = r.get(0);
            let kind = match r.get::<_, Option<String>>(1).as_deref() {
                Some("logical") => SlotKind::Logical {
                    plugin: r.get::<_, Option<String>>(2).unwrap_or_default(),
                    database: r.get::<_, Option<String>>(3).unwrap_or_default(),
                },
                _ => SlotKind::Physical,
            };
            LocalSlot {
                managed: managed.contains(&name),
                name,
                kind,
                restart_lsn: r.get::<_, Option<i64>>(4).map(|v| v.max(0) as u64),
                confirmed_flush_lsn: r.get::<_, Option<i64>>(5).map(|v| v.max(0) as u64),
                has_xmin: r.get(6),
                active: r.get(7),
                lost: r.get(8),
            }
        })
        .collect()
}

use ha_core::pg::format_lsn as lsn_text;

impl PgCtl {
    /// Applies a slot plan: drops, creates (physical ones reserving WAL at once; logical ones in their database),
    /// advances. Every step is tried; the error lists the ones that failed. A logical slot that a standby can no
    /// longer advance (its WAL is gone) is dropped, so the next loop copies it from the primary again.
    pub async fn apply_slots(&self, plan: &SlotPlan) -> Result<()> {
        let q = self.s.timeouts.query;
        let mut failed: Vec<String> = Vec::new();
        let mut made: Vec<String> = plan.adopt.clone();
        let mut dropped: Vec<String> = Vec::new();
        // Steps on the `postgres` database: drops, physical slots.
        let p = plan.clone();
        let r = self
            .with_client(self.local_config(&self.s.database), |c| async move {
                let mut out: Vec<(String, std::result::Result<(), String>)> = Vec::new();
                for name in &p.drop {
                    let r = c
                        .execute(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                             WHERE slot_name = $1 AND NOT active",
                            &[name],
                        )
                        .await;
                    out.push((
                        format!("drop {name}"),
                        r.map(|_| ()).map_err(|e| e.to_string()),
                    ));
                }
                for name in &p.create_physical {
                    let r = c
                        .execute(
                            "SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS \
                             (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                            &[name],
                        )
                        .await;
                    out.push((
                        format!("create {name}"),
                        r.map(|_| ()).map_err(|e| e.to_string()),
                    ));
                }
                for (name, db, lsn) in &p.advance {
                    if db.is_some() {
                        continue;
                    }
                    let r = c
                        .execute(
                            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                            &[name, &lsn_text(*lsn)],
                        )
                        .await;
                    out.push((
                        format!("advance {name}"),
                        r.map(|_| ()).map_err(|e| e.to_string()),
                    ));
                }
                Ok(out)
            })
            .await;
        match r {
            Ok(steps) => {
                for (step, r) in steps {
                    match (step.split_once(' '), r) {
                        (Some(("drop", n)), Ok(())) => {
                            info!(slot = n, "dropped replication slot");
                            dropped.push(n.to_string());
                        }
                        (Some(("create", n)), Ok(())) => {
                            info!(slot = n, "created physical replication slot");
                            made.push(n.to_string());
                        }
                        (_, Ok(())) => {}
                        (_, Err(e)) => failed.push(format!("{step}: {e}")),
                    }
                }
            }
            Err(e) => failed.push(e.into_error("slots", q).to_string()),
        }
        // Logical slots, each in its own database.
        for (name, db, plugin) in &plan.create_logical {
            let (n, pl) = (name.clone(), plugin.clone());
            let r = self
                .with_client(self.local_config(db), |c| async move {
                    c.execute(
                        "SELECT pg_create_logical_replication_slot($1, $2) WHERE NOT EXISTS \
                         (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
                        &[&n, &pl],
                    )
                    .await
                    .map(|_| ())
                })
                .await;
            match r {
                Ok(()) => {
                    info!(slot = %name, database = %db, plugin = %plugin, "created logical replication slot");
                    made.push(name.clone());
                }
                Err(e) => failed.push(format!(
                    "create logical {name}: {}",
                    e.into_error("create slot", q)
                )),
            }
        }
        for (name, db, lsn) in &plan.advance {
            let Some(db) = db else { continue };
            let (n, target) = (name.clone(), lsn_text(*lsn));
            let r = self
                .with_client(self.local_config(db), |c| async move {
                    match c
                        .execute(
                            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                            &[&n, &target],
                        )
                        .await
                    {
                        Ok(_) => Ok(Ok(())),
                        // WAL gone (58P01) or slot invalidated (55000): only a fresh copy helps.
                        Err(e)
                            if e.code().map_or(false, |c| {
                                c.code() == "58P01" || c.code() == "55000"
                            }) =>
                        {
                            let _ = c
                                .execute(
                                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                                     WHERE slot_name = $1 AND NOT active AND pg_is_in_recovery()",
                                    &[&n],
                                )
                                .await;
                            Ok(Err(e.to_string()))
                        }
                        Err(e) => Err(e),
                    }
                })
                .await;
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(slot = %name, error = %e, "cannot advance the logical slot: dropped it to copy it again");
                    dropped.push(name.clone());
                }
                Err(e) => failed.push(format!(
                    "advance {name}: {}",
                    e.into_error("advance slot", q)
                )),
            }
        }
        if !made.is_empty() || !dropped.is_empty() {
            self.update_state(|st| {
                st.member_slots.extend(made.iter().cloned());
                for d in &dropped {
                    st.member_slots.remove(d);
                }
            })?;
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::query("slots", failed.join("; ")))
        }
    }

    /// Copies logical slots from the primary `source` into this standby, as Patroni's `copy_logical_slots`: reads
    /// each slot's state file there (`pg_read_binary_file`, as the superuser), stops this server, writes the files
    /// under `pg_replslot` (through a temporary directory, fsynced) and starts it again as the same standby. Slots
    /// the primary does not have are skipped; with none to copy the server is not touched.
    pub async fn copy_logical_slots(&self, source: &Upstream, names: &[String]) -> Result<()> {
        let _g = self.op_guard("copy_logical_slots").await?;
        let q = self.s.timeouts.query;
        let ep = self.endpoint(source)?;
        let wanted = names.to_vec();
        let files: Vec<(String, Vec<u8>)> = self
            .with_client(self.remote_config(&ep), |c| async move {
                let rows = c
                    .query(
                        "SELECT slot_name::text, pg_read_binary_file('pg_replslot/' || slot_name || '/state') \
                         FROM pg_replication_slots WHERE slot_type = 'logical' AND NOT temporary \
                         AND NOT pg_is_in_recovery() AND slot_name = ANY($1)",
                        &[&wanted],
                    )
                    .await?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            })
            .await
            .map_err(|e| e.into_error("copy_logical_slots", q))?;
        if files.is_empty() {
            return Ok(());
        }
        async {
            self.stop_inner(StopMode::Fast).await?;
            let dir = self.data_dir().join("pg_replslot");
            for (name, data) in &files {
                write_slot(&dir, name, data)?;
                info!(slot = %name, from = %source.name, "copied logical replication slot from the primary");
            }
            crate::os::fsync_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            self.update_state(|st| st.member_slots.extend(files.iter().map(|f| f.0.clone())))?;
            self.rewrite_current_config().await?;
            self.pg_ctl_start().await
        }
        .instrument(info_span!("copy_logical_slots", node = %self.s.name))
        .await
    }
}

/// Writes one slot's state file as PostgreSQL expects it: `pg_replslot/<name>/state`, mode 0600 in a 0700
/// directory, replacing any old one only once the new one is on disk.
fn write_slot(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let tmp = dir.join(format!("{name}.tmp"));
    let fin = dir.join(name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    let file = tmp.join("state");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .map_err(|e| Error::io(&file, e))?;
    f.write_all(data).map_err(|e| Error::io(&file, e))?;
    f.sync_all().map_err(|e| Error::io(&file, e))?;
    crate::os::fsync_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if fin.exists() {
        std::fs::remove_dir_all(&fin).map_err(|e| Error::io(&fin, e))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| Error::io(&fin, e))?;
    Ok(())
}
