//! What the Consul DCS costs and how fast it reacts, on a real single-server Consul 1.8 on loopback: ha-core's DCS
//! benchmark ([`ha_core::conformance::bench`]) with a `ConsulDcs` per node.
//!
//! 1. DCS round trips and bytes per HA loop per node at steady state (bytes = TCP payload both ways: HTTP headers
//!    included).
//! 2. Watch latency: leader-key change sent → another node's `watch_leader` (a blocking query) returned.
//!
//! Run: `cargo bench -p dcs-consul --bench consul_dcs` (needs `consul`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dcs_consul::testing::ConsulServer;
use dcs_consul::{ConsulDcs, ConsulSettings};
use ha_core::conformance::bench::{self, Counters, LoopBench, WatchBench};
use ha_core::model::GlobalConfig;

fn settings(url: String, scope: &str, name: &str) -> ConsulSettings {
    ConsulSettings {
        url,
        namespace: "service".into(),
        scope: scope.into(),
        name: name.into(),
        // hactl's ttl 20 s → a 10 s session, Consul's minimum.
        ttl: Duration::from_secs(20),
        retry_timeout: Duration::from_secs(2),
        token: None,
        tls: Default::default(),
        dc: None,
        consistency: None,
    }
}

fn main() {
    // RUST_LOG=dcs_consul=info,ha_core=info shows every decision and DCS event.
    bench::log_from_env();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(server) = ConsulServer::start_or_skip(dir.path()) else {
        return;
    };
    let rt = bench::runtime();
    rt.block_on(async {
        let t = Instant::now();
        let loops = LoopBench {
            title: "consul steady state".into(),
            conditions: "ttl 20 s, session TTL 10 s".into(),
            bootstrap: GlobalConfig {
                ttl: Some(20.0),
                loop_wait: Some(1.0),
                retry_timeout: Some(2.0),
                ..Default::default()
            },
            ..Default::default()
        };
        bench::ha_loop_cost(
            &loops,
            SocketAddr::from(([127, 0, 0, 1], server.http_port())),
            |name, proxy| {
                ConsulDcs::new(settings(format!("http://{proxy}"), "bench-loop", name))
                    .expect("client")
            },
            |dcs| Counters {
                requests: dcs.requests_sent(),
                round_trips: dcs.requests_sent(),
                by_op: Default::default(),
            },
        )
        .await;
        let watch = WatchBench {
            title: "consul watch latency".into(),
            ..Default::default()
        };
        let client =
            |name| ConsulDcs::new(settings(server.url(), "bench-watch", name)).expect("client");
        bench::watch_latency(&watch, client("watcher"), client("flipper")).await;
        println!("(benchmark took {:.1} s)", t.elapsed().as_secs_f64());
    });
}
