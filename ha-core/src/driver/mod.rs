//! The driver: observe → [`decide`](crate::decision::decide) → execute, every `loop_wait`, and at once when the leader key changes, when the
//! local postmaster exits ([`PgControl::exited`]), when a REST request arrives ([`RequestBox::wake`]) and right
//! after this node took the lock (so the leader it now is shows without a loop_wait's delay).
//!
//! It owns everything with effects and timing: the lease deadline (counted from the moment a successful renewal was
//! *sent*), the watchdog, PostgreSQL's unresponsiveness clock, the applied config version and the member key.
//! [`Driver::cycle`] runs one loop and says when the next is due, so a simulator can drive it on virtual time;
//! [`Driver::run`] is the real loop on tokio.
//!
//! # Layout
//! - `cycle`: one loop (observe, decide, execute, publish the member key) and when the next one is due.
//! - `execute`: what each [`Action`] does to the DCS and PostgreSQL, and the driver's own
//!   refusal to start or promote a primary without a valid lease.
//! - `lease`: the lease deadline and the watchdog armed with it.
//! - `member`: the member key this node publishes ([`member_data`]).
//! - `report`: the record of a loop ([`CycleReport`]) and of each action in it ([`Outcome`]).
//! - `requests`: what the REST API hands the loop ([`RequestBox`], [`FailsafeInbox`]).
//! - `hooks`: what an embedder plugs in ([`Hooks`], [`FailsafeProbe`]).
//!
//! This file holds the [`Driver`] itself, its settings, and its life: [`Driver::run`] and [`Driver::shutdown`].

mod cycle;
mod execute;
mod hooks;
mod lease;
mod member;
mod report;
mod requests;

pub use cycle::DCS_RETRY_INTERVAL_MS;
pub use hooks::{FailsafeProbe, Hooks, NoHooks, NodeRole, OnRoleChange, PeerProbe, PeerStatus};
pub use member::member_data;
pub use report::{CycleReport, Outcome};
pub use requests::{FailsafeInbox, RequestBox};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, error, info, warn};

use crate::dcs::{Dcs, WatchOutcome};
use crate::decision::{Action, LocalState, NodeIdentity};
use crate::model::{GlobalConfig, Status};
use crate::pg::PgControl;
use crate::time::Clock;
use crate::watchdog::{NoWatchdog, Watchdog};

/// Static settings of a driver.
#[derive(Debug, Clone, Default)]
pub struct DriverSettings {
    /// Who this node is: its name, URLs, tags and version, as its member key shows them.
    pub identity: NodeIdentity,
    /// `bootstrap.dcs`: written to `config` by the node that bootstraps the cluster.
    pub bootstrap_config: GlobalConfig,
    /// A replica method that needs no running member is configured ([`LocalState::replica_without_leader`]).
    pub replica_without_leader: bool,
    /// The embedder keeps failsafe promises across restarts (it persists what `POST /failsafe` accepted and
    /// preloads [`Driver::failsafe_inbox`] at start): see [`LocalState::failsafe_promises_kept`].
    pub failsafe_promises_kept: bool,
    /// The cluster's configuration as this node last saw it (Patroni's `patroni.dynamic.json`): in force until the
    /// first read of the DCS, so a node restarted during an outage keeps the cluster's ttl and failsafe mode
    /// rather than its `bootstrap.dcs`.
    pub cached_config: Option<GlobalConfig>,
    /// This node's own `postgresql.use_pg_rewind` (`None`: the cluster's; see
    /// [`crate::decision::LocalState::use_pg_rewind`]).
    pub use_pg_rewind: Option<bool>,
    /// This node's `postgresql.remove_data_directory_on_*` settings: when it may wipe its data directory to rejoin
    /// (see [`crate::decision::RemoveData`]; off by default, as in Patroni).
    pub remove_data: crate::decision::RemoveData,
}

/// Drives one node.
pub struct Driver<D, P> {
    dcs: D,
    pg: P,
    clock: Arc<dyn Clock>,
    watchdog: Box<dyn Watchdog>,
    failsafe_probe: Option<Box<dyn FailsafeProbe>>,
    peer_probe: Option<Box<dyn PeerProbe>>,
    /// This loop's live answers of the other members (asked only when they matter: no leader, quorum mode).
    peers: Option<BTreeMap<String, PeerStatus>>,
    hooks: Box<dyn Hooks>,
    status: tokio::sync::watch::Sender<Option<CycleReport>>,
    failsafe_inbox: FailsafeInbox,
    requests: Arc<RequestBox>,
    settings: DriverSettings,
    local: LocalState,
    ttl_set_ms: Option<u64>,
    last_leader_version: Option<u64>,
    last_failsafe_members: BTreeMap<String, String>,
    /// The `status` key as last read: a status written outside a loop (on shutdown) keeps its slots.
    last_status: Option<Status>,
    bootstrapped_sysid: Option<String>,
    /// This loop's lock renewal found the DCS unreachable (its `load` may still have been served from a cache): the
    /// next loop treats the DCS as unreachable without asking.
    renew_unreachable: bool,
    /// What the node served after the last loop, for [`Hooks::on_role_change`].
    role: NodeRole,
}

impl<D: Dcs, P: PgControl> Driver<D, P> {
    /// A driver for the node `settings.identity`, without watchdog, probes or hooks (add them with the `with_*`
    /// methods). Until the first DCS read, the timing in force is `cached_config`'s, else `bootstrap_config`'s.
    pub fn new(dcs: D, pg: P, clock: Arc<dyn Clock>, settings: DriverSettings) -> Self {
        let timing = settings
            .cached_config
            .as_ref()
            .unwrap_or(&settings.bootstrap_config)
            .timing();
        let started_at = clock.now();
        Driver {
            dcs,
            pg,
            clock,
            watchdog: Box::new(NoWatchdog),
            failsafe_probe: None,
            peer_probe: None,
            peers: None,
            hooks: Box::new(NoHooks),
            status: tokio::sync::watch::channel(None).0,
            failsafe_inbox: Arc::default(),
            requests: Arc::default(),
            local: LocalState {
                timing,
                last_config: settings
                    .cached_config
                    .clone()
                    .unwrap_or_else(|| settings.bootstrap_config.clone()),
                started_at,
                replica_without_leader: settings.replica_without_leader,
                failsafe_promises_kept: settings.failsafe_promises_kept,
                remove_data: settings.remove_data,
                own_use_pg_rewind: settings.use_pg_rewind,
                ..Default::default()
            },
            settings,
            ttl_set_ms: None,
            last_leader_version: None,
            last_failsafe_members: BTreeMap::new(),
            last_status: None,
            bootstrapped_sysid: None,
            renew_unreachable: false,
            role: NodeRole::Stopped,
        }
    }

    /// Arms `w` with every lease deadline (disarmed while paused), so PostgreSQL is fenced even if this loop
    /// freezes; the default, [`NoWatchdog`], fences nothing.
    pub fn with_watchdog(mut self, w: Box<dyn Watchdog>) -> Self {
        self.watchdog = w;
        self
    }

    /// Lets a leader keep its role through a DCS outage in failsafe mode, by asking the members over REST; without a
    /// probe, a leader in failsafe mode demotes as soon as the DCS is unreachable.
    pub fn with_failsafe_probe(mut self, p: Box<dyn FailsafeProbe>) -> Self {
        self.failsafe_probe = Some(p);
        self
    }

    /// Lets the leader race in quorum mode count live answers (without one, votes come from the member keys
    /// after a `loop_wait` for them to be republished; see [`crate::decision::quorum::votes`]).
    pub fn with_peer_probe(mut self, p: Box<dyn PeerProbe>) -> Self {
        self.peer_probe = Some(p);
        self
    }

    /// Runs `h` around the driver's actions (see [`Hooks`]); the default has none.
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

    /// What the driver remembers between loops: the lease deadline, the configuration in force, the pending requests...
    pub fn local_state(&self) -> &LocalState {
        &self.local
    }

    /// The DCS client this driver uses.
    pub fn dcs(&self) -> &D {
        &self.dcs
    }
    /// The PostgreSQL control this driver uses.
    pub fn pg(&self) -> &P {
        &self.pg
    }
    /// Who this node is, with the tags of the last configuration reload.
    pub fn identity(&self) -> &NodeIdentity {
        &self.settings.identity
    }

    /// Graceful shutdown: stop PostgreSQL cleanly, then release the lock so a replica takes over without waiting for
    /// the ttl. While paused, PostgreSQL is left running and the lock kept, as Patroni does.
    pub async fn shutdown(&mut self) {
        let name = self.settings.identity.name.clone();
        if self.local.last_config.is_paused() {
            info!(node = %name, "paused: leaving PostgreSQL running on shutdown");
            return;
        }
        self.hooks
            .before_action(&Action::Stop(crate::pg::StopMode::Fast), self.role)
            .await;
        if let Err(e) = self.pg.stop(crate::pg::StopMode::Fast).await {
            if crate::mutants::active(crate::mutants::PlantedBug::ReleaseAfterFailedStop) {
                error!(node = %name, error = %e, "could not stop PostgreSQL (planted bug: leaving anyway)");
            } else {
                // A postmaster that would not stop (hung) may still serve writes through its backends: the lock is
                // kept so no replica promotes beside it, and the watchdog stays armed so it fences at the lease end
                // (the fencer outlives this process). The others take over after the ttl.
                error!(node = %name, error = %e, "could not stop PostgreSQL: keeping the lock and the watchdog armed");
                return;
            }
        }
        // The member key goes first: a replica woken by the release must not still read "primary" in it.
        let _ = self.dcs.delete_member(&name).await;
        if self.local.lease_deadline.take().is_some() {
            let obs = self.pg.observe().await;
            // The slots and the members to retain stay as the last loop published them: the next leader keeps
            // this node's slot (and the others it retains) from them.
            let status = Status {
                optime: Some(obs.lsn),
                ..self.last_status.clone().unwrap_or_default()
            };
            let _ = self.dcs.write_status(&status).await;
            if let Err(e) = self.dcs.release_leader(&name).await {
                warn!(error = %e, "could not release the leader lock on shutdown");
            }
        }
        self.watchdog.disarm();
        let old = std::mem::replace(&mut self.role, NodeRole::Stopped);
        if old != NodeRole::Stopped {
            self.hooks.on_role_change(old, NodeRole::Stopped).await;
        }
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
            // After a failed action in a loop that took or released the lock itself (a bootstrap command that
            // fails), the next try waits for its loop: the leader key change this loop made must not wake it into
            // a tight retry.
            let failed = report
                .executed
                .iter()
                .any(|(_, o)| matches!(o, Outcome::Failed(_)))
                && report.executed.iter().any(|(a, o)| {
                    matches!(a, Action::AcquireLock | Action::ReleaseLock) && *o == Outcome::Done
                });
            let known_leader = self.last_leader_version;
            let dcs = &self.dcs;
            let watch = async move {
                if failed {
                    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                    Ok(WatchOutcome::TimedOut)
                } else {
                    dcs.watch_leader(known_leader, Duration::from_millis(wait_ms))
                        .await
                }
            };
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
