//! ha-core's `Driver` on a real Consul: three nodes over a simulated PostgreSQL form a cluster; the leader's HA loop
//! freezes (no more session renewals); Consul destroys its session 2 × session TTL = ttl after the last renewal and
//! a replica is promoted, not before the old leader's lease ran out and within the documented bound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcs_consul::testing::ConsulServer;
use dcs_consul::{ConsulDcs, ConsulSettings};
use ha_core::dcs::Dcs;
use ha_core::decision::NodeIdentity;
use ha_core::driver::{Driver, DriverSettings};
use ha_core::model::GlobalConfig;
use ha_core::sim::{SimPg, SimPgNet};
use ha_core::time::{Clock, SystemClock};
use tokio::sync::mpsc;

/// 20 s: a 10 s session, Consul's minimum (see the crate doc).
const TTL_S: f64 = 20.0;
const LOOP_WAIT_S: f64 = 1.0;
const RETRY_TIMEOUT_S: f64 = 2.0;
/// The driver's lease margin: max(1 s, ttl / 10).
const MARGIN_S: f64 = 2.0;

/// Cycles until `freeze` is set, then stops cycling without releasing anything (the driver stays alive).
async fn node(
    mut d: Driver<ConsulDcs, SimPg>,
    clock: Arc<SystemClock>,
    freeze: Arc<AtomicBool>,
    events: mpsc::UnboundedSender<(String, Instant, bool)>,
) {
    let name = d.identity().name.clone();
    loop {
        if freeze.load(Ordering::SeqCst) {
            // Frozen: keep the driver alive, renew nothing.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        let r = d.cycle().await;
        let leader = r.cluster.as_ref().ok().and_then(|c| c.leader_name()) == Some(name.as_str());
        if r.promoted() || leader {
            let _ = events.send((name.clone(), Instant::now(), r.promoted()));
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

fn settings(server: &ConsulServer, name: &str) -> ConsulSettings {
    ConsulSettings {
        url: server.url(),
        namespace: "service".into(),
        scope: "failover".into(),
        name: name.into(),
        ttl: Duration::from_secs_f64(TTL_S),
        retry_timeout: Duration::from_secs_f64(RETRY_TIMEOUT_S),
        token: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_frozen_leader_is_replaced_after_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = ConsulServer::start_or_skip(dir.path()) else {
        return;
    };
    let pgs = SimPgNet::new();
    let clock = Arc::new(SystemClock::new());
    let bootstrap = GlobalConfig {
        ttl: Some(TTL_S),
        loop_wait: Some(LOOP_WAIT_S),
        retry_timeout: Some(RETRY_TIMEOUT_S),
        ..Default::default()
    };
    let stepper = {
        let pgs = pgs.clone();
        tokio::spawn(async move {
            loop {
                pgs.replicate_step();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut freezes = Vec::new();
    for i in 1..=3 {
        let name = format!("node{i}");
        let dcs = ConsulDcs::new(settings(&server, &name)).unwrap();
        let driver = Driver::new(
            dcs,
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // node1 bootstraps and leads; let the replicas clone and stream.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let observer = ConsulDcs::ctl(settings(&server, "observer")).unwrap();
    let snap = observer.load().await.unwrap();
    assert_eq!(snap.leader_name(), Some("node1"), "{snap:?}");
    assert_eq!(snap.members.len(), 3);

    freezes[0].store(true, Ordering::SeqCst);
    let frozen_at = Instant::now();
    while rx.try_recv().is_ok() {}
    let (who, at) = loop {
        let (who, at, promoted) = tokio::time::timeout(Duration::from_secs(40), rx.recv())
            .await
            .expect("no promotion within 40 s")
            .unwrap();
        if promoted && who != "node1" {
            break (who, at);
        }
    };
    let took = at - frozen_at;
    eprintln!("{who} promoted {took:?} after node1's loop froze (ttl {TTL_S} s)");
    // Not before the frozen leader's lease could have run out (ttl minus its margin, from its last renewal)...
    assert!(
        took >= Duration::from_secs_f64(TTL_S - MARGIN_S - LOOP_WAIT_S),
        "promoted too early: {took:?}"
    );
    // ...and within ttl + one loop + retry_timeout of it.
    assert!(
        took <= Duration::from_secs_f64(TTL_S + LOOP_WAIT_S + RETRY_TIMEOUT_S + 2.0),
        "promoted too late: {took:?}"
    );
    stepper.abort();
}
