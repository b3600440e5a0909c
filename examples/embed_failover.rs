//! Embeds ha-core with the mock DCS and simulated PostgreSQL: three nodes form a cluster, the primary's machine
//! dies, and a replica takes over. Run: `cargo run -p hactl-examples --bin embed_failover`.

use std::sync::Arc;

use ha_core::decision::NodeIdentity;
use ha_core::driver::{Driver, DriverSettings};
use ha_core::mock_dcs::{MemoryDcs, MemoryDcsClient};
use ha_core::model::GlobalConfig;
use ha_core::sim::{now_or_never, SimPg, SimPgNet, SimRun};
use ha_core::time::{Clock, ManualClock};

fn main() {
    let clock = ManualClock::new(1_767_225_600_000);
    let dcs = MemoryDcs::new(Arc::new(clock.clone()));
    let pgs = SimPgNet::new();
    // ttl 5 s: hactl honours short leases safely (Patroni refuses ttl < 20 s).
    let bootstrap = GlobalConfig {
        ttl: Some(5.0),
        loop_wait: Some(1.0),
        retry_timeout: Some(2.0),
        ..Default::default()
    };
    let mut nodes: Vec<Option<Driver<MemoryDcsClient, SimPg>>> = (1..=3)
        .map(|i| {
            let name = format!("node{i}");
            let identity = NodeIdentity {
                name: name.clone(),
                conn_url: format!("postgres://10.0.0.{i}:5432/postgres"),
                api_url: format!("http://10.0.0.{i}:8008/patroni"),
                ..Default::default()
            };
            let settings = DriverSettings {
                identity,
                bootstrap_config: bootstrap.clone(),
                ..Default::default()
            };
            Some(Driver::new(
                dcs.client(&name),
                pgs.server(&name),
                Arc::new(clock.clone()),
                settings,
            ))
        })
        .collect();

    let mut crashed_at = None;
    let mut next_wake = vec![clock.now(); nodes.len()];
    for tick in 0..200u64 {
        let t = clock.now().0 as f64 / 1000.0;
        for (i, node) in nodes.iter_mut().enumerate() {
            let Some(node) = node else { continue };
            if next_wake[i] > clock.now() {
                continue;
            }
            // The driver says when its next loop is due; a real daemon also wakes when the leader key changes.
            let report = now_or_never(node.cycle());
            next_wake[i] = report.next_wake;
            if report.executed.iter().any(|(a, _)| a.touches_postgres()) {
                println!(
                    "{t:6.1}s {:<6} {}",
                    node.identity().name,
                    report.decision.reason
                );
            }
        }
        if crashed_at.is_some() {
            // The watch: wake everyone when the leader key changes.
            if dcs.leader().is_none() {
                next_wake.iter_mut().for_each(|w| *w = clock.now());
            }
        }
        pgs.replicate_step();
        if tick == 100 {
            let (leader, _) = dcs.leader().expect("a leader after 10 s");
            let i: usize = leader.trim_start_matches("node").parse::<usize>().unwrap() - 1;
            println!("{t:6.1}s ------ the machine of {leader} dies (daemon and PostgreSQL) ------");
            nodes[i] = None;
            pgs.with(&leader, |s| s.run = SimRun::Crashed);
            crashed_at = Some((leader, clock.now()));
        }
        if let (Some((old, at)), Some((new, _))) = (&crashed_at, dcs.leader()) {
            if &new != old && pgs.state(&new).map_or(false, |s| s.accepts_writes()) {
                println!(
                    "{t:6.1}s ------ {new} is the new primary, {:.1} s after the crash ------",
                    clock.now().since(*at) as f64 / 1000.0
                );
                return;
            }
        }
        clock.advance_ms(100);
    }
    eprintln!("no failover happened");
    std::process::exit(1);
}
