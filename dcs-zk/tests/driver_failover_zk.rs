//! ha-core's `Driver` on a real ZooKeeper: three nodes over a simulated PostgreSQL form a cluster; the leader's HA
//! loop freezes (its process stays up, so ZooKeeper keeps pinging its session); the local lease closes the session
//! after ttl and a replica is promoted, not before the old leader's lease ran out and not much after.

use std::time::Duration;

use dcs_zk::testing::ZkServer;
use dcs_zk::{ZkDcs, ZkSettings};
use ha_core::dcs::DcsClient;
use ha_core::model::GlobalConfig;
use ha_core::testing::DriverCluster;

const TTL_S: f64 = 4.0;
const LOOP_WAIT_S: f64 = 0.5;
const RETRY_TIMEOUT_S: f64 = 1.0;

fn settings(server: &ZkServer, name: &str) -> ZkSettings {
    ZkSettings {
        hosts: server.hosts(),
        namespace: "service".into(),
        scope: "failover".into(),
        name: name.into(),
        ttl: Duration::from_secs_f64(TTL_S),
        retry_timeout: Duration::from_secs_f64(RETRY_TIMEOUT_S),
        auth: Vec::new(),
        acl: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_frozen_leader_is_replaced_after_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = ZkServer::start_or_skip(dir.path()) else {
        return;
    };
    let bootstrap = GlobalConfig {
        ttl: Some(TTL_S),
        loop_wait: Some(LOOP_WAIT_S),
        retry_timeout: Some(RETRY_TIMEOUT_S),
        ..Default::default()
    };
    let mut cluster = DriverCluster::start(3, bootstrap, Duration::from_millis(200), |name| {
        ZkDcs::new(settings(&server, name))
    })
    .await;
    // node1 bootstraps and leads; let the replicas clone and stream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let observer = ZkDcs::ctl(settings(&server, "observer"));
    let snap = observer.load().await.unwrap();
    assert_eq!(snap.leader_name(), Some("node1"), "{snap:?}");
    assert_eq!(snap.members.len(), 3);

    let frozen_at = cluster.freeze(1);
    let promoted = cluster
        .next_promotion("node1", Duration::from_secs(20))
        .await;
    let (who, took) = (promoted.node, promoted.at - frozen_at);
    eprintln!("{who} promoted {took:?} after node1's loop froze (ttl {TTL_S} s)");
    // Not before the frozen leader's lease could have run out (ttl minus its margin, from its last renewal)...
    assert!(
        took >= Duration::from_secs_f64(TTL_S - 1.0 - LOOP_WAIT_S),
        "promoted too early: {took:?}"
    );
    // ...and within ttl + one loop + retry_timeout of it.
    assert!(
        took <= Duration::from_secs_f64(TTL_S + LOOP_WAIT_S + RETRY_TIMEOUT_S + 1.0),
        "promoted too late: {took:?}"
    );
}
