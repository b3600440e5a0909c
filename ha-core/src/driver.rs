//! The driver: observe → [`decide`] → execute, every `loop_wait`, and at once when the leader key changes, when the
//! local postmaster exits ([`PgControl::exited`]), when a REST request arrives ([`RequestBox::wake`]) and right
//! after this node took the lock (so the leader it now is shows without a loop_wait's delay).
//!
//! It owns everything with effects and timing: the lease deadline (counted from the moment a successful renewal was
//! *sent*), the watchdog, PostgreSQL's unresponsiveness clock, the applied config version and the member key.
//! [`Driver::cycle`] runs one loop and says when the next is due, so a simulator can drive it on virtual time;
//! [`Driver::run`] is the real loop on tokio.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::dcs::{Dcs, DcsError, WatchOutcome};
use crate::decision::{
    decide, Action, Decision, LocalState, NodeIdentity, Observation, PlantedBug,
};
use crate::model::{
    Cluster, Failover, GlobalConfig, MemberData, PgStateName, Role, Status, Timing,
};
use crate::pg::{PgControl, PgError, PgObservation, PgRunState};
use crate::time::{Clock, Millis};
use crate::watchdog::{NoWatchdog, Watchdog};

/// Asks the members named in the `failsafe` key, over their REST API (`POST /failsafe`), whether they accept this
/// node as the leader while the DCS is unreachable. `true` only if every one of them did.
#[async_trait]
pub trait FailsafeProbe: Send + Sync {
    async fn confirm_all(&self, leader: &str, members: &BTreeMap<String, String>) -> bool;
}

/// How often an unreachable DCS is tried again between loops.
pub const DCS_RETRY_INTERVAL_MS: u64 = 1_000;

/// Hooks an embedder runs around the driver's actions (Patroni's callbacks). All optional.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Runs right before a promotion; `false` cancels it (Patroni's `pre_promote` with a non-zero exit). The driver
    /// then releases the lock so another node can take over.
    async fn pre_promote(&self) -> bool {
        true
    }
    /// Runs after each executed action, with its outcome (role-change callbacks, metrics, logs).
    async fn after_action(&self, _action: &Action, _outcome: &Outcome) {}
}

/// No hooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;
impl Hooks for NoHooks {}

/// Failsafe requests received from a leader (the REST handler writes, the driver reads): `(leader, valid until)`.
pub type FailsafeInbox = Arc<Mutex<Option<(String, Millis)>>>;

/// Operator requests from the REST API, taken by the next loop.
#[derive(Debug, Default)]
pub struct RequestBox {
    pub restart: std::sync::atomic::AtomicBool,
    pub reinitialize: std::sync::atomic::AtomicBool,
    /// Wakes a sleeping [`Driver::run`] (Patroni's `ha.wakeup()`).
    wakeup: tokio::sync::Notify,
}

impl RequestBox {
    /// Runs the next loop now instead of after loop_wait: a request (switchover, restart, new config…) was just
    /// written, and the DCS watch only sees the leader key. A wake-up during a loop runs one more loop right after.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }
}

/// What one executed action did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// A race was lost or the lock is not ours: the rest of the list was skipped.
    Lost,
    Failed(String),
    /// The driver refused to run it (a promotion without a valid lease).
    Refused(String),
}

/// The record of one loop.
#[derive(Debug, Clone)]
pub struct CycleReport {
    pub now: Millis,
    pub decision: Decision,
    pub executed: Vec<(Action, Outcome)>,
    /// The snapshot the decision saw, or the DCS error.
    pub cluster: Result<Cluster, DcsError>,
    pub pg: PgObservation,
    /// When the next loop is due.
    pub next_wake: Millis,
    /// Until when this node may act as the leader (its lease, counted from the last renewal sent), if it holds one.
    /// A REST API answering `/primary` checks it against the clock, so a daemon that was frozen does not report a
    /// lock it has lost before its next loop ran.
    pub lease_deadline: Option<Millis>,
}

impl CycleReport {
    pub fn promoted(&self) -> bool {
        done(&self.executed, &Action::Promote)
    }

    /// This loop took the leader lock: its snapshot, loaded before, does not show it yet.
    pub fn took_lock(&self) -> bool {
        done(&self.executed, &Action::AcquireLock)
    }
}

/// `action` ran in this list of executed actions and succeeded.
fn done(executed: &[(Action, Outcome)], action: &Action) -> bool {
    executed
        .iter()
        .any(|(a, o)| a == action && *o == Outcome::Done)
}

/// Static settings of a driver.
#[derive(Debug, Clone, Default)]
pub struct DriverSettings {
    pub identity: NodeIdentity,
    /// `bootstrap.dcs`: written to `config` by the node that bootstraps the cluster.
    pub bootstrap_config: GlobalConfig,
    #[doc(hidden)]
    pub planted_bug: Option<PlantedBug>,
}

/// Drives one node.
pub struct Driver<D, P> {
    dcs: D,
    pg: P,
    clock: Arc<dyn Clock>,
    watchdog: Box<dyn Watchdog>,
    failsafe_probe: Option<Box<dyn FailsafeProbe>>,
    hooks: Box<dyn Hooks>,
    status: tokio::sync::watch::Sender<Option<CycleReport>>,
    failsafe_inbox: FailsafeInbox,
    requests: Arc<RequestBox>,
    settings: DriverSettings,
    local: LocalState,
    ttl_set_ms: Option<u64>,
    last_leader_version: Option<u64>,
    last_failsafe_members: BTreeMap<String, String>,
    bootstrapped_sysid: Option<String>,
    /// This loop's lock renewal found the DCS unreachable (its `load` may still have been served from a cache): the
    /// next loop treats the DCS as unreachable without asking.
    renew_unreachable: bool,
}

impl<D: Dcs, P: PgControl> Driver<D, P> {
    pub fn new(dcs: D, pg: P, clock: Arc<dyn Clock>, settings: DriverSettings) -> Self {
        let timing = settings.bootstrap_config.timing();
        let started_at = clock.now();
        Driver {
            dcs,
            pg,
            clock,
            watchdog: Box::new(NoWatchdog),
            failsafe_probe: None,
            hooks: Box::new(NoHooks),
            status: tokio::sync::watch::channel(None).0,
            failsafe_inbox: Arc::default(),
            requests: Arc::default(),
            local: LocalState {
                timing,
                last_config: settings.bootstrap_config.clone(),
                started_at,
                ..Default::default()
            },
            settings,
            ttl_set_ms: None,
            last_leader_version: None,
            last_failsafe_members: BTreeMap::new(),
            bootstrapped_sysid: None,
            renew_unreachable: false,
        }
    }

    pub fn with_watchdog(mut self, w: Box<dyn Watchdog>) -> Self {
        self.watchdog = w;
        self
    }

    pub fn with_failsafe_probe(mut self, p: Box<dyn FailsafeProbe>) -> Self {
        self.failsafe_probe = Some(p);
        self
    }

    pub fn with_hooks(mut self, h: Box<dyn Hooks>) -> Self {
        self.hooks = h;
        self
    }

    /// Every loop's report, as it happens (for a REST API or metrics running beside the loop).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<CycleReport>> {
        self.status.subscribe()
    }

    /// Where the REST API puts failsafe requests from a leader.
    pub fn failsafe_inbox(&self) -> FailsafeInbox {
        self.failsafe_inbox.clone()
    }

    /// Where the REST API puts restart/reinitialize requests.
    pub fn requests(&self) -> Arc<RequestBox> {
        self.requests.clone()
    }

    pub fn local_state(&self) -> &LocalState {
        &self.local
    }

    pub fn dcs(&self) -> &D {
        &self.dcs
    }
    pub fn pg(&self) -> &P {
        &self.pg
    }
    pub fn identity(&self) -> &NodeIdentity {
        &self.settings.identity
    }

    /// Accepts `leader` as the leader for one ttl (the `POST /failsafe` handler).
    pub fn accept_failsafe_leader(
        inbox: &FailsafeInbox,
        leader: &str,
        now: Millis,
        timing: Timing,
    ) {
        if let Ok(mut g) = inbox.lock() {
            *g = Some((leader.to_string(), now.plus_ms(timing.ttl_ms)));
        }
    }

    /// One loop: observe, decide, execute, publish the member key. Returns what happened and when to run next.
    pub async fn cycle(&mut self) -> CycleReport {
        let name = self.settings.identity.name.clone();
        let span = info_span!("ha_loop", node = %name);
        self.cycle_inner().instrument(span).await
    }

    async fn cycle_inner(&mut self) -> CycleReport {
        let now = self.clock.now();
        let renewal_just_failed = std::mem::take(&mut self.renew_unreachable);
        let pg_obs = self.pg.observe().await;
        if pg_obs.state() == PgRunState::Unresponsive {
            self.local.unresponsive_since.get_or_insert(now);
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
            self.dcs.load().await
        };
        if let Ok(cluster) = &loaded {
            self.absorb_config(cluster).await;
            self.last_leader_version = cluster.leader.as_ref().map(|l| l.version);
            self.last_failsafe_members = cluster.failsafe.clone().unwrap_or_default();
        }
        self.local.failsafe.accepted_leader =
            self.failsafe_inbox.lock().ok().and_then(|g| g.clone());
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
                if !self.last_failsafe_members.is_empty() && probe.confirm_all(&me, &others).await {
                    self.local.failsafe.confirmed_at = Some(sent);
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
                me: &self.settings.identity,
                now,
                unix_ms: self.clock.unix_ms(),
                dcs: loaded.as_ref(),
                pg: &pg_obs,
                local: &self.local,
                planted_bug: self.settings.planted_bug,
            };
            decide(&obs)
        };
        if decision.actions.is_empty() {
            debug!(reason = %decision.reason, "decision");
        } else {
            info!(reason = %decision.reason, actions = ?decision.actions, "decision");
        }

        let mut executed = Vec::with_capacity(decision.actions.len());
        let mut stopped_pg = false;
        for action in &decision.actions {
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
        let pg_after = if touched_pg {
            self.pg.observe().await
        } else {
            pg_obs
        };
        // After a renewal that found the DCS unreachable, the member write would only wait out another timeout
        // while the lease runs down: the next loop (at once, below) sees the outage and can act on it.
        if loaded.is_ok() && !self.renew_unreachable {
            let data = self.member_data(&pg_after);
            if let Err(e) = self
                .dcs
                .touch_member(&self.settings.identity.name, &data)
                .await
            {
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
            now.plus_ms(self.local.timing.loop_wait_ms.min(DCS_RETRY_INTERVAL_MS))
                .max(after)
        } else {
            // Paced from the loop's start, as Patroni's `schedule_next_run` does: a loop that took long (a query
            // to a hung PostgreSQL waits out its timeout) does not add a whole loop_wait on top.
            now.plus_ms(self.local.timing.loop_wait_ms).max(after)
        };
        if let Some(deadline) = self.local.lease_deadline {
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
        };
        if self.status.receiver_count() > 0 {
            self.status.send_replace(Some(report.clone()));
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

    async fn absorb_config(&mut self, cluster: &Cluster) {
        // Before the first leader wrote `config`, the local `bootstrap.dcs` is the configuration in force.
        let cfg = match &cluster.config {
            Some(c) => c.value.clone(),
            None => self.settings.bootstrap_config.clone(),
        };
        let timing = cfg.timing();
        if timing != self.local.timing || self.ttl_set_ms.is_none() {
            for w in cfg.timing_adjustments() {
                warn!(warning = %w, "timing in the DCS config adjusted");
            }
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

    /// The lease runs from `sent` (when the successful request left this node) for ttl minus the safety margin.
    fn take_lease(&mut self, sent: Millis) {
        let valid = self.local.timing.lease_valid_ms();
        let deadline = sent.plus_ms(valid);
        self.local.lease_deadline = Some(deadline);
        self.watchdog.arm(deadline);
    }

    fn lease_valid_now(&self) -> bool {
        self.local
            .lease_deadline
            .map_or(false, |d| self.clock.now() < d)
    }

    async fn execute(
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
                match self.dcs.renew_leader(&name).await {
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
                if !self.lease_valid_now() && self.settings.planted_bug.is_none() {
                    return Outcome::Refused(
                        "no valid lease: will not start PostgreSQL as primary".into(),
                    );
                }
                pg_res(self.pg.start_primary().await)
            }
            Action::StartReplica(up) => pg_res(self.pg.start_replica(up.as_ref()).await),
            Action::Promote => {
                if !self.lease_valid_now() && self.settings.planted_bug.is_none() {
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
            Action::Fence => {
                let r = self.pg.fence().await;
                if r.is_ok() {
                    *stopped_pg = true;
                    self.local.fenced_at = Some(self.clock.now());
                }
                pg_res(r)
            }
            Action::Follow(up) => pg_res(self.pg.follow(up).await),
            Action::Rewind(up) => pg_res(self.pg.rewind(up).await),
            Action::Reinitialize(up) => {
                let r = self.pg.reinitialize(up).await;
                if r.is_ok() {
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
            } => match self.pg.apply_parameters(parameters).await {
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
            Action::WriteStatus { optime } => dcs_res(
                self.dcs
                    .write_status(&Status {
                        optime: Some(*optime),
                        ..Default::default()
                    })
                    .await,
            ),
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
        }
    }

    /// The member key value, as Patroni's `touch_member` writes it.
    pub fn member_data(&self, pg: &PgObservation) -> MemberData {
        member_data(
            &self.settings.identity,
            pg,
            self.local.last_config.is_paused(),
        )
    }

    /// Graceful shutdown: stop PostgreSQL cleanly, then release the lock so a replica takes over without waiting for
    /// the ttl. While paused, PostgreSQL is left running and the lock kept, as Patroni does.
    pub async fn shutdown(&mut self) {
        let name = self.settings.identity.name.clone();
        if self.local.last_config.is_paused() {
            info!(node = %name, "paused: leaving PostgreSQL running on shutdown");
            return;
        }
        let _ = self.pg.stop(crate::pg::StopMode::Fast).await;
        // The member key goes first: a replica woken by the release must not still read "primary" in it.
        let _ = self.dcs.delete_member(&name).await;
        if self.local.lease_deadline.take().is_some() {
            let obs = self.pg.observe().await;
            let _ = self
                .dcs
                .write_status(&Status {
                    optime: Some(obs.lsn),
                    ..Default::default()
                })
                .await;
            if let Err(e) = self.dcs.release_leader(&name).await {
                warn!(error = %e, "could not release the leader lock on shutdown");
            }
        }
        self.watchdog.disarm();
        info!(node = %name, "stopped PostgreSQL and left the cluster");
    }

    /// The real loop: cycles until `shutdown` resolves, waking early for the reasons the module doc lists.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Self {
        tokio::pin!(shutdown);
        let requests = self.requests.clone();
        loop {
            let report = self.cycle().await;
            let now = self.clock.now();
            let wait_ms = report.next_wake.since(now);
            let watch = self
                .dcs
                .watch_leader(self.last_leader_version, Duration::from_millis(wait_ms));
            // Only a server this loop saw alive can die in between; a dead one is the next loop's business.
            let pg_alive = report.pg.is_alive();
            let pg_exit = async {
                if pg_alive {
                    self.pg.exited().await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = requests.wakeup.notified() => debug!("woken by a request: running a loop now"),
                _ = pg_exit => info!("PostgreSQL exited: running a loop now"),
                r = watch => {
                    match r {
                        Ok(WatchOutcome::LeaderChanged) => debug!("leader key changed: running a loop now"),
                        Ok(WatchOutcome::TimedOut) => {}
                        Err(_) => {
                            // An unreachable DCS returns at once: still wait until the next loop is due.
                            let left = report.next_wake.since(self.clock.now());
                            tokio::select! {
                                _ = &mut shutdown => break,
                                _ = tokio::time::sleep(Duration::from_millis(left)) => {}
                            }
                        }
                    }
                }
            }
        }
        self.shutdown().await;
        self
    }
}

/// The member key for a node in the state `pg`.
pub fn member_data(id: &NodeIdentity, pg: &PgObservation, paused: bool) -> MemberData {
    let (state, role) = match pg.state() {
        PgRunState::Uninitialized => (PgStateName::Stopped, Role::Uninitialized),
        PgRunState::Stopped => (
            PgStateName::Stopped,
            if pg.in_recovery {
                Role::Replica
            } else {
                Role::Demoted
            },
        ),
        PgRunState::Crashed => (PgStateName::Crashed, Role::Demoted),
        PgRunState::Starting => (
            PgStateName::Starting,
            if pg.in_recovery {
                Role::Replica
            } else {
                Role::Primary
            },
        ),
        PgRunState::Running | PgRunState::Unresponsive => (
            PgStateName::Running,
            if pg.in_recovery {
                Role::Replica
            } else {
                Role::Primary
            },
        ),
    };
    let mut d = MemberData {
        conn_url: Some(id.conn_url.clone()),
        api_url: Some(id.api_url.clone()),
        state: Some(state.as_str().to_string()),
        role: Some(role.as_str().to_string()),
        version: Some(id.version.clone()),
        ..Default::default()
    };
    if pg.is_alive() {
        d.xlog_location = Some(pg.lsn);
        d.timeline = Some(pg.timeline);
        if pg.in_recovery {
            d.replay_lsn = pg.replay_lsn.or(Some(pg.lsn));
            d.receive_lsn = pg.receive_lsn.or(Some(pg.lsn));
            d.replication_state = Some(
                if pg.streaming {
                    "streaming"
                } else {
                    "in archive recovery"
                }
                .to_string(),
            );
        }
    }
    let tags = id.tags.for_member_key();
    if !tags.is_empty() {
        d.tags = Some(tags);
    }
    if !pg.pending_restart.is_empty() {
        d.pending_restart = Some(true);
    }
    if paused {
        d.pause = Some(true);
    }
    d
}
