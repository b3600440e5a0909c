//! A product's own failover test, written as a product team would: its nodes built with the same `NodeBuilder` as
//! in production, but over ha-core's mock DCS and simulated PostgreSQL on a virtual clock, so a whole failover
//! runs in milliseconds and every run is the same. The product's hook keeps its own router (which node takes
//! writes); the test checks the router follows the cluster through a machine crash and a graceful stop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ha_core::driver::{Driver, NodeRole};
use ha_core::mock_dcs::{MemoryDcs, MemoryDcsClient};
use ha_core::node::NodeBuilder;
use ha_core::sim::{now_or_never, SimPg, SimPgNet, SimRun};
use ha_core::time::{Clock, ManualClock};

/// The product's own state: what each node last told it.
type Router = Arc<Mutex<BTreeMap<String, NodeRole>>>;

struct ProductCluster {
    clock: ManualClock,
    dcs: MemoryDcs,
    pgs: SimPgNet,
    nodes: BTreeMap<String, Driver<MemoryDcsClient, SimPg>>,
    router: Router,
}

impl ProductCluster {
    fn new(names: &[&str]) -> ProductCluster {
        let clock = ManualClock::new(1_767_225_600_000);
        let dcs = MemoryDcs::new(Arc::new(clock.clone()));
        let pgs = SimPgNet::new();
        let router: Router = Arc::default();
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let seen = router.clone();
                let me = name.to_string();
                let node = NodeBuilder::new(*name, dcs.client(name), pgs.server(name))
                    .conn_url(format!("postgres://10.0.0.{}:5432/postgres", i + 1))
                    .timing(
                        Duration::from_secs(5),
                        Duration::from_secs(1),
                        Duration::from_secs(2),
                    )
                    .on_role_change(move |_old, new| {
                        seen.lock().unwrap().insert(me.clone(), new);
                    })
                    .clock(Arc::new(clock.clone()))
                    .build()
                    .expect("valid node");
                (name.to_string(), node)
            })
            .collect();
        ProductCluster {
            clock,
            dcs,
            pgs,
            nodes,
            router,
        }
    }

    /// Runs every node's loop for `secs` seconds of virtual time, 100 ms per step.
    fn run_for(&mut self, secs: u64) {
        let mut due: BTreeMap<String, _> = self
            .nodes
            .keys()
            .map(|n| (n.clone(), self.clock.now()))
            .collect();
        for _ in 0..secs * 10 {
            for (name, node) in self.nodes.iter_mut() {
                // The real driver also wakes when the leader key changes; at 100 ms steps a leaderless cluster
                // is looked at every step.
                if due[name] <= self.clock.now() || self.dcs.leader().is_none() {
                    due.insert(name.clone(), now_or_never(node.cycle()).next_wake);
                }
            }
            self.pgs.replicate_step();
            self.clock.advance_ms(100);
        }
    }

    /// The nodes the product routes writes to.
    fn writable(&self) -> Vec<String> {
        let r = self.router.lock().unwrap();
        r.iter()
            .filter(|(_, role)| **role == NodeRole::Primary)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[test]
fn the_products_router_follows_a_machine_crash_and_a_graceful_stop() {
    let mut cluster = ProductCluster::new(&["shop1", "shop2", "shop3"]);
    cluster.run_for(10);
    let first = cluster.writable();
    assert_eq!(
        first.len(),
        1,
        "one node takes writes after the bootstrap: {:?}",
        cluster.router
    );
    let first = first[0].clone();
    assert_eq!(cluster.dcs.leader().unwrap().0, first);
    assert_eq!(
        cluster
            .router
            .lock()
            .unwrap()
            .values()
            .filter(|r| **r == NodeRole::Replica)
            .count(),
        2
    );

    // The primary's machine dies: no hook runs there; the others take over after the lease (ttl 5 s).
    cluster.nodes.remove(&first);
    cluster.pgs.with(&first, |s| s.run = SimRun::Crashed);
    cluster.router.lock().unwrap().remove(&first);
    cluster.run_for(10);
    let second = cluster.writable();
    assert_eq!(
        second.len(),
        1,
        "one new primary within 10 s of the crash: {:?}",
        cluster.router
    );
    let second = second[0].clone();
    assert_ne!(second, first);
    assert!(cluster.pgs.state(&second).unwrap().accepts_writes());

    // A graceful stop of the new primary: its hook hears `→ Stopped`, the last replica takes over at once.
    let mut node = cluster.nodes.remove(&second).unwrap();
    now_or_never(node.shutdown());
    assert_eq!(cluster.router.lock().unwrap()[&second], NodeRole::Stopped);
    cluster.run_for(3);
    let third = cluster.writable();
    assert_eq!(
        third.len(),
        1,
        "the last node leads within 3 s of the stop: {:?}",
        cluster.router
    );
    assert!(third[0] != first && third[0] != second);
}
