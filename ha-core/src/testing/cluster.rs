//! Drivers on a real DCS over a simulated PostgreSQL, each of whose HA loops can be frozen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::dcs::Dcs;
use crate::decision::NodeIdentity;
use crate::driver::{Driver, DriverSettings};
use crate::model::GlobalConfig;
use crate::sim::{SimPg, SimPgNet};
use crate::time::{Clock, SystemClock};

/// How often the simulated replicas take a replication step.
const REPLICATE_STEP: Duration = Duration::from_millis(20);

/// What a node's loop saw, sent after each cycle in which it led or was promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopEvent {
    /// The node's name (`node1`..).
    pub node: String,
    /// When its cycle ended.
    pub at: Instant,
    /// This cycle promoted the node.
    pub promoted: bool,
}

/// Nodes `node1`..`nodeN`, started `stagger` apart so that `node1` bootstraps and the others clone it. Each runs the
/// loop `Driver::run` runs (a cycle, then `watch_leader` until the next loop is due) until frozen
/// ([`DriverCluster::freeze`]): then it stops cycling without releasing anything, its driver (and so its session)
/// kept alive, as a hung daemon. Dropping the cluster stops the replication of the simulated PostgreSQL.
#[derive(Debug)]
pub struct DriverCluster {
    freezes: Vec<Arc<AtomicBool>>,
    events: mpsc::UnboundedReceiver<LoopEvent>,
    stepper: tokio::task::JoinHandle<()>,
}

impl DriverCluster {
    /// Starts `nodes` nodes with `bootstrap` as `bootstrap.dcs`, each on the client `client(name)`.
    pub async fn start<D: Dcs + 'static>(
        nodes: usize,
        bootstrap: GlobalConfig,
        stagger: Duration,
        client: impl Fn(&str) -> D,
    ) -> DriverCluster {
        let pgs = SimPgNet::new();
        let stepper = pgs.replicate_in_background(REPLICATE_STEP);
        let clock = Arc::new(SystemClock::new());
        let (tx, events) = mpsc::unbounded_channel();
        let mut freezes = Vec::new();
        for i in 1..=nodes {
            let name = format!("node{i}");
            let driver = Driver::new(
                client(&name),
                pgs.server(&name),
                clock.clone(),
                DriverSettings {
                    identity: NodeIdentity {
                        name: name.clone(),
                        conn_url: format!("postgres://127.0.0.1:{}/postgres", 5431 + i),
                        api_url: format!("http://127.0.0.1:{}/patroni", 8007 + i),
                        ..Default::default()
                    },
                    bootstrap_config: bootstrap.clone(),
                    ..Default::default()
                },
            );
            let freeze = Arc::new(AtomicBool::new(false));
            freezes.push(freeze.clone());
            tokio::spawn(node(driver, clock.clone(), freeze, tx.clone()));
            tokio::time::sleep(stagger).await;
        }
        DriverCluster {
            freezes,
            events,
            stepper,
        }
    }

    /// Freezes the HA loop of `node{i}` (from 1) and forgets the events so far; returns when it froze.
    pub fn freeze(&mut self, i: usize) -> Instant {
        self.freezes[i - 1].store(true, Ordering::SeqCst);
        let at = Instant::now();
        while self.events.try_recv().is_ok() {}
        at
    }

    /// The next promotion of a node other than `except`. Panics if none comes within `within`.
    pub async fn next_promotion(&mut self, except: &str, within: Duration) -> LoopEvent {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no promotion within {within:?}"))
                .expect("node loops ended");
            if e.promoted && e.node != except {
                return e;
            }
        }
    }
}

impl Drop for DriverCluster {
    fn drop(&mut self) {
        self.stepper.abort();
    }
}

/// Cycles until `freeze` is set, then stops cycling without releasing anything (the driver stays alive).
async fn node<D: Dcs>(
    mut d: Driver<D, SimPg>,
    clock: Arc<SystemClock>,
    freeze: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<LoopEvent>,
) {
    let name = d.identity().name.clone();
    loop {
        if freeze.load(Ordering::SeqCst) {
            // Frozen: keep the driver (and its session) alive, renew nothing.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let r = d.cycle().await;
        let leader = r.cluster.as_ref().ok().and_then(|c| c.leader_name()) == Some(name.as_str());
        if r.promoted() || leader {
            let _ = events.send(LoopEvent {
                node: name.clone(),
                at: Instant::now(),
                promoted: r.promoted(),
            });
        }
        let known = r
            .cluster
            .as_ref()
            .ok()
            .and_then(|c| c.leader.as_ref().map(|l| l.version));
        let wait = Duration::from_millis(r.next_wake.since(clock.now()));
        let _ = d.dcs().watch_leader(known, wait).await;
    }
}

/// The frozen-leader check every backend runs on its real server: three drivers with `timing` (`ttl`, `loop_wait`,
/// `retry_timeout`) form a cluster (`settle` to let the replicas clone and stream), node1's loop freezes, and a
/// replica is promoted **not before** node1's lease could have run out (ttl − safety margin − one loop_wait after
/// the freeze: the last renewal may precede it by a loop) **and within** ttl + loop_wait + retry_timeout + `slack`
/// (a backend's own expiry granularity). `observer` reads the cluster the drivers formed. Returns the promotion's
/// delay.
pub async fn frozen_leader_is_replaced_after_its_lease<D: Dcs + 'static>(
    timing: GlobalConfig,
    settle: Duration,
    slack: Duration,
    client: impl Fn(&str) -> D,
    observer: &dyn crate::dcs::DcsClient,
) -> Duration {
    let t = timing.timing();
    let ms = |m: u64| Duration::from_millis(m);
    let mut cluster = DriverCluster::start(3, timing, Duration::from_millis(200), client).await;
    tokio::time::sleep(settle).await;
    let snap = observer
        .load()
        .await
        .expect("the observer reads the cluster");
    assert_eq!(snap.leader_name(), Some("node1"), "{snap:?}");
    assert_eq!(snap.members.len(), 3, "{snap:?}");

    let frozen_at = cluster.freeze(1);
    let bound = ms(t.ttl_ms + t.loop_wait_ms + t.retry_timeout_ms) + slack;
    let promoted = cluster.next_promotion("node1", bound * 2).await;
    let (who, took) = (promoted.node, promoted.at - frozen_at);
    eprintln!(
        "{who} promoted {took:?} after node1's loop froze (ttl {} ms)",
        t.ttl_ms
    );
    assert!(
        took >= ms(t.lease_valid_ms().saturating_sub(t.loop_wait_ms)),
        "promoted too early: {took:?}"
    );
    assert!(
        took <= bound,
        "promoted too late: {took:?}, bound {bound:?}"
    );
    took
}
