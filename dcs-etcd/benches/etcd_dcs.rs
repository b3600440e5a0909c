//! What the etcd DCS costs and how fast it reacts, on a real single-member etcd on loopback: ha-core's DCS benchmark
//! ([`ha_core::conformance::bench`]) with an `EtcdDcs` per node.
//!
//! 1. DCS round trips and bytes per HA loop per node at steady state (bytes = TCP payload both ways: gRPC, HTTP/2
//!    framing and pings included), each loop `loop_wait` long as in a real daemon, so the lease keepalives of
//!    replicas come at their real rate.
//! 2. Watch latency: leader-key change sent → another node's `watch_leader` returned. The watcher is a node like a
//!    daemon's, with a lease, so its `watch_leader` is woken by its cluster watch (the watch-fed cache), not by a
//!    Watch RPC of its own.
//!
//! Run: `cargo bench -p dcs-etcd --bench etcd_dcs` (needs `etcd`: Debian's etcd-server).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dcs_etcd::testing::{etcd_or_skip, EtcdServer};
use dcs_etcd::{EtcdDcs, EtcdSettings};
use ha_core::conformance::bench::{self, Counters, LoopBench, LoopWait, WatchBench};

/// `loop_wait` of the benchmark cluster (ttl 10 s, retry_timeout 2 s).
const LOOP_WAIT_S: f64 = 1.0;

fn settings(endpoint: String, scope: &str, name: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new([endpoint], scope, name);
    s.request_timeout = Duration::from_secs(2);
    s
}

fn main() {
    if etcd_or_skip("etcd_dcs benchmark").is_none() {
        return;
    }
    let rt = bench::runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = EtcdServer::start(dir.path()).expect("etcd");
    rt.block_on(async {
        let t = Instant::now();
        let mut loops = LoopBench {
            title: "etcd steady state".into(),
            conditions: format!("ttl 10 s, loop_wait {LOOP_WAIT_S} s"),
            warmup_loops: 15,
            // About a minute.
            measured_loops: 60,
            loop_wait: LoopWait::UntilNextLoop,
            ..Default::default()
        };
        loops.bootstrap.loop_wait = Some(LOOP_WAIT_S);
        bench::ha_loop_cost(
            &loops,
            server.addr(),
            |name: &str, proxy: SocketAddr| {
                EtcdDcs::new(settings(format!("http://{proxy}"), "bench-loop", name))
                    .expect("settings")
            },
            |dcs| Counters {
                requests: dcs.requests(),
                round_trips: dcs.requests(),
                by_op: dcs.requests_by_op(),
            },
        )
        .await;
        let watch = WatchBench {
            title: "etcd watch latency".into(),
            node_ttl: Some(Duration::from_secs(10)),
            ..Default::default()
        };
        let client = |name| {
            EtcdDcs::new(settings(server.endpoint(), "bench-watch", name)).expect("settings")
        };
        bench::watch_latency(&watch, client("watcher"), client("flipper")).await;
        println!("(benchmark took {:.1} s)", t.elapsed().as_secs_f64());
    });
}
