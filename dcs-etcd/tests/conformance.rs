//! ha-core's DCS conformance suite against a real single-member etcd, through its v3 API (`etcd3:`) and its v2
//! API (Patroni's `etcd:`): the same checks the mock passes. For v2, also what only v2 shows: the keys sit where
//! Patroni's `etcd.py` puts them, readable by any v2 client.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use common::{raw_client, settings, TTL};
use dcs_etcd::testing::{etcd_or_skip, EtcdServer, Restartable};
use dcs_etcd::{EtcdDcs, EtcdV2Dcs};
use ha_core::conformance::Harness;
use ha_core::dcs::Dcs;
use ha_core::model::codec::KeyPath;
use ha_core::model::MemberData;
use ha_core::sync::lock;

/// Which of etcd's APIs the clients and the raw accessors use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    V3,
    V2,
}

/// The suite's view of one etcd server.
struct EtcdHarness {
    server: std::sync::Mutex<EtcdServer>,
    endpoint: String,
    scope: String,
    api: Api,
}

impl EtcdHarness {
    /// A key's URL in the v2 store.
    fn v2_url(&self, key: &str) -> String {
        format!("{}/v2/keys/service/{}/{key}", self.endpoint, self.scope)
    }
}

#[async_trait]
impl Harness for EtcdHarness {
    async fn client(&self, name: &str) -> Box<dyn Dcs> {
        let s = settings(&[&self.endpoint], &self.scope, name);
        match self.api {
            Api::V3 => Box::new(EtcdDcs::new(s).unwrap()),
            Api::V2 => Box::new(EtcdV2Dcs::new(s).unwrap()),
        }
    }
    fn ttl(&self) -> Duration {
        TTL
    }
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_raw(&self, key: &str, value: &str) {
        match self.api {
            Api::V3 => {
                let path = KeyPath::new("service", &self.scope);
                let mut c = raw_client(&self.endpoint).await;
                c.put(path.key(key), value, None).await.unwrap();
            }
            Api::V2 => {
                let r = reqwest::Client::new()
                    .put(self.v2_url(key))
                    .form(&[("value", value)])
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "raw v2 put: {}", r.status());
            }
        }
    }
    async fn get_raw(&self, key: &str) -> Option<String> {
        match self.api {
            Api::V3 => {
                let path = KeyPath::new("service", &self.scope);
                let mut c = raw_client(&self.endpoint).await;
                let r = c.get(path.key(key), None).await.unwrap();
                r.kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            }
            Api::V2 => {
                let r = reqwest::get(self.v2_url(key)).await.unwrap();
                let body: serde_json::Value =
                    serde_json::from_str(&r.text().await.unwrap()).unwrap();
                body.pointer("/node/value")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            }
        }
    }
    async fn stop_server(&self) {
        lock(&self.server).stop();
    }
    async fn start_server(&self) {
        lock(&self.server).start_again().unwrap();
    }
}

/// A fresh single-member etcd in `dir`, clients on `api`; `None` (skipped) when etcd is not installed outside CI.
fn harness(dir: &std::path::Path, scope: &str, api: Api) -> Option<EtcdHarness> {
    etcd_or_skip("the etcd conformance suite")?;
    common::init_tracing();
    let server = EtcdServer::start(dir).unwrap();
    Some(EtcdHarness {
        endpoint: server.endpoint(),
        server: std::sync::Mutex::new(server),
        scope: scope.to_string(),
        api,
    })
}

/// Through the v3 API (`etcd3:`).
mod v3 {
    use super::*;

    fn harness(dir: &std::path::Path) -> Option<EtcdHarness> {
        super::harness(dir, "conformance", Api::V3)
    }

    ha_core::conformance_tests! {
        backend: "etcd v3",
        harness: harness,
        outage_bound: common::REQUEST_TIMEOUT + Duration::from_millis(500),
    }
}

/// Through the v2 API (Patroni's `etcd:`).
mod v2 {
    use super::*;

    fn harness(dir: &std::path::Path) -> Option<EtcdHarness> {
        super::harness(dir, "conformance", Api::V2)
    }

    ha_core::conformance_tests! {
        backend: "etcd v2",
        harness: harness,
        outage_bound: common::REQUEST_TIMEOUT + Duration::from_millis(500),
    }
}

/// v2: the leader key is where a v2 tool (vip-manager 1.0, Patroni's own `etcd:` client) looks for it, holding the
/// name, with a TTL; a member key likewise; the lock is neither taken nor renewed by another node, and is gone once
/// released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_keys_are_where_patronis_v2_client_puts_them() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path(), "batman", Api::V2) else {
        return;
    };
    let node = h.client("node1").await;
    node.set_ttl(Duration::from_secs(5)).await.unwrap();
    assert!(node.acquire_leader("node1").await.unwrap());
    node.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    let leader: serde_json::Value = serde_json::from_str(
        &reqwest::get(h.v2_url("leader"))
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
