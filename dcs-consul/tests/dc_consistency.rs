//! `consul.dc` and `consul.consistency` reach a real Consul: a node pinned to the server's own datacenter with
//! consistent (or stale) reads takes and sees the lock; one pinned to a datacenter that does not exist gets an
//! error from Consul, so the parameter is really sent, not dropped.

use std::time::Duration;

use dcs_consul::testing::ConsulServer;
use dcs_consul::{Consistency, ConsulDcs, ConsulSettings};
use ha_core::dcs::{Dcs, DcsClient};

fn settings(
    server: &ConsulServer,
    name: &str,
    dc: &str,
    consistency: Option<Consistency>,
) -> ConsulSettings {
    ConsulSettings {
        url: server.url(),
        namespace: "service".into(),
        scope: "dc".into(),
        name: name.into(),
        ttl: Duration::from_secs(20),
        retry_timeout: Duration::from_secs(2),
        token: None,
        tls: Default::default(),
        dc: Some(dc.into()),
        consistency,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_datacenter_and_the_read_consistency_are_sent_to_consul() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = ConsulServer::start_or_skip(dir.path()) else {
        return;
    };
    let node = ConsulDcs::new(settings(
        &server,
        "node1",
        "dc1",
        Some(Consistency::Consistent),
    ))
    .unwrap();
    assert!(
        node.acquire_leader("node1").await.unwrap(),
        "the lock in datacenter dc1"
    );
    let seen = node.load().await.unwrap();
    assert_eq!(seen.leader.map(|l| l.name).as_deref(), Some("node1"));
    let stale = ConsulDcs::ctl(settings(&server, "", "dc1", Some(Consistency::Stale))).unwrap();
    assert_eq!(
        stale
            .load()
            .await
            .unwrap()
            .leader
            .map(|l| l.name)
            .as_deref(),
        Some("node1")
    );

    let elsewhere = ConsulDcs::ctl(settings(&server, "", "nowhere", None)).unwrap();
    let err = elsewhere.load().await.expect_err("no such datacenter");
    assert!(
        err.to_string().contains("datacenter") || err.to_string().contains("500"),
        "{err}"
    );
}
