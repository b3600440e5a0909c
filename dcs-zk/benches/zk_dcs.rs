//! What the ZooKeeper DCS costs and how fast it reacts, on a real standalone ZooKeeper 3.8 on loopback: ha-core's
//! DCS benchmark ([`ha_core::conformance::bench`]) with a `ZkDcs` per node.
//!
//! 1. DCS round trips and bytes per HA loop per node at steady state (bytes = TCP payload both ways: jute framing and
//!    pings included). Requests are counted one by one, but ZooKeeper pipelines them on one connection: `load`
//!    sends its reads in three waves.
//! 2. Watch latency: leader-key change sent → another node's `watch_leader` (an `exists` watch) returned.
//!
//! Run: `cargo bench -p dcs-zk --bench zk_dcs` (needs ZooKeeper: Debian's `zookeeper`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dcs_zk::testing::ZkServer;
use dcs_zk::{ZkDcs, ZkSettings};
use ha_core::conformance::bench::{self, Counters, LoopBench, WatchBench};

fn settings(hosts: String, scope: &str, name: &str) -> ZkSettings {
    ZkSettings {
        hosts,
        namespace: "service".into(),
        scope: scope.into(),
        name: name.into(),
        ttl: Duration::from_secs(10),
        retry_timeout: Duration::from_secs(2),
        auth: Vec::new(),
        acl: Vec::new(),
    }
}

fn main() {
    // RUST_LOG=dcs_zk=info,ha_core=info shows every decision and DCS event.
    bench::log_from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(server) = ZkServer::start_or_skip(dir.path()) else {
        return;
    };
    let rt = bench::runtime();
    rt.block_on(async {
        let t = Instant::now();
        let loops = LoopBench {
            title: "zookeeper steady state".into(),
            pipelined: true,
            ..Default::default()
        };
        bench::ha_loop_cost(
            &loops,
            SocketAddr::from(([127, 0, 0, 1], server.port())),
            |name, proxy| ZkDcs::new(settings(proxy.to_string(), "bench-loop", name)),
            |dcs| Counters {
                requests: dcs.requests_sent(),
                round_trips: dcs.round_trips(),
                by_op: Default::default(),
            },
        )
        .await;
        let watch = WatchBench {
            title: "zookeeper watch latency".into(),
            ..Default::default()
        };
        bench::watch_latency(
            &watch,
            ZkDcs::new(settings(server.hosts(), "bench-watch", "watcher")),
            ZkDcs::new(settings(server.hosts(), "bench-watch", "flipper")),
        )
        .await;
        println!("(benchmark took {:.1} s)", t.elapsed().as_secs_f64());
    });
}
