//! The DCS conformance suite against the mock: the same checks etcd, Consul and ZooKeeper pass.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ha_core::conformance::{self, Harness};
use ha_core::dcs::Dcs;
use ha_core::mock_dcs::MemoryDcs;
use ha_core::time::ManualClock;

struct Mock {
    clock: ManualClock,
    dcs: MemoryDcs,
}

#[async_trait]
impl Harness for Mock {
    async fn client(&self, name: &str) -> Box<dyn Dcs> {
        Box::new(self.dcs.client(name))
    }
    fn ttl(&self) -> Duration {
        Duration::from_secs(5)
    }
    async fn pass(&self, d: Duration) {
        self.clock.advance_ms(d.as_millis() as u64);
    }
    async fn put_raw(&self, key: &str, value: &str) {
        self.dcs.put_raw(key, value);
    }
    async fn get_raw(&self, key: &str) -> Option<String> {
        self.dcs.get_raw(key)
    }
    async fn stop_server(&self) {
        self.dcs.set_unavailable(true);
    }
    async fn start_server(&self) {
        self.dcs.set_unavailable(false);
    }
    fn expiry_slack(&self) -> Duration {
        Duration::from_millis(1)
    }
}

fn mock() -> Mock {
    let clock = ManualClock::new(0);
    Mock {
        dcs: MemoryDcs::new(Arc::new(clock.clone())),
        clock,
    }
}

#[tokio::test]
async fn mock_dcs_passes_the_conformance_suite() {
    let h = mock();
    conformance::run_all(&h).await.unwrap();
}

#[tokio::test]
async fn mock_dcs_outage_is_unreachable_then_recovers() {
    let h = mock();
    conformance::outage_is_unreachable_then_recovers(&h, Duration::from_millis(100))
        .await
        .unwrap();
}

#[tokio::test]
async fn mock_dcs_partition_cuts_one_node_only() {
    let h = mock();
    let a = h.client("a").await;
    let b = h.client("b").await;
    h.dcs.set_partitioned("a", true);
    assert!(a.load().await.unwrap_err().is_unreachable());
    assert!(b.acquire_leader("b").await.unwrap());
    h.dcs.set_partitioned("a", false);
    assert_eq!(a.load().await.unwrap().leader_name(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn mock_dcs_latency_delays_every_call() {
    let h = mock();
    let a = h.client("a").await;
    h.dcs.set_latency(Duration::from_secs(3));
    let start = tokio::time::Instant::now();
    a.load().await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(3));
}
