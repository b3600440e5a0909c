//! One loop of the driver: observe PostgreSQL and the DCS (and, with the DCS gone, ask the failsafe members), decide,
//! execute the actions in order (stopping at the first that did not succeed), publish the member key, and say when
//! the next loop is due.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{debug, info, info_span, warn, Instrument};

use super::report::done;
use super::{CycleReport, Driver, Outcome};
use crate::dcs::{Dcs, DcsError};
use crate::decision::{decide, Action, Observation};
use crate::model::Cluster;
use crate::pg::{PgControl, PgRunState};
use crate::sync::lock;

/// How often an unreachable DCS is tried again between loops.
pub const DCS_RETRY_INTERVAL_MS: u64 = 1_000;

impl<D: Dcs, P: PgControl> Driver<D, P> {
    /// One loop: observe, decide, execute, publish the member key. Returns what happened and when to run next.
    pub async fn cycle(&mut self) -> CycleReport {
        let name = self.settings.identity.name.clone();
        let span = info_span!("ha_loop", node = %name);
        self.cycle_inner().instrument(span).await
    }

    async fn cycle_inner(&mut self) -> CycleReport {
        let started = self.clock.now();
        if let Some(tags) = self.requests.tags() {
            if tags != self.settings.identity.tags {
                info!(tags = ?tags, "tags changed by a configuration reload");
                self.settings.identity.tags = tags;
            }
        }
        let renewal_just_failed = std::mem::take(&mut self.renew_unreachable);
        let mut pg_obs = self.pg.observe().await;
        // A lease that ended is forgotten once PostgreSQL no longer runs as primary (stopped by this daemon, or
        // killed by the fencer while this daemon's own stop failed): kept, it would cut every DCS call short and
        // the node would never read the cluster again (e2e: a partitioned primary looped 50,000 times a minute).
        let not_primary = pg_obs.is_replica()
            || matches!(pg_obs.state(), PgRunState::Stopped | PgRunState::Crashed);
        if self.local.lease_deadline.is_some_and(|d| d <= started) && not_primary {
            self.local.lease_deadline = None;
        }
        if pg_obs.state() == PgRunState::Unresponsive {
            self.local.unresponsive_since.get_or_insert(started);
        } else {
            self.local.unresponsive_since = None;
        }
        // The last loop's renewal found the DCS unreachable: asking again would wait out another timeout (a cache
        // may even answer) while the lease runs down; this loop acts on the outage at once (failsafe mode confirms
        // the leader with the members), and the next one asks the DCS again.
        let loaded = if renewal_just_failed {
            Err(DcsError::Unreachable(
                "the last lock renewal found the DCS unreachable".into(),
            ))
        } else {
            self.within_lease(self.dcs.load()).await
        };
        // The decision's time is the snapshot's, not the loop's start: a slow read (or a daemon frozen in it) must
        // not leave the decision judging a lease by a time long past (the simulator's soak: a node frozen in its
        // read decided on resuming that it still held a lease that had run out 25 s before).
        let now = self.clock.now();
        if let Ok(cluster) = &loaded {
            if cluster.leader.is_none() {
                self.local.no_leader_since.get_or_insert(now);
            } else {
                self.local.no_leader_since = None;
            }
            self.absorb_config(cluster).await;
            let me = &self.settings.identity.name;
            let leading = cluster.leader_name() == Some(me.as_str());
            // A standby leader that does not stream: where its source's timelines ended, so the decision can tell
            // a diverged copy from a lost connection (the `history` key describes this cluster only).
            let not_streaming = match pg_obs.state() {
                PgRunState::Stopped | PgRunState::Crashed => true,
                PgRunState::Running => pg_obs.in_recovery && !pg_obs.streaming,
                _ => false,
            };
            if leading && not_streaming {
                if let Some(sc) = self.local.last_config.standby_cluster() {
                    let source = sc.upstream();
                    if !source.conn_url.is_empty() {
                        pg_obs.source_lineage = self.pg.source_lineage(&source).await;
                    }
                }
            }
            let down = matches!(
                pg_obs.state(),
                PgRunState::Stopped | PgRunState::Crashed | PgRunState::Starting
            );
            if leading && down {
                self.local.primary_down_since.get_or_insert(now);
            } else {
                self.local.primary_down_since = None;
            }
            if leading {
                let cfg = &self.local.last_config;
                crate::decision::slots::remember_members(
                    &mut self.local.member_slots_seen,
                    cluster,
                    me,
                    cfg,
                    now,
                );
            } else {
                self.local.member_slots_seen.clear();
            }
            self.last_leader_version = cluster.leader.as_ref().map(|l| l.version);
            self.last_failsafe_members = cluster.failsafe.clone().unwrap_or_default();
            self.last_status = cluster.status.clone();
        }
        // Before a leader race in quorum mode, the voters' positions as they are now.
        self.peers = None;
        if let (Some(probe), Ok(cluster)) = (&self.peer_probe, &loaded) {
            let quorum = self.local.last_config.sync_mode() == crate::model::SyncMode::Quorum
                && cluster.sync.as_ref().map_or(false, |s| !s.value.is_empty());
            if cluster.leader.is_none() && quorum {
                let me = &self.settings.identity.name;
                let others: BTreeMap<String, String> = cluster
                    .members
                    .iter()
                    .filter(|m| m.name != *me)
                    .filter_map(|m| m.data.api_url.clone().map(|u| (m.name.clone(), u)))
                    .collect();
                self.peers = Some(probe.statuses(&others).await);
            }
        }
        self.local.failsafe.accepted_leader = lock(&self.failsafe_inbox).clone();
        self.local.failsafe.leader_slots = self.requests.failsafe_slots();
        self.local.failsafe.confirmed_at = None;
        if loaded.is_err()
            && self.local.lease_deadline.is_some()
            && self.local.last_config.failsafe_mode()
        {
            if let Some(probe) = &self.failsafe_probe {
                let sent = self.clock.now();
                let me = self.settings.identity.name.clone();
                let others: BTreeMap<String, String> = self
                    .last_failsafe_members
                    .iter()
                    .filter(|(n, _)| **n != me)
                    .map(|(a, b)| (a.clone(), b.clone()))
                    .collect();
                let slots =
                    crate::decision::slots::positions(pg_obs.slots.as_deref().unwrap_or(&[]));
                if !self.last_failsafe_members.is_empty() {
                    if let Some(lsns) = probe.confirm_all(&me, &others, &slots).await {
                        self.local.failsafe.confirmed_at = Some(sent);
                        self.local.failsafe.member_lsns = lsns;
                    }
                }
            }
        }
        self.local.requests.restart = self
            .requests
            .restart
            .load(std::sync::atomic::Ordering::SeqCst);
        self.local.requests.reinitialize = self
            .requests
            .reinitialize
            .load(std::sync::atomic::Ordering::SeqCst);

        let decision = {
            let obs = Observation {
                peers: self.peers.as_ref(),
                me: &self.settings.identity,
                now,
                unix_ms: self.clock.unix_ms(),
                dcs: loaded.as_ref(),
                pg: &pg_obs,
                local: &self.local,
            };
            decide(&obs)
        };
        // The next loop compares its WAL position with this one (primary_race_backoff).
        self.local.prev_wal_lsn = pg_obs.is_alive().then_some(pg_obs.lsn);
        // Heartbeats are the embedder's to log (a daemon may write a repeated one once); changes are logged here.
        if decision.warning {
            warn!(actions = ?decision.actions, "{}", decision.reason);
        } else if decision.is_heartbeat() {
            debug!(actions = ?decision.actions, "{}", decision.reason);
        } else {
            info!(actions = ?decision.actions, "{}", decision.reason);
        }

        let mut executed = Vec::with_capacity(decision.actions.len());
        let mut stopped_pg = false;
        for action in &decision.actions {
            // A plan is only as good as its snapshot. A daemon frozen mid-loop (SIGSTOP) or a DCS call stuck in it
            // must not, on resuming, act on a snapshot older than a lease: by then the lock, the leader and the
            // others' data may all have changed (the simulator's soak: a node frozen 26 s in a loop whose snapshot
            // said it still held its lease re-took the free lock and started as primary behind the new timeline).
            // Stopping, fencing and letting go stay allowed: they are what a stale leader should do anyway.
            // Checked after the embedder's `before_action`, which may itself have taken long.
            self.hooks.before_action(action, self.role).await;
            let age = self.clock.now().since(now);
            if age > self.local.timing.lease_valid_ms() && !may_run_on_a_stale_plan(action) {
                let outcome = Outcome::Refused(format!(
                    "this loop's snapshot is {age} ms old, older than a lease: deciding again"
                ));
                warn!(?action, "{outcome:?}");
                self.hooks.after_action(action, &outcome).await;
                executed.push((action.clone(), outcome));
                break;
            }
            let outcome = if *action == Action::Promote && !self.hooks.pre_promote().await {
                // Cancelled by the embedder: give the lock back so another node can lead.
                self.local.lease_deadline = None;
                self.watchdog.disarm();
                let _ = self.dcs.release_leader(&self.settings.identity.name).await;
                Outcome::Refused("pre_promote cancelled the promotion; released the lock".into())
            } else {
                self.execute(action, &pg_obs, &mut stopped_pg).await
            };
            self.hooks.after_action(action, &outcome).await;
            let stop = outcome != Outcome::Done;
            if stop {
                match &outcome {
                    Outcome::Failed(e) | Outcome::Refused(e) => {
                        warn!(?action, error = %e, "action failed")
                    }
                    _ => info!(?action, "lost the race; skipping the rest"),
                }
            }
            executed.push((action.clone(), outcome));
            if stop {
                break;
            }
        }

        let touched_pg = executed.iter().any(|(a, _)| a.touches_postgres());
        // A standby listed anew counts as caught up only past where the primary was once the change took effect:
        // commits acknowledged under the previous setting may reach up to there.
        let names_changed = executed
            .iter()
            .any(|(a, o)| matches!(a, Action::SetSyncStandbyNames(_)) && *o == Outcome::Done);
        let pg_after = if touched_pg || names_changed {
            self.pg.observe().await
        } else {
            pg_obs
        };
        if names_changed {
            self.local.sync_names_changed_lsn = Some(pg_after.lsn);
        }
        let published = executed
            .iter()
            .any(|(a, o)| matches!(a, Action::WriteStatus { .. }) && *o == Outcome::Done);
        if published {
            self.local.unpublished_lsn = None;
        } else if pg_after.is_primary() && (loaded.is_err() || self.renew_unreachable) {
            let furthest = self.local.unpublished_lsn.unwrap_or(0).max(pg_after.lsn);
            self.local.unpublished_lsn = Some(furthest);
        }
        // After a renewal that found the DCS unreachable, the member write would only wait out another timeout
        // while the lease runs down: the next loop (at once, below) sees the outage and can act on it.
        if loaded.is_ok() && !self.renew_unreachable {
            let data = self.member_data(&pg_after);
            let name = &self.settings.identity.name;
            if let Err(e) = self.within_lease(self.dcs.touch_member(name, &data)).await {
                warn!(error = %e, "could not update the member key");
            }
        }

        let after = self.clock.now();
        let interrupted = executed.iter().any(|(_, o)| *o != Outcome::Done);
        // The snapshot this loop decided on predates a lock it just took: loop again at once, so the REST API (whose
        // `/primary` HAProxy checks) and the member key show the new leader now rather than a loop_wait later.
        let took_lock = done(&executed, &Action::AcquireLock);
        let mut next = if decision.rerun_now
            || took_lock
            || (interrupted && self.local.lease_deadline.is_none() && pg_after.is_primary())
        {
            after
        } else if matches!(loaded, Err(DcsError::Unreachable(_))) || self.renew_unreachable {
            // Retrying is the driver's job: an unreachable DCS (seen by the load, or by the renewal when the load
            // came from a cache) is tried again every second (at most loop_wait),
            // so a short blip costs a second, not a whole loop_wait; a request that waited out its timeout is
            // followed by the next at once, so a healed network is seen as soon as possible.
            started
                .plus_ms(
                    self.local
                        .timing
                        .loop_wait_ms
                        .min(self.dcs_retry_interval_ms()),
                )
                .max(after)
        } else {
            // Paced from the loop's start, as Patroni's `schedule_next_run` does: a loop that took long (a query
            // to a hung PostgreSQL waits out its timeout) does not add a whole loop_wait on top.
            started.plus_ms(self.local.timing.loop_wait_ms).max(after)
        };
        // Woken at the lease's end to act on it; a lease already over (a demotion that failed) wakes nothing: the
        // loop's own pace retries it, rather than a loop at once, again and again.
        if let Some(deadline) = self.local.lease_deadline.filter(|d| *d > after) {
            next = next.min(deadline);
        }
        let report = CycleReport {
            lease_deadline: self.local.lease_deadline,
            now,
            decision,
            executed,
            cluster: loaded,
            pg: pg_after,
            next_wake: next,
            tags: self.settings.identity.tags.clone(),
            config: self.local.last_config.clone(),
        };
        if self.status.receiver_count() > 0 {
            self.status.send_replace(Some(report.clone()));
        }
        let role = super::NodeRole::of(
            &report.pg,
            self.local.lease_deadline.is_some()
                && self.local.last_config.standby_cluster().is_some(),
        );
        if role != self.role {
            let old = std::mem::replace(&mut self.role, role);
            info!(old = old.as_str(), new = role.as_str(), "role changed");
            self.hooks.on_role_change(old, role).await;
        }
        if report.executed.iter().any(|(a, _)| *a == Action::Restart) {
            // Only now: `POST /restart` answers when the flag drops, from the latest report, which must be this
            // one (restarted, pending_restart cleared) and not the loop before it.
            self.requests
                .restart
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        report
    }

    /// [`DCS_RETRY_INTERVAL_MS`] spread by ±25 % per node (a fixed offset from the node's name, so a simulation
    /// replays exactly): after an outage of a DCS shared by many clusters, thousands of nodes would otherwise retry
    /// in lockstep, once a second, the moment it returns.
    fn dcs_retry_interval_ms(&self) -> u64 {
        // FNV-1a of the name: stable across runs and platforms, unlike std's hasher.
        let h = self
            .settings
            .identity
            .name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
            });
        DCS_RETRY_INTERVAL_MS * 3 / 4 + h % (DCS_RETRY_INTERVAL_MS / 2 + 1)
    }

    async fn absorb_config(&mut self, cluster: &Cluster) {
        // Before the first leader wrote `config`, the local `bootstrap.dcs` is the configuration in force.
        let cfg = match &cluster.config {
            Some(c) => c.value.clone(),
            // A key nobody can read: keep what was in force (after a first load, the cluster's last good one).
            None if cluster.config_unparsable.is_some() && self.ttl_set_ms.is_some() => {
                self.local.last_config.clone()
            }
            None => self.settings.bootstrap_config.clone(),
        };
        let timing = cfg.timing();
        if timing != self.local.timing || self.ttl_set_ms.is_none() {
            for w in cfg.timing_adjustments() {
                warn!(warning = %w, "timing in the DCS config adjusted");
            }
            self.watchdog.ttl_changed(timing.ttl_ms);
        }
        // Said when such a key first appears (at the first load, every one present).
        let before = if self.ttl_set_ms.is_none() {
            Vec::new()
        } else {
            self.local.last_config.not_acted_on()
        };
        for key in cfg
            .not_acted_on()
            .into_iter()
            .filter(|k| !before.contains(k))
        {
            warn!(key, "`{key}` in the DCS configuration is not acted on by hactl (see README: known limits)");
        }
        if timing.retry_timeout_ms != self.local.timing.retry_timeout_ms
            || self.ttl_set_ms.is_none()
        {
            self.dcs
                .set_retry_timeout(Duration::from_millis(timing.retry_timeout_ms));
        }
        self.local.timing = timing;
        self.local.last_config = cfg;
        if self.ttl_set_ms != Some(self.local.timing.ttl_ms) {
            if self
                .dcs
                .set_ttl(Duration::from_millis(self.local.timing.ttl_ms))
                .await
                .is_ok()
            {
                self.ttl_set_ms = Some(self.local.timing.ttl_ms);
            }
        }
    }
}

/// The actions a loop may still run after its snapshot went stale: the ones that only give up (a stale leader
/// should stop, fence, forget or release anyway), never one that takes the lock, starts or promotes a primary, or
/// rewrites what the others follow.
fn may_run_on_a_stale_plan(action: &Action) -> bool {
    matches!(
        action,
        Action::Stop(_)
            | Action::StopOrKill { .. }
            | Action::Fence
            | Action::ForgetLease
            | Action::ReleaseLock
    )
}
