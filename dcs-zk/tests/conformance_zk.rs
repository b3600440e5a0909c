//! The DCS conformance suite, a Patroni snapshot, garbage and session expiry against a real ZooKeeper 3.8 server
//! (started per test on a free loopback port). Without ZooKeeper the tests are skipped with a message, unless
//! `CI=true`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dcs_zk::testing::{Restartable, ZkServer};
use dcs_zk::{ZkDcs, ZkSettings};
use ha_core::conformance::Harness;
use ha_core::dcs::{Dcs, DcsClient};
use ha_core::testing::TcpProxy;

const SCOPE: &str = "batman";
const RETRY_TIMEOUT: Duration = Duration::from_secs(2);
const TTL: Duration = Duration::from_secs(4);

struct ZkHarness {
    server: Mutex<ZkServer>,
    hosts: String,
    /// A ctl client for raw writes.
    raw: ZkDcs,
}

fn settings(hosts: &str, name: &str) -> ZkSettings {
    ZkSettings {
        hosts: hosts.to_string(),
        namespace: "service".into(),
        scope: SCOPE.into(),
        name: name.into(),
        ttl: TTL,
        retry_timeout: RETRY_TIMEOUT,
        auth: Vec::new(),
        acl: Vec::new(),
    }
}

#[async_trait]
impl Harness for ZkHarness {
    async fn client(&self, name: &str) -> Box<dyn Dcs> {
        Box::new(ZkDcs::new(settings(&self.hosts, name)))
    }
    fn ttl(&self) -> Duration {
        TTL
    }
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_raw(&self, key: &str, value: &str) {
        self.raw.put_raw(key, value).await.unwrap();
    }
    async fn get_raw(&self, key: &str) -> Option<String> {
        self.raw.get_raw(key).await.unwrap()
    }
    async fn stop_server(&self) {
        self.server.lock().unwrap().stop();
    }
    async fn start_server(&self) {
        self.server.lock().unwrap().start_again().unwrap();
    }
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(1)
    }
}

fn harness(dir: &std::path::Path) -> Option<ZkHarness> {
    let server = ZkServer::start_or_skip(dir)?;
    let hosts = server.hosts();
    Some(ZkHarness {
        raw: ZkDcs::ctl(settings(&hosts, "raw")),
        hosts,
        server: Mutex::new(server),
    })
}

ha_core::conformance_tests! {
    backend: "zookeeper",
    harness: harness,
    outage_bound: RETRY_TIMEOUT + Duration::from_millis(500),
}

/// The crate opens a new session after an expiry without telling anyone; the client must notice, report the lock
/// lost (never renew it under the new session) and re-create its member key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_expired_session_loses_the_lock_and_recreates_the_member() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let zk_port = h.server.lock().unwrap().port();
    let proxy = TcpProxy::start(([127, 0, 0, 1], zk_port).into())
        .await
        .unwrap();
    let a = ZkDcs::new(settings(&format!("127.0.0.1:{}", proxy.port()), "a"));
    a.disable_local_lease_for_tests();
    let data = ha_core::model::MemberData {
        state: Some("running".into()),
        ..Default::default()
    };
    assert!(a.acquire_leader("a").await.unwrap());
    a.touch_member("a", &data).await.unwrap();
    let old = a.session_id().await.unwrap();
    // Partition a for longer than its session timeout, its local lease off so that only the server ends the session.
    proxy.set_cut(true);
    let observer = ZkDcs::ctl(settings(&h.hosts, "observer"));
    let start = Instant::now();
    loop {
        let snap = observer.load().await.unwrap();
        if snap.leader.is_none() {
            break;
        }
        assert!(
            start.elapsed() < TTL * 3,
            "the server never expired a's session"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.set_cut(false);
    // Once back, a learns its lock is gone, under whatever session the crate made meanwhile.
    let start = Instant::now();
    let renewed = loop {
        match a.renew_leader("a").await {
            Ok(r) => break r,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "a never came back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(!renewed, "a renewed a lock its expired session had lost");
    a.touch_member("a", &data).await.unwrap();
    let snap = observer.load().await.unwrap();
    let m = snap.member("a").expect("member key re-created");
    assert_eq!(m.data, data);
    assert!(a.acquire_leader("a").await.unwrap());
    assert_ne!(a.session_id().await, Some(old));
    assert!(a.renew_leader("a").await.unwrap());
}

/// A restarted daemon finds the lock under its own name but an old session (still alive on the server, about to
/// expire): it recreates the key under its new session at once, as Patroni does, instead of leaving the cluster
/// leaderless until the server expires the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_our_own_lock_from_an_earlier_session_is_recreated_on_renew() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let zk_port = h.server.lock().unwrap().port();
    let proxy = TcpProxy::start(([127, 0, 0, 1], zk_port).into())
        .await
        .unwrap();
    let before = ZkDcs::new(settings(&format!("127.0.0.1:{}", proxy.port()), "a"));
    before.disable_local_lease_for_tests();
    assert!(before.acquire_leader("a").await.unwrap());
    let old = before.session_id().await.unwrap();
    // The old process goes silent (SIGKILL): its session lives on the server until the timeout.
    proxy.set_cut(true);
    let cut = Instant::now();
    let after = ZkDcs::new(settings(&h.hosts, "a"));
    after
        .touch_member("a", &ha_core::model::MemberData::default())
        .await
        .unwrap();
    assert!(
        after.renew_leader("a").await.unwrap(),
        "the lock under our own name was not taken over"
    );
    assert!(cut.elapsed() < TTL / 2, "took {:?}", cut.elapsed());
    let new = after.session_id().await.unwrap();
    assert_ne!(new, old);
    let observer = ZkDcs::ctl(settings(&h.hosts, "observer"));
    let leader = observer.load().await.unwrap().leader.expect("a leader");
    assert_eq!(leader.name, "a");
    assert_eq!(leader.session, Some(new.to_string()));
    // Another node's lock is never taken over that way.
    let b = ZkDcs::new(settings(&h.hosts, "b"));
    b.touch_member("b", &ha_core::model::MemberData::default())
        .await
        .unwrap();
    assert!(!b.renew_leader("b").await.unwrap());
    assert!(after.renew_leader("a").await.unwrap());
    drop(before);
}

/// A lock held by a client whose HA loop stopped renewing goes after ttl, although the crate keeps pinging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_unrenewed_lock_is_released_by_the_local_lease() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let a = ZkDcs::new(settings(&h.hosts, "a"));
    let b = ZkDcs::new(settings(&h.hosts, "b"));
    assert!(a.acquire_leader("a").await.unwrap());
    let start = Instant::now();
    while b.load().await.unwrap().leader.is_some() {
        assert!(
            start.elapsed() < TTL + Duration::from_secs(2),
            "lock outlived the ttl"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        start.elapsed() >= TTL - Duration::from_millis(300),
        "lock went before the ttl: {:?}",
        start.elapsed()
    );
    assert!(b.acquire_leader("b").await.unwrap());
    assert!(!a.renew_leader("a").await.unwrap());
}

/// A ttl longer than the session timeout would let the server keep our keys past our own lease: the session is
/// restarted (as Patroni does) and the lock is reported lost, then can be taken again under the new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_ttl_growth_restarts_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let a = ZkDcs::new(settings(&h.hosts, "a"));
    assert!(a.acquire_leader("a").await.unwrap());
    let old = a.session_id().await.unwrap();
    a.set_ttl(TTL * 2).await.unwrap();
    assert!(!a.renew_leader("a").await.unwrap());
    assert!(a.acquire_leader("a").await.unwrap());
    assert!(a.renew_leader("a").await.unwrap());
    assert_ne!(a.session_id().await.unwrap(), old);
    // A shorter ttl keeps the session: the server then holds our keys longer than our lease, never shorter.
    a.set_ttl(TTL).await.unwrap();
    assert!(a.renew_leader("a").await.unwrap());
}

/// A ctl client cannot hold keys, and `acquire_leader` reports a lock we already hold as ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_ctl_client_and_reentrant_acquire() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    assert!(matches!(
        h.raw.acquire_leader("raw").await,
        Err(ha_core::dcs::DcsError::Rejected(_))
    ));
    let a = ZkDcs::new(settings(&h.hosts, "a"));
    let b = ZkDcs::new(settings(&h.hosts, "b"));
    assert!(a.acquire_leader("a").await.unwrap());
    assert!(a.acquire_leader("a").await.unwrap(), "our own lock is ours");
    assert!(!b.acquire_leader("b").await.unwrap());
    assert!(
        !b.acquire_leader("a").await.unwrap(),
        "the name alone does not make it ours"
    );
    a.close().await;
    // The close is queued behind the session's other requests: on a loaded machine it lands a moment later.
    let start = std::time::Instant::now();
    let mut freed = false;
    while !freed && start.elapsed() < Duration::from_millis(2_500) {
        freed = b.acquire_leader("b").await.unwrap();
        if !freed {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(
        freed,
        "closing the session did not free the lock within 2.5 s (before its 4 s ttl could)"
    );
}

/// With a 3-member ensemble, losing one member (the quorum leader, the worst case) costs nothing: the client moves to
/// another member within its session, keeps its lock, and reads and writes go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_ensemble_survives_the_loss_of_one_member() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut ens) = dcs_zk::testing::ZkEnsemble::start_or_skip(dir.path(), 3) else {
        return;
    };
    let mut s = settings(&ens.hosts(), "a");
    s.ttl = Duration::from_secs(10);
    let a = ZkDcs::new(s);
    assert!(a.acquire_leader("a").await.unwrap());
    a.touch_member("a", &Default::default()).await.unwrap();
    let leader = ens.leader_index().expect("a quorum leader");
    ens.members[leader].stop();
    // The two survivors elect a new quorum leader; meanwhile a call may see ConnectionLoss (a renewal can even succeed
    // on a follower that has not noticed yet), so a renewal and a read must both succeed, within a bound, and the lock
    // must never be reported lost on the way.
    let start = Instant::now();
    let snap = loop {
        let renewed = a.renew_leader("a").await;
        assert!(
            !matches!(renewed, Ok(false)),
            "the lock was lost with one member of three down"
        );
        let loaded = a.load().await;
        match (renewed, loaded) {
            (Ok(true), Ok(snap)) => break snap,
            (renewed, loaded) => {
                assert!(
                    start.elapsed() < Duration::from_secs(8),
                    "no recovery: renew {renewed:?}, load {:?}",
                    loaded.map(|_| ())
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    eprintln!(
        "lock renewed and cluster read again {:?} after the quorum leader died",
        start.elapsed()
    );
    assert_eq!(snap.leader_name(), Some("a"));
    assert!(snap.member("a").is_some());
    ens.members[leader].start_again().unwrap();
}

/// One leader watch is armed per connection (not one per call), and it is re-armed after a reconnect: many short
/// watches, a server restart, and a change still wakes the watcher at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zk_leader_watch_is_reused_and_rearmed_after_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let Some(h) = harness(dir.path()) else { return };
    let w = ZkDcs::new(settings(&h.hosts, "w"));
    let a = ZkDcs::new(settings(&h.hosts, "a"));
    let before = w.requests_sent();
    for _ in 0..50 {
        let r = w
            .watch_leader(None, Duration::from_millis(10))
            .await
            .unwrap();
        assert_eq!(r, ha_core::dcs::WatchOutcome::TimedOut);
    }
    // One request per call (the first also connects): the watch itself is not re-sent each time.
    assert!(
        w.requests_sent() - before <= 51,
        "{}",
        w.requests_sent() - before
    );
    h.stop_server().await;
    h.start_server().await;
    let start = Instant::now();
    while w.load().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(15), "no reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let known = w.load().await.unwrap().leader.map(|l| l.version);
    let (outcome, acquired) = tokio::join!(w.watch_leader(known, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = Instant::now();
        (a.acquire_leader("a").await, sent)
    });
    let (acquired, sent) = acquired;
    assert!(acquired.unwrap());
    assert_eq!(outcome.unwrap(), ha_core::dcs::WatchOutcome::LeaderChanged);
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "the watch woke {:?} after the change",
        sent.elapsed()
    );
}
