//! The DCS conformance suite, a Patroni snapshot and garbage against a real Consul 1.8 server (started per test on
//! free loopback ports). Without the `consul` binary the tests are skipped with a message, unless `CI=true`.
//!
//! Consul's session TTL floor is 10 s and it destroys a session up to 2 × TTL after its last renewal, so the suite
//! runs with ttl = 20 s (session TTL 10 s): the expiry checks make `run_all` take about 1.5 minutes.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dcs_consul::testing::{ConsulServer, Restartable};
use dcs_consul::{ConsulDcs, ConsulSettings};
use ha_core::conformance::Harness;
use ha_core::dcs::{Dcs, DcsClient};
use ha_core::sync::lock;

const SCOPE: &str = "batman";
const RETRY_TIMEOUT: Duration = Duration::from_secs(2);

struct ConsulHarness {
    server: Mutex<ConsulServer>,
    url: String,
    ttl: Duration,
}

impl ConsulHarness {
    fn settings(&self, name: &str) -> ConsulSettings {
        ConsulSettings {
            url: self.url.clone(),
            namespace: "service".into(),
            scope: SCOPE.into(),
            name: name.into(),
            ttl: self.ttl,
            retry_timeout: RETRY_TIMEOUT,
            token: None,
            tls: Default::default(),
            dc: None,
            consistency: None,
        }
    }
}

#[async_trait]
impl Harness for ConsulHarness {
    async fn client(&self, name: &str) -> Box<dyn Dcs> {
        Box::new(ConsulDcs::new(self.settings(name)).unwrap())
    }
    fn ttl(&self) -> Duration {
        self.ttl
    }
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_raw(&self, key: &str, value: &str) {
        let url = format!("{}/v1/kv/service/{SCOPE}/{key}", self.url);
        let ok: bool = reqwest::Client::new()
            .put(url)
            .body(value.to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(ok, "raw put of {key}");
    }
    async fn get_raw(&self, key: &str) -> Option<String> {
        let url = format!("{}/v1/kv/service/{SCOPE}/{key}?raw", self.url);
        let r = reqwest::get(url).await.unwrap();
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        Some(r.text().await.unwrap())
    }
    async fn stop_server(&self) {
        lock(&self.server).stop();
    }
    async fn start_server(&self) {
        lock(&self.server).start_again().unwrap();
    }
    fn expiry_slack(&self) -> Duration {
        // ttl 20 s → session TTL 10 s, destroyed at most 2 × 10 s = ttl after the last renewal; the slack covers
        // Consul's timer granularity and the raft apply of the deletion.
        Duration::from_secs(3)
    }
}

fn harness(dir: &std::path::Path) -> Option<ConsulHarness> {
    let server = ConsulServer::start_or_skip(dir)?;
    Some(ConsulHarness {
        url: server.url(),
        server: Mutex::new(server),
        ttl: Duration::from_secs(20),
    })
}

ha_core::conformance_tests! {
    backend: "consul",
    harness: harness,
    outage_bound: RETRY_TIMEOUT + Duration::from_millis(500),
}

/// A session that is gone (destroyed behind our back) is replaced, and the keys written with it are re-taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_lost_session_is_replaced_and_lock_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let a = ConsulDcs::new(h.settings("a")).unwrap();
    assert!(a.acquire_leader("a").await.unwrap());
    let old = a.session_id().unwrap();
    let url = format!("{}/v1/session/destroy/{old}", h.url);
    reqwest::Client::new().put(url).send().await.unwrap();
    // Behavior=delete: the leader key went with the session; renew says so and never re-creates it.
    assert!(!a.renew_leader("a").await.unwrap());
    assert_ne!(a.session_id().unwrap(), old);
    assert!(a.load().await.unwrap().leader.is_none());
    // LockDelay 0: the lock can be taken at once after the invalidation.
    assert!(a.acquire_leader("a").await.unwrap());
    assert!(a.renew_leader("a").await.unwrap());
    a.release_leader("a").await.unwrap();
    assert!(a.load().await.unwrap().leader.is_none());
}

/// A session's TTL cannot change: a new ttl brings a new session, and the leader re-takes its key under it
/// (deleting the old one with CAS first, as Patroni does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_ttl_change_moves_the_lock_to_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let a = ConsulDcs::new(h.settings("a")).unwrap();
    assert!(a.acquire_leader("a").await.unwrap());
    let old = a.session_id().unwrap();
    a.set_ttl(Duration::from_secs(40)).await.unwrap();
    assert!(a.renew_leader("a").await.unwrap());
    let new = a.session_id().unwrap();
    assert_ne!(new, old);
    let snap = a.load().await.unwrap();
    assert_eq!(snap.leader.unwrap().session.as_deref(), Some(new.as_str()));
    a.release_leader("a").await.unwrap();
}

/// A ctl client has no session: it reads and writes versioned keys, but cannot hold the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_ctl_client_cannot_hold_keys() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let ctl = ConsulDcs::ctl(h.settings("ctl")).unwrap();
    assert!(matches!(
        ctl.acquire_leader("ctl").await,
        Err(ha_core::dcs::DcsError::Rejected(_))
    ));
    assert!(ctl.initialize_race("").await.unwrap());
    assert!(!ctl.initialize_race("").await.unwrap());
    assert_eq!(ctl.load().await.unwrap().initialize.as_deref(), Some(""));
    assert!(ctl.session_id().is_none());
}
