//! Many clusters on one etcd: N clusters × 3 nodes of real drivers (ha-core's `Driver` with an `EtcdDcs` each, over
//! simulated PostgreSQL) against one real 3-member etcd on this machine, at Patroni's default timings (ttl 30 s,
//! loop_wait 10 s, retry_timeout 10 s). For each N it prints:
//! - the idle cost: etcd requests/s (every RPC the clients send, counted by them), gRPC bytes/s (etcd's own
//!   `etcd_network_client_grpc_{received,sent}_bytes_total`), etcd CPU (its three processes, from /proc), each in
//!   total and per cluster;
//! - leader-watch latency at that load: a leader-key change by one client → another node's `watch_leader` returns;
//! - an etcd leader change (MoveLeader): how many nodes saw a loop fail, how long until none was failing, how many
//!   clusters lost their leader key, the peak request rate in the 20 s after;
//! - a full etcd restart (all three members killed and started again): the same figures, from the restart.
//!
//! Run: `cargo bench -p dcs-etcd --bench scale -- 10 100 1000` (the counts are the arguments; default 10 100).
//! Needs `etcd` (Debian's etcd-server). Not run by the test suite: N = 1000 takes a few minutes and most of the
//! machine.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dcs_etcd::testing::{etcd_or_skip, EtcdCluster};
use dcs_etcd::{EtcdDcs, EtcdSettings};
use ha_core::conformance::bench::{self, WatchBench};
use ha_core::decision::NodeIdentity;
use ha_core::driver::{Driver, DriverSettings, Outcome};
use ha_core::model::GlobalConfig;
use ha_core::sim::SimPgNet;
use ha_core::time::SystemClock;

/// Idle measurement window.
const WINDOW: Duration = Duration::from_secs(60);

/// What one node's loops showed, in ms since the benchmark's start (0: never).
#[derive(Default)]
struct NodeStat {
    last_ok: AtomicU64,
    last_fail: AtomicU64,
}

struct Fleet {
    epoch: Instant,
    clients: Vec<Arc<EtcdDcs>>,
    stats: Vec<Arc<NodeStat>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    replication: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    fn ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    fn requests(&self) -> u64 {
        self.clients.iter().map(|c| c.requests()).sum()
    }
    /// Nodes whose last loop failed.
    fn failing(&self) -> usize {
        self.stats
            .iter()
            .filter(|s| s.last_fail.load(Ordering::Relaxed) > s.last_ok.load(Ordering::Relaxed))
            .count()
    }
    /// Nodes that saw a failed loop after `t` (ms since the epoch).
    fn failed_since(&self, t: u64) -> usize {
        self.stats
            .iter()
            .filter(|s| s.last_fail.load(Ordering::Relaxed) >= t)
            .count()
    }
}

fn settings(endpoints: &[String], scope: &str, name: &str) -> EtcdSettings {
    EtcdSettings::new(endpoints.to_vec(), scope, name)
}

/// Starts `n` clusters of three nodes.
async fn start_fleet(endpoints: &[String], n: usize, epoch: Instant) -> Fleet {
    let bootstrap = GlobalConfig {
        ttl: Some(30.0),
        loop_wait: Some(10.0),
        retry_timeout: Some(10.0),
        ..Default::default()
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut fleet = Fleet {
        epoch,
        clients: Vec::new(),
        stats: Vec::new(),
        stop,
        tasks: Vec::new(),
        replication: Vec::new(),
    };
    for c in 0..n {
        let scope = format!("scale{c}");
        let pgs = SimPgNet::new();
        fleet
            .replication
            .push(pgs.replicate_in_background(Duration::from_millis(500)));
        for i in 1..=3 {
            let name = format!("c{c}n{i}");
            let dcs = Arc::new(EtcdDcs::new(settings(endpoints, &scope, &name)).expect("settings"));
            let identity = NodeIdentity {
                name: name.clone(),
                conn_url: format!("postgres://{name}:5432/postgres"),
                ..Default::default()
            };
            let driver = Driver::new(
                dcs.clone(),
                pgs.server(&name),
                Arc::new(SystemClock::new()),
                DriverSettings {
                    identity,
                    bootstrap_config: bootstrap.clone(),
                    ..Default::default()
                },
            );
            let stat = Arc::new(NodeStat::default());
            let mut reports = driver.subscribe();
            let s = stat.clone();
            fleet.tasks.push(tokio::spawn(async move {
                while reports.changed().await.is_ok() {
                    let failed = reports.borrow_and_update().as_ref().map(|r| {
                        r.cluster.is_err()
                            || r.executed
                                .iter()
                                .any(|(_, o)| matches!(o, Outcome::Failed(_)))
                    });
                    let now = epoch.elapsed().as_millis() as u64;
                    match failed {
                        Some(true) => s.last_fail.store(now, Ordering::Relaxed),
                        Some(false) => s.last_ok.store(now, Ordering::Relaxed),
                        None => {}
                    }
                }
            }));
            let mut stop_rx = stop_rx.clone();
            fleet.tasks.push(tokio::spawn(async move {
                driver
                    .run(async move {
                        let _ = stop_rx.wait_for(|s| *s).await;
                    })
                    .await;
            }));
            fleet.clients.push(dcs);
            fleet.stats.push(stat);
        }
        // Spread the starts a little, as real nodes start at different moments.
        if c % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    fleet
}

/// How many of the `n` clusters have a leader key (one range over the namespace).
async fn clusters_with_leader(client: &mut etcd_client::Client) -> usize {
    let opts = etcd_client::GetOptions::new()
        .with_prefix()
        .with_keys_only();
    match client.get("/service/", Some(opts)).await {
        Ok(r) => r
            .kvs()
            .iter()
            .filter(|kv| {
                kv.key_str()
                    .is_ok_and(|k| k.ends_with("/leader") && !k.contains("scale-watch"))
            })
            .count(),
        Err(_) => 0,
    }
}

/// CPU seconds etcd's processes used so far.
fn etcd_cpu_s(etcd: &EtcdCluster) -> f64 {
    (0..etcd.len())
        .filter_map(|i| etcd.pid(i))
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let rest = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .collect::<Vec<_>>();
            // utime and stime are fields 14 and 15: 12th and 13th after the state.
            Some(
                (rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?) as f64
                    / 100.0,
            )
        })
        .sum()
}

/// gRPC bytes etcd received and sent so far, from each member's /metrics.
fn etcd_grpc_bytes(etcd: &EtcdCluster) -> u64 {
    (0..etcd.len())
        .map(|i| {
            let Ok(mut s) = std::net::TcpStream::connect(etcd.addr(i)) else {
                return 0;
            };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            body.lines()
                .filter(|l| {
                    l.starts_with("etcd_network_client_grpc_received_bytes_total ")
                        || l.starts_with("etcd_network_client_grpc_sent_bytes_total ")
                })
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .sum()
}

/// After an event at `t0`: the nodes that saw a failed loop, how long until none was failing (the last moment one
/// still was), the fewest clusters with a leader seen, and the peak requests per second, over `span`.
async fn watch_recovery(
    fleet: &Fleet,
    probe: &mut etcd_client::Client,
    t0: u64,
    span: Duration,
) -> (usize, f64, usize, u64) {
    let start = Instant::now();
    let mut last_failing_ms = 0;
    let mut min_leaders = usize::MAX;
    let mut peak = 0;
    let mut prev = (Instant::now(), fleet.requests());
    while start.elapsed() < span {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if fleet.failing() > 0 {
            last_failing_ms = fleet.ms().saturating_sub(t0);
        }
        min_leaders = min_leaders.min(clusters_with_leader(probe).await);
        if prev.0.elapsed() >= Duration::from_secs(1) {
            let r = fleet.requests();
            peak = peak.max(((r - prev.1) as f64 / prev.0.elapsed().as_secs_f64()) as u64);
            prev = (Instant::now(), r);
        }
    }
    (
        fleet.failed_since(t0),
        last_failing_ms as f64 / 1000.0,
        min_leaders,
        peak,
    )
}

async fn run(etcd: &mut EtcdCluster, n: usize) {
    let endpoints = etcd.endpoints();
    let mut probe = etcd_client::Client::connect(endpoints.clone(), None)
        .await
        .expect("probe client");
    let epoch = Instant::now();
    let fleet = start_fleet(&endpoints, n, epoch).await;
    let started = Instant::now();
    while clusters_with_leader(&mut probe).await < n {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "not every cluster got a leader"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let bootstrap_s = started.elapsed().as_secs_f64();
    // Two loops for every member to have cloned, streamed and settled.
    tokio::time::sleep(Duration::from_secs(25)).await;

    let (r0, b0, c0, t0) = (
        fleet.requests(),
        etcd_grpc_bytes(etcd),
        etcd_cpu_s(etcd),
        Instant::now(),
    );
    tokio::time::sleep(WINDOW).await;
    let secs = t0.elapsed().as_secs_f64();
    let req_s = (fleet.requests() - r0) as f64 / secs;
    let bytes_s = (etcd_grpc_bytes(etcd) - b0) as f64 / secs;
    let cpu = (etcd_cpu_s(etcd) - c0) / secs * 100.0;
    let nf = n as f64;
    println!(
        "scale N={n} ({} nodes, all led after {bootstrap_s:.1} s): idle {req_s:.1} req/s ({:.3} per cluster), \
         {:.1} kB/s gRPC ({:.0} B/s per cluster), etcd CPU {cpu:.1} % of one core ({:.3} % per cluster)",
        3 * n,
        req_s / nf,
        bytes_s / 1000.0,
        bytes_s / nf,
        cpu / nf
    );

    // Leader-watch latency at this load, on a scope of its own.
    let w = bench::watch_latency(
        &WatchBench {
            title: format!("  watch latency at N={n}"),
            changes: 50,
            node_ttl: Some(Duration::from_secs(30)),
            ..Default::default()
        },
        EtcdDcs::new(settings(&endpoints, "scale-watch", "watcher")).expect("settings"),
        EtcdDcs::new(settings(&endpoints, "scale-watch", "flipper")).expect("settings"),
    )
    .await;
    let _ = w;

    // An etcd leader change.
    let status = probe.status().await.expect("status");
    let leader_id = status.leader();
    let members = probe.member_list().await.expect("members");
    let target = members
        .members()
        .iter()
        .find(|m| m.id() != leader_id)
        .expect("another member")
        .id();
    let leader_url = members
        .members()
        .iter()
        .find(|m| m.id() == leader_id)
        .and_then(|m| m.client_urls().first().cloned())
        .expect("leader url");
    let mut to_leader = etcd_client::Client::connect([leader_url], None)
        .await
        .expect("leader client");
    let t_move = fleet.ms();
    to_leader.move_leader(target).await.expect("move_leader");
    let (failed, clear_s, min_leaders, peak) =
        watch_recovery(&fleet, &mut probe, t_move, Duration::from_secs(25)).await;
    println!(
        "  etcd leader change: {failed} of {} nodes saw a loop fail, none failing {clear_s:.1} s after, \
         clusters with a leader never below {min_leaders} of {n}, peak {peak} req/s",
        3 * n
    );

    // A full etcd restart: every member killed, then started again.
    let t_kill = fleet.ms();
    let killed = Instant::now();
    etcd.stop_all();
    etcd.start_all().expect("etcd back");
    let back_s = killed.elapsed().as_secs_f64();
    let mut probe = etcd_client::Client::connect(endpoints.clone(), None)
        .await
        .expect("probe client");
    let (failed, clear_s, min_leaders, peak) =
        watch_recovery(&fleet, &mut probe, t_kill, Duration::from_secs(40)).await;
    println!(
        "  full etcd restart (down {back_s:.1} s): {failed} of {} nodes saw a loop fail, none failing {clear_s:.1} s \
         after the kill, clusters with a leader never below {min_leaders} of {n} after it was back, peak {peak} req/s",
        3 * n
    );

    let _ = fleet.stop.send(true);
    for t in fleet.tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    for r in fleet.replication {
        r.abort();
    }
    // Leave no cluster behind for the next N.
    let _ = probe
        .delete(
            "/service/",
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await;
}

fn main() {
    if etcd_or_skip("scale benchmark").is_none() {
        return;
    }
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let counts = if counts.is_empty() {
        vec![10, 100]
    } else {
        counts
    };
    let rt = bench::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut etcd = EtcdCluster::start(dir.path(), 3).expect("etcd");
    rt.block_on(async {
        for n in counts {
            run(&mut etcd, n).await;
        }
    });
}
