//! ha-core's DCS conformance suite against a real etcd through its v2 API (Patroni's `etcd:` section), the same
//! checks the v3 client and the mock pass, plus what only v2 shows: the keys sit where Patroni's `etcd.py` puts
//! them, readable by any v2 client.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use common::{settings, TTL};
use dcs_etcd::testing::{etcd_or_skip, EtcdServer};
use dcs_etcd::EtcdV2Dcs;
use ha_core::conformance::{self, Harness};
use ha_core::dcs::{Dcs, DcsClient};
use ha_core::model::MemberData;
use ha_core::sync::lock;

/// The suite's view of one etcd server, through its v2 API.
struct V2Harness {
    server: std::sync::Mutex<EtcdServer>,
    endpoint: String,
    scope: String,
}

impl V2Harness {
    fn url(&self, key: &str) -> String {
        format!("{}/v2/keys/service/{}/{key}", self.endpoint, self.scope)
    }
}

#[async_trait]
impl Harness for V2Harness {
    async fn client(&self, name: &str) -> Box<dyn Dcs> {
        Box::new(EtcdV2Dcs::new(settings(&[&self.endpoint], &self.scope, name)).unwrap())
    }
    fn ttl(&self) -> Duration {
        TTL
    }
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_raw(&self, key: &str, value: &str) {
        let r = reqwest::Client::new()
            .put(self.url(key))
            .form(&[("value", value)])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "raw v2 put: {}", r.status());
    }
    async fn get_raw(&self, key: &str) -> Option<String> {
        let r = reqwest::Client::new()
            .get(self.url(key))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        body.pointer("/node/value")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }
    async fn stop_server(&self) {
        lock(&self.server).stop();
    }
    async fn start_server(&self) {
        lock(&self.server).start_again().unwrap();
    }
}

fn harness(dir: &std::path::Path, scope: &str) -> V2Harness {
    let server = EtcdServer::start(dir).unwrap();
    V2Harness {
        endpoint: server.endpoint(),
        server: std::sync::Mutex::new(server),
        scope: scope.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_v2_passes_the_conformance_suite() {
    if etcd_or_skip("etcd_v2_passes_the_conformance_suite").is_none() {
        return;
    }
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "conformance");
    conformance::run_all(&h).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_v2_outage_is_unreachable_then_recovers() {
    if etcd_or_skip("etcd_v2_outage_is_unreachable_then_recovers").is_none() {
        return;
    }
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "outage");
    conformance::outage_is_unreachable_then_recovers(
        &h,
        common::REQUEST_TIMEOUT + Duration::from_millis(500),
    )
    .await
    .unwrap();
}

/// The leader key is where a v2 tool (vip-manager 1.0, Patroni's own `etcd:` client) looks for it, holding the
/// name, with a TTL; a member key likewise; both gone when released or expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_are_where_patronis_v2_client_puts_them() {
    if etcd_or_skip("the_keys_are_where_patronis_v2_client_puts_them").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "batman");
    let node = h.client("node1").await;
    node.set_ttl(Duration::from_secs(5)).await.unwrap();
    assert!(node.acquire_leader("node1").await.unwrap());
    node.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    let leader: serde_json::Value = serde_json::from_str(
        &reqwest::get(h.url("leader"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        leader.pointer("/node/value").and_then(|v| v.as_str()),
        Some("node1")
    );
    let ttl = leader.pointer("/node/ttl").and_then(|v| v.as_u64());
    assert!(matches!(ttl, Some(1..=5)), "the lock's TTL: {ttl:?}");
    assert!(h.get_raw("members/node1").await.is_some());
    let other = h.client("node2").await;
    assert!(
        !other.acquire_leader("node2").await.unwrap(),
        "a held lock taken"
    );
    assert!(
        !other.renew_leader("node2").await.unwrap(),
        "another's lock renewed"
    );
    node.release_leader("node1").await.unwrap();
    assert_eq!(h.get_raw("leader").await, None);
    assert_eq!(other.load().await.unwrap().leader, None);
}
