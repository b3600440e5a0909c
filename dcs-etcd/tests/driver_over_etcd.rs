//! ha-core's real driver loop (`Driver::run`) over EtcdDcs on a 3-member etcd, with simulated PostgreSQL servers:
//! the cluster forms, the primary's machine dies and a replica takes over once the lease expired (woken by the
//! watch), never with two writers; a graceful shutdown hands over at once.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dcs_etcd::testing::{etcd_or_skip, EtcdCluster};
use dcs_etcd::{EtcdDcs, EtcdSettings};
use ha_core::dcs::DcsClient;
use ha_core::decision::NodeIdentity;
use ha_core::driver::{Driver, DriverSettings};
use ha_core::model::GlobalConfig;
use ha_core::sim::{SimPgNet, SimRun};
use ha_core::time::SystemClock;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TTL_S: f64 = 3.0;
const LOOP_WAIT_S: f64 = 0.5;
const RETRY_TIMEOUT_S: f64 = 1.0;

struct Node {
    name: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

fn start_node(name: &str, endpoints: &[String], pgs: &SimPgNet) -> Node {
    let mut s = EtcdSettings::new(endpoints.iter().cloned(), "e2e", name);
    s.request_timeout = Duration::from_secs_f64(RETRY_TIMEOUT_S);
    let dcs = EtcdDcs::new(s).unwrap();
    let settings = DriverSettings {
        identity: NodeIdentity {
            name: name.to_string(),
            conn_url: format!("postgres://{name}:5432/postgres"),
            api_url: format!("http://{name}:8008/patroni"),
            version: "0.1.0".into(),
            ..Default::default()
        },
        bootstrap_config: GlobalConfig {
            ttl: Some(TTL_S),
            loop_wait: Some(LOOP_WAIT_S),
            retry_timeout: Some(RETRY_TIMEOUT_S),
            ..Default::default()
        },
        ..Default::default()
    };
    let driver = Driver::new(
        dcs,
        pgs.server(name),
        Arc::new(SystemClock::new()),
        settings,
    );
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        driver
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    Node {
        name: name.to_string(),
        stop: Some(tx),
        task,
    }
}

/// Who accepts writes right now.
fn writers(pgs: &SimPgNet) -> Vec<String> {
    pgs.lock()
        .servers
        .iter()
        .filter(|(_, s)| s.accepts_writes())
        .map(|(n, _)| n.clone())
        .collect()
}

/// Polls every 50 ms until `done` says so (returning its value), asserting at every step that there is never more
/// than one writer.
async fn until<T>(
    pgs: &SimPgNet,
    within: Duration,
    what: &str,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        let w = writers(pgs);
        assert!(w.len() <= 1, "two writers while waiting for {what}: {w:?}");
        if let Some(v) = done() {
            return v;
        }
        assert!(start.elapsed() < within, "no {what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_dies_a_replica_takes_over_through_etcd_then_a_graceful_handover() {
    if etcd_or_skip("primary_dies_a_replica_takes_over_through_etcd_then_a_graceful_handover")
        .is_none()
    {
        return;
    }
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let cluster = EtcdCluster::start(dir.path(), 3).unwrap();
    let eps = cluster.endpoints();
    let pgs = SimPgNet::new();
    let stepper = pgs.replicate_in_background(Duration::from_millis(50));
    let mut nodes: Vec<Node> = (1..=3)
        .map(|i| start_node(&format!("node{i}"), &eps, &pgs))
        .collect();
    let observer = EtcdDcs::ctl(EtcdSettings::new(eps.clone(), "e2e", "")).unwrap();

    // The cluster forms: one primary holding the lock, two streaming replicas, three member keys.
    let primary = {
        let mut found = None;
        let start = Instant::now();
        while found.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no cluster formed"
            );
            let c = observer.load().await.unwrap();
            let w = writers(&pgs);
            assert!(w.len() <= 1, "two writers while forming: {w:?}");
            let streaming = pgs.lock().servers.values().filter(|s| s.streaming).count();
            if let (Some(l), [one]) = (c.leader_name(), w.as_slice()) {
                if l == one && streaming == 2 && c.members.len() == 3 {
                    found = Some(l.to_string());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found.unwrap()
    };

    // The primary's machine dies: its daemon stops without releasing, its PostgreSQL crashes.
    let i = nodes.iter().position(|n| n.name == primary).unwrap();
    let dead = nodes.remove(i);
    dead.task.abort();
    let _ = dead.task.await;
    pgs.with(&primary, |s| s.run = SimRun::Crashed);
    let died = Instant::now();
    // The lease runs out after ttl; the replicas' watches wake on the key's deletion; one promotes.
    let bound = Duration::from_secs_f64(TTL_S + 2.0 * LOOP_WAIT_S + RETRY_TIMEOUT_S + 2.0);
    let new_primary = until(&pgs, bound, "failover", || {
        let w = writers(&pgs);
        (w.len() == 1 && w[0] != primary).then(|| w[0].clone())
    })
    .await;
    let took = died.elapsed();
    // The promotion followed the lock: the leader key names the new primary.
    let c = observer.load().await.unwrap();
    assert_eq!(c.leader_name(), Some(new_primary.as_str()));
    eprintln!("failover: {new_primary} took over {took:?} after {primary} died (ttl {TTL_S} s)");
    assert!(
        took >= Duration::from_secs_f64(TTL_S - 1.0),
        "took over after {took:?}, before the old lease could expire"
    );

    // A graceful shutdown of the new primary: it stops PostgreSQL and releases the lock; the last node takes over
    // at once (woken by the watch), not after a ttl.
    let i = nodes.iter().position(|n| n.name == new_primary).unwrap();
    let mut leaving = nodes.remove(i);
    let _ = leaving.stop.take().unwrap().send(());
    leaving.task.await.unwrap();
    let released = Instant::now();
    let last = nodes[0].name.clone();
    until(&pgs, Duration::from_secs(5), "handover", || {
        (writers(&pgs) == [last.clone()]).then_some(())
    })
    .await;
    eprintln!(
        "handover: {last} took over {:?} after {new_primary} left",
        released.elapsed()
    );
    assert!(
        released.elapsed() < Duration::from_secs_f64(TTL_S),
        "handover took {:?}: the lock was not released",
        released.elapsed()
    );
    for n in nodes {
        n.task.abort();
    }
    stepper.abort();
}
