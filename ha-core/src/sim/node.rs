//! One simulated node: its daemon (up, frozen or down), the real [`Driver`] it runs (a loop or a shutdown may be in
//! flight across steps, waiting for the DCS), its own clock, its watchdog and failsafe inbox; and the REST network
//! between nodes, over which a leader in failsafe mode asks the others to accept it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::clock::NodeClock;
use super::dcs_link::SimDcsLink;
use super::{SimPg, SimSync, Simulation};
use crate::decision::NodeIdentity;
use crate::driver::{
    CycleReport, Driver, DriverSettings, FailsafeInbox, FailsafeProbe, PeerProbe, PeerStatus,
};
use crate::model::{DynamicPostgresql, GlobalConfig, Timing};
use crate::sync::lock;
use crate::time::{Clock, Millis};
use crate::watchdog::Watchdog;

/// The driver a simulated node runs.
pub(super) type SimDriver = Driver<SimDcsLink, SimPg>;

/// A loop (`Some` report) or a graceful shutdown (`None`) in flight; it owns the driver until it completes.
pub(super) type InFlight =
    Pin<Box<dyn Future<Output = (Box<SimDriver>, Option<CycleReport>)> + Send>>;

/// What a node's daemon is doing.
#[derive(Default)]
pub(super) enum Slot {
    /// No daemon process.
    #[default]
    Gone,
    /// Waiting for its next loop.
    Idle(Box<SimDriver>),
    /// A loop or a shutdown waits for the DCS.
    Busy(InFlight),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Daemon {
    Up,
    Frozen { until: Millis },
    Down { until: Millis },
}

#[derive(Clone, Default)]
pub(super) struct SimWatchdog(pub(super) Arc<Mutex<Option<Millis>>>);

impl Watchdog for SimWatchdog {
    fn arm(&self, deadline: Millis) {
        *lock(&self.0) = Some(deadline);
    }
    fn disarm(&self) {
        *lock(&self.0) = None;
    }
}

/// Which daemons answer REST calls, and their failsafe inboxes: the simulated network between nodes.
#[derive(Clone, Default)]
/// Each entry: whether the daemon answers, its inbox, and its machine's clock (the receiver stamps what it accepts).
pub(super) struct RestNet(
    pub(super) Arc<Mutex<BTreeMap<String, (bool, FailsafeInbox, NodeClock)>>>,
);

struct SimProbe {
    me: String,
    rest: RestNet,
    timing: Timing,
}

#[async_trait]
impl FailsafeProbe for SimProbe {
    // The simulated servers have no slots: no positions are passed on either way.
    async fn confirm_all(
        &self,
        leader: &str,
        members: &BTreeMap<String, String>,
        _slots: &BTreeMap<String, u64>,
    ) -> Option<BTreeMap<String, u64>> {
        let g = lock(&self.rest.0);
        if !g.get(&self.me).map_or(false, |(answers, _, _)| *answers) {
            // Cut off from the other daemons: no request leaves.
            return None;
        }
        let mut all = true;
        for name in members.keys() {
            match g.get(name) {
                Some((true, inbox, clock)) => {
                    SimDriver::accept_failsafe_leader(inbox, leader, clock.now(), self.timing)
                }
                _ => all = false,
            }
        }
        all.then(BTreeMap::new)
    }
}

/// The other daemons' REST answers (`GET /patroni`): a daemon that is down or frozen answers nothing, one whose
/// PostgreSQL does not answer reports no position.
struct SimPeers {
    me: String,
    rest: RestNet,
    net: super::SimPgNet,
}

#[async_trait]
impl PeerProbe for SimPeers {
    async fn statuses(&self, members: &BTreeMap<String, String>) -> BTreeMap<String, PeerStatus> {
        let up = lock(&self.rest.0);
        if !up.get(&self.me).map_or(false, |(answers, _, _)| *answers) {
            return BTreeMap::new();
        }
        members
            .keys()
            .filter(|n| up.get(*n).map_or(false, |(answers, _, _)| *answers))
            .filter_map(|n| {
                let s = self.net.state(n)?;
                (s.run == super::SimRun::Running).then(|| {
                    (
                        n.clone(),
                        PeerStatus {
                            lsn: s.lsn,
                            in_recovery: s.standby,
                        },
                    )
                })
            })
            .collect()
    }
}

pub(super) struct SimNode {
    pub(super) name: String,
    pub(super) slot: Slot,
    /// A SIGTERM arrived: the daemon shuts down once its current loop ends, and is started again this much later.
    pub(super) stop_requested: Option<u64>,
    pub(super) clock: NodeClock,
    /// How long after its deadline the fencer has PostgreSQL dead (kill, then the postmaster's exit).
    pub(super) fence_delay_ms: u64,
    pub(super) daemon: Daemon,
    pub(super) next_wake: Millis,
    pub(super) watchdog: SimWatchdog,
    pub(super) inbox: FailsafeInbox,
    pub(super) hung_until: Option<Millis>,
    pub(super) partitioned_until: Option<Millis>,
    pub(super) replication_cut_until: Option<Millis>,
    pub(super) link_trouble_until: Option<Millis>,
    pub(super) rest_cut_until: Option<Millis>,
    pub(super) fencer_frozen_until: Option<Millis>,
    pub(super) last_reason: String,
}

impl Simulation {
    fn bootstrap_config(&self) -> GlobalConfig {
        let mut params = serde_json::Map::new();
        params.insert("max_connections".into(), 100.into());
        GlobalConfig {
            ttl: Some(self.cfg.ttl_s),
            loop_wait: Some(self.cfg.loop_wait_s),
            retry_timeout: Some(self.cfg.retry_timeout_s),
            maximum_lag_on_failover: Some(self.cfg.maximum_lag_on_failover),
            failsafe_mode: Some(self.cfg.failsafe_mode),
            synchronous_mode: match self.cfg.sync {
                SimSync::Async => None,
                SimSync::On | SimSync::OnStrict => Some(true.into()),
                SimSync::Quorum | SimSync::QuorumStrict => Some("quorum".into()),
            },
            synchronous_mode_strict: Some(matches!(
                self.cfg.sync,
                SimSync::OnStrict | SimSync::QuorumStrict
            )),
            postgresql: Some(DynamicPostgresql {
                use_pg_rewind: Some(true),
                parameters: Some(params),
                ..Default::default()
            }),
            extra: [(
                "synchronous_node_count".to_string(),
                self.cfg.sync_node_count.into(),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        }
    }

    pub(super) fn start_daemon(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        let identity = NodeIdentity {
            name: name.clone(),
            conn_url: format!("postgres://{name}:5432/postgres"),
            api_url: format!("http://{name}:8008/patroni"),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        };
        #[allow(non_snake_case)]
        fn ha_core_remove_data() -> crate::decision::RemoveData {
            crate::decision::RemoveData {
                on_rewind_failure: true,
                on_diverged_timelines: true,
            }
        }
        let settings = DriverSettings {
            identity,
            bootstrap_config: self.bootstrap_config(),
            replica_without_leader: false,
            // A restarted simulated daemon forgets its failsafe promises (nothing persists them).
            failsafe_promises_kept: false,
            cached_config: None,
            // The simulator's diverged nodes are rejoined, as they were before these settings existed.
            remove_data: ha_core_remove_data(),
            // The cluster's use_pg_rewind decides, as the scenario configures it.
            use_pg_rewind: None,
        };
        let clock: Arc<dyn Clock> = Arc::new(self.nodes[i].clock.clone());
        // Each daemon's link draws its latencies from its own stream (seed, node, start), so the order in which
        // the step polls the nodes does not change what each one meets.
        let link_seed = self.cfg.seed ^ ((i as u64 + 1) << 48) ^ self.clock.now().0;
        let link = SimDcsLink::new(
            self.dcs.client(&name),
            &name,
            self.clock.clone(),
            self.dcs_links.clone(),
            ChaCha8Rng::seed_from_u64(link_seed),
            self.timing.retry_timeout_ms,
        );
        let mut driver = Driver::new(link, self.net.server(&name), clock, settings)
            .with_failsafe_probe(Box::new(SimProbe {
                me: name.clone(),
                rest: self.rest.clone(),
                timing: self.timing,
            }))
            .with_peer_probe(Box::new(SimPeers {
                me: name.clone(),
                rest: self.rest.clone(),
                net: self.net.clone(),
            }));
        if self.cfg.watchdog {
            driver = driver.with_watchdog(Box::new(self.nodes[i].watchdog.clone()));
        }
        // A restarted daemon has a fresh inbox, as a new process would.
        let inbox = driver.failsafe_inbox();
        self.nodes[i].inbox = inbox.clone();
        if let Some(e) = lock(&self.rest.0).get_mut(&name) {
            e.1 = inbox;
        }
        self.nodes[i].slot = Slot::Idle(Box::new(driver));
        self.nodes[i].stop_requested = None;
        self.nodes[i].daemon = Daemon::Up;
        self.nodes[i].next_wake = self.clock.now();
    }
}
