//! The watch-fed cache of a node on a real etcd: an idle node reads without ranges, sees other clients' writes
//! and its own at once, does not hide an outage, and resyncs after one. Counted with `requests_by_op`, which counts
//! every RPC attempt the client sends.

mod common;

use std::time::{Duration, Instant};

use common::{raw_client, settings, REQUEST_TIMEOUT};
use dcs_etcd::testing::{etcd_or_skip, EtcdServer, Restartable};
use dcs_etcd::EtcdDcs;
use ha_core::dcs::{Dcs, DcsClient, DcsError, WatchOutcome};
use ha_core::model::codec::{to_json, KeyPath};
use ha_core::model::{Failover, GlobalConfig, MemberData};

/// A ttl long enough that the cache stays trusted through a test step (`ttl - retry_timeout` = 8 s after the
/// last keepalive).
const TTL: Duration = Duration::from_secs(10);

/// How long a change by another client may take to reach the cache on loopback, with slack for a loaded machine.
const PROPAGATION_MAX: Duration = Duration::from_secs(2);

fn server(test: &str) -> Option<(tempfile::TempDir, EtcdServer)> {
    etcd_or_skip(test)?;
    let dir = tempfile::tempdir().unwrap();
    let s = EtcdServer::start(dir.path()).unwrap();
    Some((dir, s))
}

fn op_count(dcs: &EtcdDcs, op: &str) -> u64 {
    dcs.requests_by_op().get(op).copied().unwrap_or(0)
}

/// A node as the driver leaves it after its first loops: a lease, its member key, one load (a range that starts
/// the watch), and the watch confirmed by etcd (a second load answered without a range).
async fn idle_node(ep: &str, scope: &str, name: &str) -> EtcdDcs {
    let dcs = EtcdDcs::new(settings(&[ep], scope, name)).unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    dcs.touch_member(name, &MemberData::default())
        .await
        .unwrap();
    wait_live(&dcs).await;
    dcs
}

/// Loads until one is answered without a range: the watch is live.
async fn wait_live(dcs: &EtcdDcs) {
    let start = Instant::now();
    loop {
        let ranges = op_count(dcs, "load");
        dcs.load().await.unwrap();
        if op_count(dcs, "load") == ranges {
            return;
        }
        assert!(
            start.elapsed() < PROPAGATION_MAX,
            "the watch never went live"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Loads until `seen` holds for the cluster, or panics after `PROPAGATION_MAX`.
async fn load_until(dcs: &EtcdDcs, what: &str, seen: impl Fn(&ha_core::model::Cluster) -> bool) {
    let start = Instant::now();
    loop {
        if let Ok(c) = dcs.load().await {
            if seen(&c) {
                return;
            }
        }
        assert!(
            start.elapsed() < PROPAGATION_MAX,
            "{what}: not seen in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_sees_another_clients_write_without_a_range() {
    let Some((_dir, server)) = server("an_idle_node_sees_another_clients_write_without_a_range")
    else {
        return;
    };
    let ep = server.endpoint();
    let node = idle_node(&ep, "idle", "node1").await;
    let before = node.requests_by_op();

    // patronictl pauses the cluster behind the node's back.
    let path = KeyPath::new("service", "idle");
    raw_client(&ep)
        .await
        .put(path.key("config"), r#"{"pause":true}"#, None)
        .await
        .unwrap();
    load_until(&node, "the paused config", |c| {
        c.global_config().pause == Some(true)
    })
    .await;

    // Ten loads of an idle loop, and a watch_leader that times out: not one request.
    for _ in 0..10 {
        node.load().await.unwrap();
    }
    let known = node.load().await.unwrap().leader.map(|l| l.version);
    assert_eq!(
        node.watch_leader(known, Duration::from_millis(200))
            .await
            .unwrap(),
        WatchOutcome::TimedOut
    );
    assert_eq!(
        node.requests_by_op(),
        before,
        "the cache answered everything"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_its_own_writes_at_once() {
    let Some((_dir, server)) = server("a_node_reads_its_own_writes_at_once") else {
        return;
    };
    let ep = server.endpoint();
    let node = idle_node(&ep, "own", "node1").await;
    let ranges = op_count(&node, "load");

    assert!(node.acquire_leader("node1").await.unwrap());
    assert_eq!(node.load().await.unwrap().leader_name(), Some("node1"));
    let cfg = GlobalConfig {
        pause: Some(true),
        ..Default::default()
    };
    node.set_config(&cfg, None).await.unwrap();
    assert_eq!(node.load().await.unwrap().global_config().pause, Some(true));
    let data = MemberData {
        api_url: Some("http://node1:8008/patroni".into()),
        ..Default::default()
    };
    node.touch_member("node1", &data).await.unwrap();
    let c = node.load().await.unwrap();
    assert_eq!(c.member("node1").unwrap().data.api_url, data.api_url);
    node.release_leader("node1").await.unwrap();
    assert_eq!(node.load().await.unwrap().leader, None);
    assert_eq!(
        op_count(&node, "load"),
        ranges,
        "every load after a write was answered by the cache"
    );

    // A lost compare-and-set says etcd is ahead: the next load shows what beat us, whatever the cache holds.
    let c = node.load().await.unwrap();
    let v = c.config.unwrap().version;
    let other = EtcdDcs::ctl(settings(&[&ep], "own", "")).unwrap();
    other
        .set_config(&GlobalConfig::default(), Some(v))
        .await
        .unwrap();
    assert!(matches!(
        node.set_config(&cfg, Some(v)).await,
        Err(DcsError::Conflict(_))
    ));
    assert_eq!(node.load().await.unwrap().global_config().pause, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_etcd_is_unreachable_within_the_deadline_and_the_cache_resyncs_after_it() {
    let Some((_dir, mut server)) =
        server("a_killed_etcd_is_unreachable_within_the_deadline_and_the_cache_resyncs_after_it")
    else {
        return;
    };
    let ep = server.endpoint();
    let node = idle_node(&ep, "kill", "node1").await;
    assert!(node.acquire_leader("node1").await.unwrap());

    // The killed server closes the watch's connection: the cache stops answering and the load reads through.
    server.stop();
    let start = Instant::now();
    loop {
        match node.load().await {
            Err(DcsError::Unreachable(_)) => break,
            Err(e) => panic!("{e}"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
        assert!(
            start.elapsed() < REQUEST_TIMEOUT,
            "the cache hid the outage"
        );
    }
    assert!(
        start.elapsed() < REQUEST_TIMEOUT + Duration::from_millis(500),
        "took {:?}",
        start.elapsed()
    );
    assert!(matches!(
        node.watch_leader(None, Duration::from_secs(5)).await,
        Err(DcsError::Unreachable(_))
    ));

    // Back: the first load reads from etcd and restarts the watch; a switchover request written while the node
    // was not following arrives through the new watch.
    server.start_again().unwrap();
    assert!(node.renew_leader("node1").await.unwrap());
    load_until(&node, "the restarted etcd", |c| {
        c.leader_name() == Some("node1")
    })
    .await;
    wait_live(&node).await;
    let path = KeyPath::new("service", "kill");
    let switchover = Failover {
        leader: Some("node1".into()),
        member: Some("node2".into()),
        ..Default::default()
    };
    let known = node.load().await.unwrap().leader.map(|l| l.version);
    let ranges = op_count(&node, "load");
    raw_client(&ep)
        .await
        .put(path.key("failover"), to_json(&switchover), None)
        .await
        .unwrap();
    load_until(&node, "the switchover", |c| c.pending_failover().is_some()).await;
    assert_eq!(op_count(&node, "load"), ranges, "the watch is live again");

    // And the leader key deleted by someone else wakes watch_leader from the cache.
    let watches = op_count(&node, "watch_leader");
    let (w, _) = tokio::join!(node.watch_leader(known, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        raw_client(&ep)
            .await
            .delete(path.key("leader"), None)
            .await
            .unwrap();
    });
    assert_eq!(w.unwrap(), WatchOutcome::LeaderChanged);
    assert_eq!(
        op_count(&node, "watch_leader"),
        watches,
        "no Watch RPC of its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctl_client_reads_with_ranges_and_starts_no_watch() {
    let Some((_dir, server)) = server("a_ctl_client_reads_with_ranges_and_starts_no_watch") else {
        return;
    };
    let mut s = settings(&[server.endpoint()], "ctl-cache", "");
    s.name.clear();
    let ctl = EtcdDcs::ctl(s).unwrap();
    ctl.load().await.unwrap();
    ctl.load().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(op_count(&ctl, "load"), 2);
    assert_eq!(op_count(&ctl, "watch"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_keepalives_stopped_reads_through_after_ttl_minus_retry_timeout() {
    let Some((_dir, server)) =
        server("a_node_whose_keepalives_stopped_reads_through_after_ttl_minus_retry_timeout")
    else {
        return;
    };
    let ep = server.endpoint();
    // ttl 4 s, retry_timeout 2 s: the cache is trusted for 2 s after a keepalive.
    let node = EtcdDcs::new(settings(&[&ep], "trust", "node1")).unwrap();
    node.set_ttl(Duration::from_secs(4)).await.unwrap();
    node.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    node.load().await.unwrap();
    wait_live(&node).await;

    // A loop that stalls (no renew, no touch_member) past the bound: its next load asks etcd.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    let ranges = op_count(&node, "load");
    node.load().await.unwrap();
    assert_eq!(op_count(&node, "load"), ranges + 1, "read through to etcd");

    // The next keepalive makes the cache trusted again.
    node.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    node.load().await.unwrap();
    assert_eq!(op_count(&node, "load"), ranges + 1, "answered by the cache");
}

/// #11 hole 6: the driver counts the lock from the acquire's send time, with a margin of 1 s at short ttls; a lease
/// last refreshed up to 500 ms before would let etcd expire the key half a margin early. An acquire always refreshes
/// the lease first, however fresh it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_refreshes_the_lease_even_right_after_a_member_write() {
    let Some((_dir, etcd)) =
        server("an_acquire_refreshes_the_lease_even_right_after_a_member_write")
    else {
        return;
    };
    let dcs = idle_node(&etcd.endpoint(), "acquire-fresh", "node1").await;
    let keepalives = op_count(&dcs, "lease_keepalive");
    dcs.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    assert!(dcs.acquire_leader("node1").await.unwrap());
    assert!(
        op_count(&dcs, "lease_keepalive") > keepalives,
        "the acquire reused a lease refreshed before it was sent"
    );
}
