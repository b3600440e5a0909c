//! What each [`Action`] does: the DCS and PostgreSQL calls behind it, the lease and watchdog bookkeeping around them,
//! and the driver's own refusal to start or promote a primary without a valid lease, whatever the decision asked.

use tracing::warn;

use super::{Driver, Outcome};
use crate::dcs::{Dcs, DcsError};
use crate::decision::Action;
use crate::model::{Failover, Status};
use crate::pg::{PgControl, PgError, PgObservation};

impl<D: Dcs, P: PgControl> Driver<D, P> {
    pub(super) async fn execute(
        &mut self,
        action: &Action,
        pg_obs: &PgObservation,
        stopped_pg: &mut bool,
    ) -> Outcome {
        let name = self.settings.identity.name.clone();
        let pg_res = |r: Result<(), PgError>| match r {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        let dcs_res = |r: Result<(), DcsError>| match r {
            Ok(()) => Outcome::Done,
            Err(DcsError::Conflict(_)) => Outcome::Lost,
            Err(e) => Outcome::Failed(e.to_string()),
        };
        match action {
            Action::RaceInitialize => match self.dcs.initialize_race("").await {
                Ok(true) => Outcome::Done,
                Ok(false) => Outcome::Lost,
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Action::Bootstrap => match self.pg.bootstrap().await {
                Ok(sysid) => {
                    self.bootstrapped_sysid = Some(sysid);
                    Outcome::Done
                }
                Err(e) => {
                    warn!(error = %e, "bootstrap failed: cancelling the initialization and releasing the lock");
                    let _ = self.dcs.cancel_initialization().await;
                    let _ = self.dcs.release_leader(&name).await;
                    self.local.lease_deadline = None;
                    self.watchdog.disarm();
                    Outcome::Failed(e.to_string())
                }
            },
            Action::WriteInitialize => {
                let sysid = self
                    .bootstrapped_sysid
                    .clone()
                    .or_else(|| pg_obs.system_id.clone());
                match sysid {
                    Some(s) => dcs_res(self.dcs.set_initialize(&s).await),
                    None => Outcome::Failed("no system identifier known yet".into()),
                }
            }
            Action::WriteBootstrapConfig => dcs_res(
                self.dcs
                    .set_config(&self.settings.bootstrap_config, None)
                    .await,
            ),
            Action::CloneFrom(up) => pg_res(self.pg.clone_from(up).await),
            Action::RestoreReplica => pg_res(self.pg.restore_replica().await),
            Action::AcquireLock => {
                let sent = self.clock.now();
                match self.dcs.acquire_leader(&name).await {
                    Ok(true) => {
                        self.take_lease(sent);
                        Outcome::Done
                    }
                    Ok(false) => Outcome::Lost,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Action::RenewLock => {
                let sent = self.clock.now();
                match self.within_lease(self.dcs.renew_leader(&name)).await {
                    Ok(true) => {
                        self.take_lease(sent);
                        Outcome::Done
                    }
                    Ok(false) => {
                        // Not ours any more. The watchdog keeps its old deadline until PostgreSQL is demoted.
                        self.local.lease_deadline = None;
                        Outcome::Lost
                    }
                    Err(e) => {
                        self.renew_unreachable = matches!(e, DcsError::Unreachable(_));
                        Outcome::Failed(e.to_string())
                    }
                }
            }
            Action::ReleaseLock => {
                self.local.lease_deadline = None;
                if *stopped_pg {
                    // The others race the moment the key goes: let them see our PostgreSQL stopped, not the
                    // running primary the member key showed before, or they would wait for us.
                    let data = self.member_data(&self.pg.observe().await);
                    if let Err(e) = self.dcs.touch_member(&name, &data).await {
                        warn!(error = %e, "could not update the member key before releasing the lock");
                    }
                }
                dcs_res(self.dcs.release_leader(&name).await)
            }
            Action::ForgetLease => {
                self.local.lease_deadline = None;
                if *stopped_pg || !pg_obs.is_alive() || pg_obs.in_recovery {
                    self.watchdog.disarm();
                }
                Outcome::Done
            }
            Action::ExtendLeaseByFailsafe { confirmed_at } => {
                self.take_lease(*confirmed_at);
                Outcome::Done
            }
            Action::StartPrimary => {
                if !self.lease_valid_now() && !crate::mutants::any() {
                    return Outcome::Refused(
                        "no valid lease: will not start PostgreSQL as primary".into(),
                    );
                }
                pg_res(self.pg.start_primary().await)
            }
            Action::StartReplica(up) => pg_res(self.pg.start_replica(up.as_ref()).await),
            Action::Promote => {
                if !self.lease_valid_now() && !crate::mutants::any() {
                    return Outcome::Refused("no valid lease: will not promote".into());
                }
                pg_res(self.pg.promote().await)
            }
            Action::Stop(mode) => {
                let r = self.pg.stop(*mode).await;
                if r.is_ok() {
                    *stopped_pg = true;
                }
                pg_res(r)
            }
            Action::StopOrKill {
                mode,
                kill_after_ms,
            } => {
                let limit = std::time::Duration::from_millis(*kill_after_ms);
                // Outside a tokio runtime (the stepped simulator, whose calls complete at once) there is no timer.
                let timed = if tokio::runtime::Handle::try_current().is_ok() {
                    tokio::time::timeout(limit, self.pg.stop(*mode)).await
                } else {
                    Ok(self.pg.stop(*mode).await)
                };
                let r = match timed {
                    Ok(r) => r,
                    Err(_) => {
                        warn!(
                            primary_stop_timeout_ms = *kill_after_ms,
                            "PostgreSQL did not stop within primary_stop_timeout: killing it"
                        );
                        self.pg.fence().await
                    }
                };
                if r.is_ok() {
                    *stopped_pg = true;
                }
                pg_res(r)
            }
            Action::Fence => {
                let r = self.pg.fence().await;
                if r.is_ok() {
                    *stopped_pg = true;
                    self.local.fenced_at = Some(self.clock.now());
                }
                pg_res(r)
            }
            Action::Follow(up) => pg_res(self.pg.follow(up).await),
            Action::Rewind(up) => {
                let r = self.pg.rewind(up).await;
                // A failed rewind is not run again in a loop (Patroni marks it failed): what follows is the
                // decision's, by `remove_data_directory_on_rewind_failure` (see `decision::rejoin`).
                self.local.rewind_failed = r.is_err();
                pg_res(r)
            }
            Action::Reinitialize(up) => {
                let r = self.pg.reinitialize(up).await;
                if r.is_ok() {
                    self.local.rewind_failed = false;
                    self.requests
                        .reinitialize
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                }
                pg_res(r)
            }
            // The request flag is taken once this loop's report is out (see `cycle_inner`).
            Action::Restart => pg_res(self.pg.restart().await),
            Action::ApplyConfig {
                version,
                parameters,
                recovery_conf,
            } => match self.pg.apply_parameters(parameters, recovery_conf).await {
                Ok(_) => {
                    self.local.applied_config_version = Some(*version);
                    Outcome::Done
                }
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Action::ClearFailover { version } => match self
                .dcs
                .set_failover(&Failover::default(), Some(*version))
                .await
            {
                // Someone changed the request meanwhile: theirs stands, nothing else depends on this write.
                Ok(()) | Err(DcsError::Conflict(_)) => Outcome::Done,
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Action::WriteStatus {
                optime,
                slots,
                retain_slots,
            } => {
                let status = Status {
                    optime: Some(*optime),
                    slots: slots.clone(),
                    retain_slots: retain_slots.clone(),
                    ..Default::default()
                };
                let r = self.within_lease(self.dcs.write_status(&status)).await;
                if r.is_ok() {
                    self.last_status = Some(status);
                }
                dcs_res(r)
            }
            Action::SyncSlots(plan) => {
                // Slots are housekeeping: a failure is logged and retried next loop, the loop goes on.
                if let Err(e) = self.pg.apply_slots(plan).await {
                    warn!(error = %e, "could not update replication slots");
                }
                Outcome::Done
            }
            Action::CopyLogicalSlots { source, names } => {
                pg_res(self.pg.copy_logical_slots(source, names).await)
            }
            Action::WriteHistory { history, version } => {
                match self.dcs.set_history(history, *version).await {
                    Ok(()) | Err(DcsError::Conflict(_)) => Outcome::Done,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Action::WriteFailsafe(members) => {
                // Even a write that reports failure may have landed: from now on ask the union of both lists.
                for (k, v) in members {
                    self.last_failsafe_members.insert(k.clone(), v.clone());
                }
                dcs_res(self.dcs.write_failsafe(members).await)
            }
            Action::WriteSync { state, version } => {
                match self.dcs.set_sync_state(state, *version).await {
                    Ok(()) => Outcome::Done,
                    Err(DcsError::Conflict(_)) => Outcome::Lost,
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Action::SetSyncStandbyNames(names) => pg_res(
                self.pg
                    .set_synchronous_standby_names(names.as_deref())
                    .await,
            ),
        }
    }
}
