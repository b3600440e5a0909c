//! The driver owns its DCS and PostgreSQL control by value; the daemon also needs them beside it (the REST API's
//! writes, slots, reload). These wrappers share one instance through an `Arc`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ha_core::dcs::{Dcs, DcsError, WatchOutcome};
use ha_core::model::{
    Cluster, Failover, GlobalConfig, HistoryEntry, MemberData, Status, SyncState,
};
use ha_core::pg::{ParamChange, PgControl, PgError, PgObservation, StopMode, Upstream};

/// A [`Dcs`] behind an `Arc`. Every `touch_member` reaches the backend: skipping an unchanged value is the
/// backend's call, because the same call is what keeps the member's lease alive (etcd's keepalive, a mock key's
/// ttl). Skipping it here let replicas' leases run out and their member keys flap every ttl.
#[derive(Clone)]
pub struct SharedDcs {
    inner: Arc<dyn Dcs>,
}

impl SharedDcs {
    pub fn new(inner: Arc<dyn Dcs>) -> SharedDcs {
        SharedDcs { inner }
    }
}

#[async_trait]
impl Dcs for SharedDcs {
    async fn load(&self) -> Result<Cluster, DcsError> {
        self.inner.load().await
    }
    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        self.inner.set_ttl(ttl).await
    }
    fn set_retry_timeout(&self, timeout: Duration) {
        self.inner.set_retry_timeout(timeout)
    }
    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        self.inner.initialize_race(value).await
    }
    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.inner.set_initialize(sysid).await
    }
    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        self.inner.cancel_initialization().await
    }
    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.inner.acquire_leader(name).await
    }
    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.inner.renew_leader(name).await
    }
    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        self.inner.release_leader(name).await
    }
    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        self.inner.touch_member(name, data).await
    }
    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.inner.delete_member(name).await
    }
    async fn set_config(
        &self,
        config: &GlobalConfig,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner.set_config(config, version).await
    }
    async fn set_failover(
        &self,
        failover: &Failover,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner.set_failover(failover, version).await
    }
    async fn set_sync_state(&self, sync: &SyncState, version: Option<u64>) -> Result<(), DcsError> {
        self.inner.set_sync_state(sync, version).await
    }
    async fn set_history(
        &self,
        history: &[HistoryEntry],
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner.set_history(history, version).await
    }
    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.inner.write_status(status).await
    }
    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        self.inner.write_failsafe(members).await
    }
    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.inner.delete_cluster().await
    }
    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        self.inner.watch_leader(known_version, timeout).await
    }
}

/// A [`PgControl`] behind an `Arc`.
pub struct SharedPg<P>(pub Arc<P>);

impl<P> Clone for SharedPg<P> {
    fn clone(&self) -> Self {
        SharedPg(self.0.clone())
    }
}

#[async_trait]
impl<P: PgControl> PgControl for SharedPg<P> {
    async fn observe(&self) -> PgObservation {
        self.0.observe().await
    }
    async fn bootstrap(&self) -> Result<String, PgError> {
        self.0.bootstrap().await
    }
    async fn clone_from(&self, source: &Upstream) -> Result<(), PgError> {
        PgControl::clone_from(&*self.0, source).await
    }
    async fn restore_replica(&self) -> Result<(), PgError> {
        PgControl::restore_replica(&*self.0).await
    }
    async fn start_primary(&self) -> Result<(), PgError> {
        self.0.start_primary().await
    }
    async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<(), PgError> {
        self.0.start_replica(upstream).await
    }
    async fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        self.0.stop(mode).await
    }
    async fn restart(&self) -> Result<(), PgError> {
        self.0.restart().await
    }
    async fn reload(&self) -> Result<(), PgError> {
        self.0.reload().await
    }
    async fn promote(&self) -> Result<(), PgError> {
        self.0.promote().await
    }
    async fn follow(&self, upstream: &Upstream) -> Result<(), PgError> {
        self.0.follow(upstream).await
    }
    async fn rewind(&self, source: &Upstream) -> Result<(), PgError> {
        self.0.rewind(source).await
    }
    async fn reinitialize(&self, source: &Upstream) -> Result<(), PgError> {
        self.0.reinitialize(source).await
    }
    async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Result<ParamChange, PgError> {
        self.0.apply_parameters(parameters).await
    }
    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError> {
        self.0.set_synchronous_standby_names(value).await
    }
    async fn apply_slots(&self, plan: &ha_core::pg::SlotPlan) -> Result<(), PgError> {
        self.0.apply_slots(plan).await
    }
    async fn copy_logical_slots(&self, source: &Upstream, names: &[String]) -> Result<(), PgError> {
        self.0.copy_logical_slots(source, names).await
    }
    async fn fence(&self) -> Result<(), PgError> {
        self.0.fence().await
    }
    async fn exited(&self) {
        self.0.exited().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha_core::mock_dcs::MemoryDcs;
    use ha_core::time::ManualClock;

    #[tokio::test]
    async fn an_unchanged_member_key_touched_every_loop_outlives_its_ttl() {
        let clock = ManualClock::new(0);
        let store = MemoryDcs::new(Arc::new(clock.clone()));
        let dcs = SharedDcs::new(Arc::new(store.client("node1")));
        dcs.set_ttl(Duration::from_secs(10)).await.unwrap();
        let data = MemberData {
            conn_url: Some("postgres://127.0.0.1:5432/postgres".into()),
            state: Some("running".into()),
            ..Default::default()
        };
        // Thirty loops of 2 s with the same value: three ttls.
        for _ in 0..30 {
            dcs.load().await.unwrap();
            dcs.touch_member("node1", &data).await.unwrap();
            clock.advance_ms(2_000);
            assert!(
                dcs.load().await.unwrap().member("node1").is_some(),
                "the member key vanished although its node touched it every loop"
            );
        }
    }
}
