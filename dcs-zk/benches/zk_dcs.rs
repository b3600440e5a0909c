//! What the ZooKeeper DCS costs and how fast it reacts, on a real standalone ZooKeeper 3.8 on loopback:
//!
//! 1. DCS round trips and bytes per HA loop per node at steady state: three ha-core `Driver`s over a simulated
//!    PostgreSQL (`ha_core::sim::SimPgNet`), each with its own `ZkDcs` reaching ZooKeeper through its own counting
//!    proxy (bytes = TCP payload both ways: jute framing and pings included). Requests are counted one by one, but
//!    ZooKeeper pipelines them on one connection: `load` sends its reads in three waves. One loop is what `Driver::run` does: `cycle()`
//!    then `watch_leader` until the next loop is due.
//! 2. Watch latency: from the moment a client sends a leader-key change to the moment another node's
//!    `watch_leader` (an `exists` watch) returns, median and p99 over `WATCH_CHANGES` changes.
//!
//! Run: `cargo bench -p dcs-zk --bench zk_dcs` (needs ZooKeeper: Debian's `zookeeper`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dcs_zk::testing::{CountingProxy, ZkServer};
use dcs_zk::{ZkDcs, ZkSettings};
use ha_core::dcs::{Dcs, WatchOutcome};
use ha_core::decision::NodeIdentity;
use ha_core::driver::{CycleReport, Driver, DriverSettings};
use ha_core::model::GlobalConfig;
use ha_core::sim::{SimPg, SimPgNet};
use ha_core::time::SystemClock;

const NODES: usize = 3;
/// Loops until the cluster is formed (bootstrap, replicas cloned and streaming).
const WARMUP_LOOPS: usize = 30;
/// Loops measured per node.
const MEASURED_LOOPS: usize = 100;
/// How long each loop's watch waits: the real loop waits `loop_wait`; a short wait keeps the benchmark quick.
const LOOP_WATCH: Duration = Duration::from_millis(50);
/// Leader changes timed for the watch latency.
const WATCH_CHANGES: usize = 200;

fn settings(hosts: String, scope: &str, name: &str) -> ZkSettings {
    ZkSettings {
        hosts,
        namespace: "service".into(),
        scope: scope.into(),
        name: name.into(),
        ttl: Duration::from_secs(10),
        retry_timeout: Duration::from_secs(2),
    }
}

struct NodeStats {
    name: String,
    leader: bool,
    requests: u64,
    round_trips: u64,
    bytes: (u64, u64),
}

/// One HA loop as `Driver::run` does it: a cycle, then the watch until the next loop is due.
async fn one_loop(d: &mut Driver<ZkDcs, SimPg>) -> CycleReport {
    let report = d.cycle().await;
    let known = report
        .cluster
        .as_ref()
        .ok()
        .and_then(|c| c.leader.as_ref().map(|l| l.version));
    let _ = d.dcs().watch_leader(known, LOOP_WATCH).await;
    report
}

/// Returns the driver too: dropping it ends its session, which must not happen while the others still measure.
async fn run_node(
    mut driver: Driver<ZkDcs, SimPg>,
    proxy: CountingProxy,
) -> (NodeStats, Driver<ZkDcs, SimPg>) {
    for _ in 0..WARMUP_LOOPS {
        one_loop(&mut driver).await;
    }
    let (r0, t0, b0) = (
        driver.dcs().requests_sent(),
        driver.dcs().round_trips(),
        proxy.bytes(),
    );
    let mut leader = false;
    for _ in 0..MEASURED_LOOPS {
        let report = one_loop(&mut driver).await;
        leader = report
            .cluster
            .as_ref()
            .ok()
            .and_then(|c| c.leader_name().map(str::to_string))
            == Some(driver.identity().name.clone());
    }
    let b1 = proxy.bytes();
    let stats = NodeStats {
        name: driver.identity().name.clone(),
        leader,
        requests: driver.dcs().requests_sent() - r0,
        round_trips: driver.dcs().round_trips() - t0,
        bytes: (b1.0 - b0.0, b1.1 - b0.1),
    };
    (stats, driver)
}

async fn ha_loop_cost(server: &ZkServer) {
    let pgs = SimPgNet::new();
    let bootstrap = GlobalConfig {
        ttl: Some(10.0),
        loop_wait: Some(1.0),
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
        let proxy = CountingProxy::start(server.port()).await.expect("proxy");
        let dcs = ZkDcs::new(settings(
            format!("127.0.0.1:{}", proxy.port()),
            "bench-loop",
            &name,
        ));
        let identity = NodeIdentity {
            name: name.clone(),
            conn_url: format!("postgres://127.0.0.1:{}/postgres", 5431 + i),
            api_url: format!("http://127.0.0.1:{}/patroni", 8007 + i),
            version: "0.1.0".into(),
            ..Default::default()
        };
        let driver = Driver::new(
            dcs,
            pgs.server(&name),
            Arc::new(SystemClock::new()),
            DriverSettings {
                identity,
                bootstrap_config: bootstrap.clone(),
                ..Default::default()
            },
        );
        tasks.push(tokio::spawn(run_node(driver, proxy)));
        // Staggered starts, as real nodes: the first one bootstraps, the others clone it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stats = Vec::new();
    let mut drivers = Vec::new();
    for t in tasks {
        let (s, d) = t.await.expect("node task");
        stats.push(s);
        drivers.push(d);
    }
    drop(drivers);
    stepper.abort();

    println!("== zookeeper steady state: {NODES} nodes, {MEASURED_LOOPS} HA loops each after {WARMUP_LOOPS} warm-up loops (ttl 10 s) ==");
    let loops = MEASURED_LOOPS as f64;
    for s in &stats {
        println!(
            "{:<6} {:<8} {:5.2} round trips/loop ({:5.2} requests, pipelined)  {:7.0} B/loop sent  {:7.0} B/loop received",
            s.name,
            if s.leader { "leader" } else { "replica" },
            s.round_trips as f64 / loops,
            s.requests as f64 / loops,
            s.bytes.0 as f64 / loops,
            s.bytes.1 as f64 / loops,
        );
    }
    let total: u64 = stats.iter().map(|s| s.round_trips).sum();
    let requests: u64 = stats.iter().map(|s| s.requests).sum();
    let bytes: u64 = stats.iter().map(|s| s.bytes.0 + s.bytes.1).sum();
    println!(
        "mean per node: {:.2} round trips/loop ({:.2} requests), {:.0} bytes/loop (both ways)",
        total as f64 / loops / NODES as f64,
        requests as f64 / loops / NODES as f64,
        bytes as f64 / loops / NODES as f64
    );
}

async fn watch_latency(server: &ZkServer) {
    let watcher = Arc::new(ZkDcs::new(settings(
        server.hosts(),
        "bench-watch",
        "watcher",
    )));
    let flipper = ZkDcs::new(settings(server.hosts(), "bench-watch", "flipper"));
    let mut latencies = Vec::with_capacity(WATCH_CHANGES);
    let mut held = false;
    for _ in 0..WATCH_CHANGES {
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
        // Let the watch reach ZooKeeper, so the time measured is the notification, not the set-up.
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
    println!("== zookeeper watch latency: leader-key change sent -> watch_leader returned, {WATCH_CHANGES} changes ==");
    println!(
        "median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    // RUST_LOG=dcs_zk=info,ha_core=info shows every decision and DCS event.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(server) = ZkServer::start_or_skip(dir.path()) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t = Instant::now();
        ha_loop_cost(&server).await;
        watch_latency(&server).await;
        println!("(benchmark took {:.1} s)", t.elapsed().as_secs_f64());
    });
}
