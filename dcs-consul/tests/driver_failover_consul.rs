//! ha-core's `Driver` on a real Consul: three nodes over a simulated PostgreSQL form a cluster; the leader's HA loop
//! freezes (no more session renewals); Consul destroys its session 2 × session TTL = ttl after the last renewal and
//! a replica is promoted, not before the old leader's lease ran out and within the documented bound.

use std::time::Duration;

use dcs_consul::testing::ConsulServer;
use dcs_consul::{ConsulDcs, ConsulSettings};
use ha_core::dcs::DcsClient;
use ha_core::model::GlobalConfig;
use ha_core::testing::DriverCluster;

/// 20 s: a 10 s session, Consul's minimum (see the crate doc).
const TTL_S: f64 = 20.0;
const LOOP_WAIT_S: f64 = 1.0;
const RETRY_TIMEOUT_S: f64 = 2.0;
/// The driver's lease margin: max(1 s, ttl / 10).
const MARGIN_S: f64 = 2.0;

fn settings(server: &ConsulServer, name: &str) -> ConsulSettings {
    ConsulSettings {
        url: server.url(),
        namespace: "service".into(),
        scope: "failover".into(),
        name: name.into(),
        ttl: Duration::from_secs_f64(TTL_S),
        retry_timeout: Duration::from_secs_f64(RETRY_TIMEOUT_S),
        token: None,
        tls: Default::default(),
        dc: None,
        consistency: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_frozen_leader_is_replaced_after_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = ConsulServer::start_or_skip(dir.path()) else {
        return;
    };
    let bootstrap = GlobalConfig {
        ttl: Some(TTL_S),
        loop_wait: Some(LOOP_WAIT_S),
        retry_timeout: Some(RETRY_TIMEOUT_S),
        ..Default::default()
    };
    let mut cluster = DriverCluster::start(3, bootstrap, Duration::from_millis(200), |name| {
        ConsulDcs::new(settings(&server, name)).unwrap()
    })
    .await;
    // node1 bootstraps and leads; let the replicas clone and stream.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let observer = ConsulDcs::ctl(settings(&server, "observer")).unwrap();
    let snap = observer.load().await.unwrap();
    assert_eq!(snap.leader_name(), Some("node1"), "{snap:?}");
    assert_eq!(snap.members.len(), 3);

    let frozen_at = cluster.freeze(1);
    let promoted = cluster
        .next_promotion("node1", Duration::from_secs(40))
        .await;
    let (who, took) = (promoted.node, promoted.at - frozen_at);
    eprintln!("{who} promoted {took:?} after node1's loop froze (ttl {TTL_S} s)");
    // Not before the frozen leader's lease could have run out (ttl minus its margin, from its last renewal)...
    assert!(
        took >= Duration::from_secs_f64(TTL_S - MARGIN_S - LOOP_WAIT_S),
        "promoted too early: {took:?}"
    );
    // ...and within ttl + one loop + retry_timeout of it.
    assert!(
        took <= Duration::from_secs_f64(TTL_S + LOOP_WAIT_S + RETRY_TIMEOUT_S + 2.0),
        "promoted too late: {took:?}"
    );
}
