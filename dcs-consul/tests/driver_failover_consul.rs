//! ha-core's `Driver` on a real Consul: three nodes over a simulated PostgreSQL form a cluster; the leader's HA loop
//! freezes (no more session renewals); Consul destroys its session 2 × session TTL = ttl after the last renewal and
//! a replica is promoted, not before the old leader's lease ran out and within the documented bound
//! (`ha_core::testing::frozen_leader_is_replaced_after_its_lease`, which every backend runs).

use std::time::Duration;

use dcs_consul::testing::ConsulServer;
use dcs_consul::{ConsulDcs, ConsulSettings};
use ha_core::model::GlobalConfig;
use ha_core::testing::frozen_leader_is_replaced_after_its_lease;

/// 20 s: a 10 s session, Consul's minimum (see the crate doc).
const TTL_S: f64 = 20.0;

fn settings(server: &ConsulServer, name: &str) -> ConsulSettings {
    ConsulSettings {
        url: server.url(),
        namespace: "service".into(),
        scope: "failover".into(),
        name: name.into(),
        ttl: Duration::from_secs_f64(TTL_S),
        retry_timeout: Duration::from_secs(2),
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
    let timing = GlobalConfig {
        ttl: Some(TTL_S),
        loop_wait: Some(1.0),
        retry_timeout: Some(2.0),
        ..Default::default()
    };
    let observer = ConsulDcs::ctl(settings(&server, "observer")).unwrap();
    frozen_leader_is_replaced_after_its_lease(
        timing,
        Duration::from_secs(5),
        Duration::from_secs(2),
        |name| ConsulDcs::new(settings(&server, name)).unwrap(),
        &observer,
    )
    .await;
}
