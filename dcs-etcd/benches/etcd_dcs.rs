//! What the etcd DCS costs and how fast it reacts, on a real single-member etcd on loopback:
//!
//! 1. DCS round trips and bytes per HA loop per node at steady state: three ha-core `Driver`s over a simulated
//!    PostgreSQL (`ha_core::sim::SimPgNet`), each with its own `EtcdDcs` reaching etcd through its own counting
//!    proxy (bytes = TCP payload both ways: gRPC, HTTP/2 framing and pings included). One loop is what
//!    `Driver::run` does: `cycle()` then `watch_leader` until the next loop is due.
//! 2. Watch latency: from the moment a client sends a leader-key change to the moment another node's
//!    `watch_leader` returns (woken by that node's cluster watch), median and p99 over `WATCH_CHANGES` changes.
//!
//! Run: `cargo bench -p dcs-etcd --bench etcd_dcs` (needs `etcd`: Debian's etcd-server).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcs_etcd::testing::{etcd_or_skip, EtcdServer, TcpProxy};
use dcs_etcd::{EtcdDcs, EtcdSettings};
use ha_core::dcs::{Dcs, WatchOutcome};
use ha_core::decision::NodeIdentity;
use ha_core::driver::{CycleReport, Driver, DriverSettings};
use ha_core::model::{GlobalConfig, MemberData};
use ha_core::sim::{SimPg, SimPgNet};
use ha_core::time::{Clock, SystemClock};

const NODES: usize = 3;
/// Loops until the cluster is formed (bootstrap, replicas cloned and streaming).
const WARMUP_LOOPS: usize = 15;
/// Loops measured per node, each `LOOP_WAIT_S` long as in a real daemon (so the lease keepalives of replicas
/// come at their real rate): about a minute.
const MEASURED_LOOPS: usize = 60;
/// `loop_wait` of the benchmark cluster (ttl 10 s, retry_timeout 2 s).
const LOOP_WAIT_S: f64 = 1.0;
/// Leader changes timed for the watch latency.
const WATCH_CHANGES: usize = 200;

fn settings(endpoint: String, scope: &str, name: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new([endpoint], scope, name);
    s.request_timeout = Duration::from_secs(2);
    s
}

struct NodeStats {
    name: String,
    leader: bool,
    requests: u64,
    by_op: BTreeMap<&'static str, u64>,
    bytes: (u64, u64),
}

fn diff(
    a: &BTreeMap<&'static str, u64>,
    b: &BTreeMap<&'static str, u64>,
) -> BTreeMap<&'static str, u64> {
    b.iter()
        .map(|(k, v)| (*k, v - a.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// One HA loop as `Driver::run` does it: a cycle, then the watch until the next loop is due.
async fn one_loop(d: &mut Driver<EtcdDcs, SimPg>, clock: &SystemClock) -> CycleReport {
    let report = d.cycle().await;
    let known = report
        .cluster
        .as_ref()
        .ok()
        .and_then(|c| c.leader.as_ref().map(|l| l.version));
    let wait = Duration::from_millis(report.next_wake.since(clock.now()));
    let _ = d.dcs().watch_leader(known, wait).await;
    report
}

async fn run_node(
    mut driver: Driver<EtcdDcs, SimPg>,
    clock: SystemClock,
    proxy: TcpProxy,
) -> NodeStats {
    for _ in 0..WARMUP_LOOPS {
        one_loop(&mut driver, &clock).await;
    }
    let dcs = driver.dcs().clone();
    let (r0, ops0, b0) = (dcs.requests(), dcs.requests_by_op(), proxy.bytes());
    let mut leader = false;
    for _ in 0..MEASURED_LOOPS {
        let report = one_loop(&mut driver, &clock).await;
        leader = report
            .cluster
            .as_ref()
            .ok()
            .and_then(|c| c.leader_name().map(str::to_string))
            == Some(driver.identity().name.clone());
    }
    let b1 = proxy.bytes();
    NodeStats {
        name: driver.identity().name.clone(),
        leader,
        requests: dcs.requests() - r0,
        by_op: diff(&ops0, &dcs.requests_by_op()),
        bytes: (b1.0 - b0.0, b1.1 - b0.1),
    }
}

async fn ha_loop_cost(server: &EtcdServer) {
    let pgs = SimPgNet::new();
    let bootstrap = GlobalConfig {
        ttl: Some(10.0),
        loop_wait: Some(LOOP_WAIT_S),
        retry_timeout: Some(2.0),
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
    let mut tasks = Vec::new();
    for i in 1..=NODES {
        let name = format!("node{i}");
        let proxy = TcpProxy::start(server.addr()).await.expect("proxy");
        let dcs = EtcdDcs::new(settings(proxy.endpoint(), "bench-loop", &name)).expect("settings");
        let identity = NodeIdentity {
            name: name.clone(),
            conn_url: format!("postgres://127.0.0.1:{}/postgres", 5431 + i),
            api_url: format!("http://127.0.0.1:{}/patroni", 8007 + i),
            version: "0.1.0".into(),
            ..Default::default()
        };
        let clock = SystemClock::new();
        let driver = Driver::new(
            dcs,
            pgs.server(&name),
            Arc::new(clock.clone()),
            DriverSettings {
                identity,
                bootstrap_config: bootstrap.clone(),
                ..Default::default()
            },
        );
        tasks.push(tokio::spawn(run_node(driver, clock, proxy)));
        // Staggered starts, as real nodes: the first one bootstraps, the others clone it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stats = Vec::new();
    for t in tasks {
        stats.push(t.await.expect("node task"));
    }
    stepper.abort();

    println!("== steady state: {NODES} nodes, {MEASURED_LOOPS} HA loops each after {WARMUP_LOOPS} warm-up loops (ttl 10 s, loop_wait {LOOP_WAIT_S} s) ==");
    let loops = MEASURED_LOOPS as f64;
    for s in &stats {
        let ops: Vec<String> = s
            .by_op
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / loops))
            .collect();
        println!(
            "{:<6} {:<8} {:5.2} round trips/loop  {:7.0} B/loop sent  {:7.0} B/loop received   [{}]",
            s.name,
            if s.leader { "leader" } else { "replica" },
            s.requests as f64 / loops,
            s.bytes.0 as f64 / loops,
            s.bytes.1 as f64 / loops,
            ops.join(", ")
        );
    }
    let total: u64 = stats.iter().map(|s| s.requests).sum();
    let bytes: u64 = stats.iter().map(|s| s.bytes.0 + s.bytes.1).sum();
    println!(
        "mean per node: {:.2} round trips/loop, {:.0} bytes/loop (both ways)",
        total as f64 / loops / NODES as f64,
        bytes as f64 / loops / NODES as f64
    );
}

async fn watch_latency(server: &EtcdServer) {
    let watcher = Arc::new(
        EtcdDcs::new(settings(server.endpoint(), "bench-watch", "watcher")).expect("settings"),
    );
    // A node like a daemon's, with a lease: its watch_leader waits on its cluster watch, not on a Watch RPC.
    watcher
        .set_ttl(Duration::from_secs(10))
        .await
        .expect("set_ttl");
    let flipper =
        EtcdDcs::new(settings(server.endpoint(), "bench-watch", "flipper")).expect("settings");
    flipper
        .set_ttl(Duration::from_secs(10))
        .await
        .expect("set_ttl");
    let mut latencies = Vec::with_capacity(WATCH_CHANGES);
    let mut held = false;
    for _ in 0..WATCH_CHANGES {
        // The keepalive of the watcher's loop, which keeps its cache trusted.
        watcher
            .touch_member("watcher", &MemberData::default())
            .await
            .expect("touch_member");
        let known = watcher
            .load()
            .await
            .expect("load")
            .leader
            .map(|l| l.version);
        let w = watcher.clone();
        let watch = tokio::spawn(async move {
            let r = w.watch_leader(known, Duration::from_secs(5)).await;
            (r, Instant::now())
        });
        // Let the watch stream be established, so the time measured is the notification, not the set-up.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        if held {
            flipper.release_leader("flipper").await.expect("release");
        } else {
            assert!(flipper.acquire_leader("flipper").await.expect("acquire"));
        }
        held = !held;
        let (r, woke) = watch.await.expect("watch task");
        assert_eq!(r.expect("watch"), WatchOutcome::LeaderChanged);
        latencies.push(woke.saturating_duration_since(sent));
    }
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() as f64 * p).ceil() as usize).min(latencies.len()) - 1];
    println!("== watch latency: leader-key change sent -> watch_leader returned, {WATCH_CHANGES} changes ==");
    println!(
        "median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    if etcd_or_skip("etcd_dcs benchmark").is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = EtcdServer::start(dir.path()).expect("etcd");
    rt.block_on(async {
        let t = Instant::now();
        ha_loop_cost(&server).await;
        watch_latency(&server).await;
        println!("(benchmark took {:.1} s)", t.elapsed().as_secs_f64());
    });
}
