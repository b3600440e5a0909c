//! The benchmark every DCS backend runs (feature `testing`): what its DCS costs per HA loop and how fast its leader
//! watch reacts, on a real server. A backend's bench only starts its server and says how to make a client.
//!
//! 1. [`ha_loop_cost`]: DCS round trips and bytes per HA loop per node at steady state. Several [`Driver`]s over a
//!    simulated PostgreSQL ([`SimPgNet`]), each with its own client reaching the server through its own counting
//!    [`TcpProxy`] (bytes = TCP payload both ways). One loop is what `Driver::run` does: `cycle()` then
//!    `watch_leader` until the next loop is due.
//! 2. [`watch_latency`]: from the moment a client sends a leader-key change to the moment another node's
//!    `watch_leader` returns, median and p99.
//!
//! ```no_run
//! # use std::net::SocketAddr;
//! # use ha_core::conformance::bench::{self, Counters, LoopBench, WatchBench};
//! # use ha_core::mock_dcs::MemoryDcsClient as MyDcs;
//! # async fn demo(server: SocketAddr, client: impl Fn(&str, String) -> MyDcs) {
//! let loops = LoopBench { title: "mydcs steady state".into(), ..Default::default() };
//! bench::ha_loop_cost(
//!     &loops,
//!     server,                                              // the proxies forward to it
//!     |name, proxy| client(name, proxy.to_string()),       // node `name`'s client, connecting to `proxy`
//!     |dcs| Counters { requests: 0, round_trips: 0, ..Default::default() }, // its counters so far
//! )
//! .await;
//! let watch = WatchBench { title: "mydcs watch latency".into(), ..Default::default() };
//! let direct = server.to_string();
//! bench::watch_latency(&watch, client("watcher", direct.clone()), client("flipper", direct)).await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dcs::{Dcs, DcsClient, WatchOutcome};
use crate::decision::NodeIdentity;
use crate::driver::{CycleReport, Driver, DriverSettings};
use crate::model::{GlobalConfig, MemberData};
use crate::sim::{SimPg, SimPgNet};
use crate::testing::TcpProxy;
use crate::time::{Clock, SystemClock};

/// What [`ha_loop_cost`] runs.
#[derive(Debug, Clone)]
pub struct LoopBench {
    /// First words of the printed heading, e.g. `"zookeeper steady state"`.
    pub title: String,
    /// Closes the heading's parentheses, e.g. `"ttl 10 s"`.
    pub conditions: String,
    /// How many nodes (`node1`..`nodeN`) run the loop.
    pub nodes: usize,
    /// Loops until the cluster is formed (bootstrap, replicas cloned and streaming).
    pub warmup_loops: usize,
    /// Loops measured per node.
    pub measured_loops: usize,
    /// `bootstrap.dcs` of the benchmark cluster.
    pub bootstrap: GlobalConfig,
    /// How long each loop's `watch_leader` waits.
    pub loop_wait: LoopWait,
    /// The backend pipelines requests: print requests next to round trips.
    pub pipelined: bool,
}

impl Default for LoopBench {
    fn default() -> Self {
        LoopBench {
            title: "steady state".into(),
            conditions: "ttl 10 s".into(),
            nodes: 3,
            warmup_loops: 30,
            measured_loops: 100,
            bootstrap: GlobalConfig {
                ttl: Some(10.0),
                loop_wait: Some(1.0),
                retry_timeout: Some(2.0),
                ..Default::default()
            },
            loop_wait: LoopWait::Fixed(Duration::from_millis(50)),
            pipelined: false,
        }
    }
}

/// How long a loop's watch waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopWait {
    /// A fixed, short wait: the real loop waits `loop_wait`, a short wait keeps the benchmark quick.
    Fixed(Duration),
    /// Until the loop is due again, as in a real daemon (so lease keepalives come at their real rate).
    UntilNextLoop,
}

/// A client's request counters so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent.
    pub requests: u64,
    /// Round trips (fewer than requests when the backend pipelines them).
    pub round_trips: u64,
    /// Requests by operation, if the backend counts them so (printed when not empty).
    pub by_op: BTreeMap<&'static str, u64>,
}

/// What one node did over the measured loops.
#[derive(Debug, Clone)]
pub struct NodeFigures {
    /// The member name (`node1`..).
    pub name: String,
    /// Held the leader key at the last measured loop.
    pub leader: bool,
    /// Requests its client sent.
    pub requests: u64,
    /// Round trips its client made (fewer than requests when the backend pipelines them).
    pub round_trips: u64,
    /// Requests by operation, where the backend counts them so.
    pub by_op: BTreeMap<&'static str, u64>,
    /// Bytes client → server, server → client.
    pub bytes: (u64, u64),
}

/// Runs `settings.nodes` drivers against the server at `upstream`, each client made by `client(name, proxy_addr)`
/// and counted by `counters`, prints the figures per node and their mean, and returns them.
pub async fn ha_loop_cost<D, C, K>(
    settings: &LoopBench,
    upstream: SocketAddr,
    client: C,
    counters: K,
) -> Vec<NodeFigures>
where
    D: Dcs + 'static,
    C: Fn(&str, SocketAddr) -> D,
    K: Fn(&D) -> Counters + Send + Sync + 'static,
{
    let pgs = SimPgNet::new();
    let stepper = pgs.replicate_in_background(Duration::from_millis(20));
    let counters = Arc::new(counters);
    let mut tasks = Vec::new();
    for i in 1..=settings.nodes {
        let name = format!("node{i}");
        let proxy = TcpProxy::start(upstream).await.expect("proxy");
        let dcs = client(&name, proxy.addr());
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
                bootstrap_config: settings.bootstrap.clone(),
                ..Default::default()
            },
        );
        tasks.push(tokio::spawn(run_node(
            driver,
            clock,
            proxy,
            counters.clone(),
            settings.clone(),
        )));
        // Staggered starts, as real nodes: the first one bootstraps, the others clone it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut figures = Vec::new();
    let mut alive = Vec::new();
    for t in tasks {
        let (f, driver, proxy) = t.await.expect("node task");
        figures.push(f);
        alive.push((driver, proxy));
    }
    drop(alive);
    stepper.abort();
    print_loop_cost(settings, &figures);
    figures
}

/// One HA loop as `Driver::run` does it: a cycle, then the watch until the next loop is due.
async fn one_loop<D: Dcs>(
    d: &mut Driver<D, SimPg>,
    clock: &SystemClock,
    wait: LoopWait,
) -> CycleReport {
    let report = d.cycle().await;
    let known = report
        .cluster
        .as_ref()
        .ok()
        .and_then(|c| c.leader.as_ref().map(|l| l.version));
    let wait = match wait {
        LoopWait::Fixed(w) => w,
        LoopWait::UntilNextLoop => Duration::from_millis(report.next_wake.since(clock.now())),
    };
    let _ = d.dcs().watch_leader(known, wait).await;
    report
}

/// Returns the driver and the proxy too: dropping them ends the node's session or connection, which must not
/// happen while the others still measure.
async fn run_node<D: Dcs, K: Fn(&D) -> Counters>(
    mut driver: Driver<D, SimPg>,
    clock: SystemClock,
    proxy: TcpProxy,
    counters: Arc<K>,
    settings: LoopBench,
) -> (NodeFigures, Driver<D, SimPg>, TcpProxy) {
    for _ in 0..settings.warmup_loops {
        one_loop(&mut driver, &clock, settings.loop_wait).await;
    }
    let (c0, b0) = (counters(driver.dcs()), proxy.bytes());
    let mut leader = false;
    for _ in 0..settings.measured_loops {
        let report = one_loop(&mut driver, &clock, settings.loop_wait).await;
        leader = report
            .cluster
            .as_ref()
            .ok()
            .and_then(|c| c.leader_name().map(str::to_string))
            == Some(driver.identity().name.clone());
    }
    let (c1, b1) = (counters(driver.dcs()), proxy.bytes());
    let by_op = c1
        .by_op
        .iter()
        .map(|(k, v)| (*k, v - c0.by_op.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let figures = NodeFigures {
        name: driver.identity().name.clone(),
        leader,
        requests: c1.requests - c0.requests,
        round_trips: c1.round_trips - c0.round_trips,
        by_op,
        bytes: (b1.0 - b0.0, b1.1 - b0.1),
    };
    (figures, driver, proxy)
}

fn print_loop_cost(settings: &LoopBench, figures: &[NodeFigures]) {
    println!(
        "== {}: {} nodes, {} HA loops each after {} warm-up loops ({}) ==",
        settings.title,
        settings.nodes,
        settings.measured_loops,
        settings.warmup_loops,
        settings.conditions
    );
    let loops = settings.measured_loops as f64;
    for f in figures {
        let requests = if settings.pipelined {
            format!(" ({:5.2} requests, pipelined)", f.requests as f64 / loops)
        } else {
            String::new()
        };
        let ops = if f.by_op.is_empty() {
            String::new()
        } else {
            let ops: Vec<String> = f
                .by_op
                .iter()
                .map(|(k, v)| format!("{k} {:.2}", *v as f64 / loops))
                .collect();
            format!("   [{}]", ops.join(", "))
        };
        println!(
            "{:<6} {:<8} {:5.2} round trips/loop{}  {:7.0} B/loop sent  {:7.0} B/loop received{}",
            f.name,
            if f.leader { "leader" } else { "replica" },
            f.round_trips as f64 / loops,
            requests,
            f.bytes.0 as f64 / loops,
            f.bytes.1 as f64 / loops,
            ops
        );
    }
    let per_node = loops * figures.len() as f64;
    let round_trips: u64 = figures.iter().map(|f| f.round_trips).sum();
    let requests: u64 = figures.iter().map(|f| f.requests).sum();
    let bytes: u64 = figures.iter().map(|f| f.bytes.0 + f.bytes.1).sum();
    let requests = if settings.pipelined {
        format!(" ({:.2} requests)", requests as f64 / per_node)
    } else {
        String::new()
    };
    println!(
        "mean per node: {:.2} round trips/loop{}, {:.0} bytes/loop (both ways)",
        round_trips as f64 / per_node,
        requests,
        bytes as f64 / per_node
    );
}

/// What [`watch_latency`] runs.
#[derive(Debug, Clone)]
pub struct WatchBench {
    /// First words of the printed heading, e.g. `"zookeeper watch latency"`.
    pub title: String,
    /// Leader changes timed.
    pub changes: usize,
    /// `Some(ttl)`: both clients are nodes like a daemon's, with a lease of that ttl, and the watcher touches its
    /// member key before each change (its loop's keepalive, which keeps a watch-fed cache trusted). `None`: bare
    /// clients.
    pub node_ttl: Option<Duration>,
    /// How long the watch is given to reach the server before the change, so the time measured is the
    /// notification, not the set-up.
    pub settle: Duration,
}

impl Default for WatchBench {
    fn default() -> Self {
        WatchBench {
            title: "watch latency".into(),
            changes: 200,
            node_ttl: None,
            settle: Duration::from_millis(20),
        }
    }
}

/// Median, p99 and max of the watch latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchFigures {
    /// Half the changes were seen faster than this.
    pub median: Duration,
    /// 99 % of the changes were seen at least this fast.
    pub p99: Duration,
    /// The slowest change seen.
    pub max: Duration,
}

/// `flipper` takes and releases the leader key `settings.changes` times while `watcher` watches it (the two on the
/// same cluster scope, named `"flipper"` and `"watcher"`); prints and returns the latencies.
pub async fn watch_latency<D: Dcs + 'static>(
    settings: &WatchBench,
    watcher: D,
    flipper: D,
) -> WatchFigures {
    let watcher = Arc::new(watcher);
    if let Some(ttl) = settings.node_ttl {
        watcher.set_ttl(ttl).await.expect("set_ttl");
        flipper.set_ttl(ttl).await.expect("set_ttl");
    }
    let mut latencies = Vec::with_capacity(settings.changes);
    let mut held = false;
    for _ in 0..settings.changes {
        if settings.node_ttl.is_some() {
            watcher
                .touch_member("watcher", &MemberData::default())
                .await
                .expect("touch_member");
        }
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
        tokio::time::sleep(settings.settle).await;
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
    let figures = WatchFigures {
        median: pct(0.5),
        p99: pct(0.99),
        max: latencies[latencies.len() - 1],
    };
    println!(
        "== {}: leader-key change sent -> watch_leader returned, {} changes ==",
        settings.title, settings.changes
    );
    println!(
        "median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        figures.median.as_secs_f64() * 1e3,
        figures.p99.as_secs_f64() * 1e3,
        figures.max.as_secs_f64() * 1e3
    );
    figures
}

/// The runtime a benchmark's `main` runs on: multi-threaded with two workers (CI's machines have two cores), every
/// driver enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// With `RUST_LOG` set a benchmark logs through `tracing` to stderr (e.g. `RUST_LOG=dcs_consul=info,ha_core=info`
/// shows every decision and DCS event); without it, it prints its figures only.
pub fn log_from_env() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}
