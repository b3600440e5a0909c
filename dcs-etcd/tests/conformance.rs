//! ha-core's DCS conformance suite against a real single-member etcd: the same checks the mock passes.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use common::{raw_client, settings, TTL};
use dcs_etcd::testing::{etcd_or_skip, EtcdServer};
use dcs_etcd::EtcdDcs;
use ha_core::conformance::{self, Harness};
use ha_core::dcs::Dcs;
use ha_core::model::codec::KeyPath;
use ha_core::sync::lock;

/// The suite's view of one etcd server.
struct EtcdHarness {
    server: std::sync::Mutex<EtcdServer>,
    endpoint: String,
    scope: String,
}

#[async_trait]
impl Harness for EtcdHarness {
    async fn client(&self, name: &str) -> Box<dyn Dcs> {
        Box::new(EtcdDcs::new(settings(&[&self.endpoint], &self.scope, name)).unwrap())
    }
    fn ttl(&self) -> Duration {
        TTL
    }
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_raw(&self, key: &str, value: &str) {
        let path = KeyPath::new("service", &self.scope);
        let mut c = raw_client(&self.endpoint).await;
        c.put(path.key(key), value, None).await.unwrap();
    }
    async fn get_raw(&self, key: &str) -> Option<String> {
        let path = KeyPath::new("service", &self.scope);
        let mut c = raw_client(&self.endpoint).await;
        let r = c.get(path.key(key), None).await.unwrap();
        r.kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    }
    async fn stop_server(&self) {
        lock(&self.server).stop();
    }
    async fn start_server(&self) {
        lock(&self.server).start_again().unwrap();
    }
}

fn harness(dir: &std::path::Path, scope: &str) -> EtcdHarness {
    let server = EtcdServer::start(dir).unwrap();
    EtcdHarness {
        endpoint: server.endpoint(),
        server: std::sync::Mutex::new(server),
        scope: scope.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_conformance_suite() {
    if etcd_or_skip("etcd_passes_the_conformance_suite").is_none() {
        return;
    }
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let h = harness(dir.path(), "conformance");
    conformance::run_all(&h).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_is_unreachable_then_recovers() {
    if etcd_or_skip("etcd_outage_is_unreachable_then_recovers").is_none() {
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
