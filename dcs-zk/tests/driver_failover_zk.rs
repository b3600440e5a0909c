//! ha-core's `Driver` on a real ZooKeeper: three nodes over a simulated PostgreSQL form a cluster; the leader's HA
//! loop freezes (its process stays up, so ZooKeeper keeps pinging its session); the local lease closes the session
//! after ttl and a replica is promoted, not before the old leader's lease ran out and not much after
//! (`ha_core::testing::frozen_leader_is_replaced_after_its_lease`, which every backend runs).

use std::time::Duration;

use dcs_zk::testing::ZkServer;
use dcs_zk::{ZkDcs, ZkSettings};
use ha_core::model::GlobalConfig;
use ha_core::testing::frozen_leader_is_replaced_after_its_lease;

const TTL_S: f64 = 4.0;

fn settings(server: &ZkServer, name: &str) -> ZkSettings {
    ZkSettings {
        hosts: server.hosts(),
        namespace: "service".into(),
        scope: "failover".into(),
        name: name.into(),
        ttl: Duration::from_secs_f64(TTL_S),
        retry_timeout: Duration::from_secs(1),
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
    let timing = GlobalConfig {
        ttl: Some(TTL_S),
        loop_wait: Some(0.5),
        retry_timeout: Some(1.0),
        ..Default::default()
    };
    let observer = ZkDcs::ctl(settings(&server, "observer"));
    frozen_leader_is_replaced_after_its_lease(
        timing,
        Duration::from_secs(3),
        Duration::from_secs(1),
        |name| ZkDcs::new(settings(&server, name)),
        &observer,
    )
    .await;
}
