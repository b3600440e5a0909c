//! Failure semantics on a real etcd: silence (a black-holed network) is `Unreachable` within the deadline, a lost
//! lease is replaced, a ttl change moves the keys to a new lease, a ctl client holds no lease, the watch sees a
//! change made between the load and the watch but not this node's own writes, and a node cut off across a
//! compaction resyncs.

mod common;

use std::time::{Duration, Instant};

use common::{raw_client, settings, REQUEST_TIMEOUT, TTL};
use dcs_etcd::testing::{etcd_or_skip, free_port, EtcdServer, Restartable};
use dcs_etcd::EtcdDcs;
use ha_core::dcs::{Dcs, DcsClient, DcsError, WatchOutcome};
use ha_core::model::codec::KeyPath;
use ha_core::model::{Failover, GlobalConfig, MemberData};
use ha_core::testing::TcpProxy;

/// The deadline plus scheduling slack on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_millis(2_500);

fn server(test: &str) -> Option<(tempfile::TempDir, EtcdServer)> {
    etcd_or_skip(test)?;
    let dir = tempfile::tempdir().unwrap();
    let s = EtcdServer::start(dir.path()).unwrap();
    Some((dir, s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_etcd_is_unreachable_within_the_deadline_then_recovers() {
    let Some((_dir, server)) =
        server("blackholed_etcd_is_unreachable_within_the_deadline_then_recovers")
    else {
        return;
    };
    let proxy = TcpProxy::start(server.addr()).await.unwrap();
    let dcs = EtcdDcs::new(settings(
        &[format!("http://{}", proxy.addr())],
        "hole",
        "node1",
    ))
    .unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    assert!(dcs.acquire_leader("node1").await.unwrap());
    let known = dcs.load().await.unwrap().leader.map(|l| l.version);

    proxy.set_blackhole(true);
    // Silence fails no stream: the watch-fed cache cannot tell it from a quiet cluster until a request fails. The
    // loop's keepalive (renew) is that request; from then on every call reads through and meets the silence.
    for (what, r) in [
        ("renew", {
            let t = Instant::now();
            (dcs.renew_leader("node1").await.map(|_| ()), t.elapsed())
        }),
        ("load", {
            let t = Instant::now();
            (dcs.load().await.map(|_| ()), t.elapsed())
        }),
        ("watch", {
            let t = Instant::now();
            // The cached revision makes the watch start at once: it is the stream creation that meets silence.
            (
                dcs.watch_leader(known, Duration::from_secs(10))
                    .await
                    .map(|_| ()),
                t.elapsed(),
            )
        }),
    ] {
        let (res, took) = r;
        assert!(
            matches!(res, Err(DcsError::Unreachable(_))),
            "{what}: {res:?}"
        );
        assert!(took <= DEADLINE, "{what} took {took:?}");
    }
    proxy.set_blackhole(false);
    // Three deadlines of silence outlived the 2 s lease: the lock is gone, and renew says so instead of
    // re-creating it; the node can compete again at once.
    assert_eq!(dcs.load().await.unwrap().leader, None);
    assert!(!dcs.renew_leader("node1").await.unwrap());
    assert!(dcs.acquire_leader("node1").await.unwrap());
    assert!(dcs.renew_leader("node1").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_first_endpoint_costs_a_share_of_the_deadline_not_all_of_it() {
    let Some((_dir, server)) =
        server("a_silent_first_endpoint_costs_a_share_of_the_deadline_not_all_of_it")
    else {
        return;
    };
    let proxy = TcpProxy::start(server.addr()).await.unwrap();
    proxy.set_blackhole(true);
    let dcs = EtcdDcs::new(settings(
        &[format!("http://{}", proxy.addr()), server.endpoint()],
        "share",
        "node1",
    ))
    .unwrap();
    let t = Instant::now();
    dcs.load().await.unwrap();
    assert!(t.elapsed() < REQUEST_TIMEOUT, "took {:?}", t.elapsed());
    // The answering endpoint stays current: the next call is one quick round trip.
    let t = Instant::now();
    dcs.load().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unreachable_and_construction_needs_no_server() {
    let dcs = EtcdDcs::new(settings(
        &[format!("127.0.0.1:{}", free_port())],
        "none",
        "node1",
    ))
    .unwrap();
    let t = Instant::now();
    let r = dcs.acquire_leader("node1").await;
    assert!(matches!(r, Err(DcsError::Unreachable(_))), "{r:?}");
    assert!(t.elapsed() <= DEADLINE, "took {:?}", t.elapsed());
    let r = dcs.watch_leader(None, Duration::from_secs(5)).await;
    assert!(matches!(r, Err(DcsError::Unreachable(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_means_a_lost_lock_then_a_new_lease() {
    let Some((_dir, server)) = server("a_lost_lease_means_a_lost_lock_then_a_new_lease") else {
        return;
    };
    let ep = server.endpoint();
    let dcs = EtcdDcs::new(settings(&[&ep], "lost", "node1")).unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    assert!(dcs.acquire_leader("node1").await.unwrap());
    dcs.load().await.unwrap();
    let old = dcs.lease_id().await.unwrap();
    // The lease disappears behind our back (as if it expired while this node was frozen).
    raw_client(&ep).await.lease_revoke(old).await.unwrap();
    assert!(
        !dcs.renew_leader("node1").await.unwrap(),
        "a renew must not re-create a lost lock"
    );
    let new = dcs.lease_id().await.unwrap();
    assert_ne!(new, old, "a new lease was granted");
    assert!(dcs.load().await.unwrap().leader.is_none());
    assert!(dcs.acquire_leader("node1").await.unwrap());
    let c = dcs.load().await.unwrap();
    assert_eq!(c.leader.unwrap().session, Some(new.to_string()));

    // A put with a lease etcd no longer knows: the member write grants a new one and retries once.
    raw_client(&ep).await.lease_revoke(new).await.unwrap();
    dcs.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    let newer = dcs.lease_id().await.unwrap();
    assert_ne!(newer, new);
    let c = dcs.load().await.unwrap();
    assert!(c.member("node1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_change_moves_leader_and_member_to_a_new_lease() {
    let Some((_dir, server)) = server("a_ttl_change_moves_leader_and_member_to_a_new_lease") else {
        return;
    };
    let ep = server.endpoint();
    let dcs = EtcdDcs::new(settings(&[&ep], "ttl", "node1")).unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    assert!(dcs.acquire_leader("node1").await.unwrap());
    dcs.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    let old = dcs.lease_id().await.unwrap();

    dcs.set_ttl(Duration::from_secs(7)).await.unwrap();
    dcs.load().await.unwrap();
    assert!(dcs.renew_leader("node1").await.unwrap());
    dcs.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    let new = dcs.lease_id().await.unwrap();
    assert_ne!(new, old);
    let ttl = raw_client(&ep)
        .await
        .lease_time_to_live(new, None)
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 7);
    let c = dcs.load().await.unwrap();
    assert_eq!(c.leader.unwrap().session, Some(new.to_string()));
    // The old lease, no longer kept alive, expires without taking the keys along.
    tokio::time::sleep(TTL + Duration::from_secs(2)).await;
    let c = dcs.load().await.unwrap();
    assert_eq!(c.leader_name(), Some("node1"));
    assert!(c.member("node1").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_mode_reads_and_compare_and_sets_but_holds_no_lease() {
    let Some((_dir, server)) = server("ctl_mode_reads_and_compare_and_sets_but_holds_no_lease")
    else {
        return;
    };
    let ep = server.endpoint();
    let node = EtcdDcs::new(settings(&[&ep], "ctl", "node1")).unwrap();
    node.set_ttl(TTL).await.unwrap();
    assert!(node.acquire_leader("node1").await.unwrap());
    node.set_config(&GlobalConfig::default(), None)
        .await
        .unwrap();

    let mut s = settings(&[&ep], "ctl", "");
    s.name.clear();
    let ctl = EtcdDcs::ctl(s).unwrap();
    let c = ctl.load().await.unwrap();
    assert_eq!(c.leader_name(), Some("node1"));
    let switchover = Failover {
        leader: Some("node1".into()),
        member: Some("node2".into()),
        ..Default::default()
    };
    ctl.set_failover(&switchover, None).await.unwrap();
    let cfg = GlobalConfig {
        pause: Some(true),
        ..Default::default()
    };
    let v = c.config.unwrap().version;
    ctl.set_config(&cfg, Some(v)).await.unwrap();
    assert!(matches!(
        ctl.set_config(&cfg, Some(v)).await,
        Err(DcsError::Conflict(_))
    ));
    for r in [
        ctl.acquire_leader("ctl").await.map(|_| ()),
        ctl.renew_leader("ctl").await.map(|_| ()),
        ctl.touch_member("ctl", &MemberData::default()).await,
    ] {
        assert!(matches!(r, Err(DcsError::Rejected(_))), "{r:?}");
    }
    assert_eq!(ctl.lease_id().await, None);
    assert_eq!(
        node.load().await.unwrap().pending_failover().unwrap().value,
        switchover
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_sees_changes_since_the_load_but_not_our_own_writes() {
    let Some((_dir, server)) =
        server("the_watch_sees_changes_since_the_load_but_not_our_own_writes")
    else {
        return;
    };
    let ep = server.endpoint();
    let a = EtcdDcs::new(settings(&[&ep], "watch", "a")).unwrap();
    let b = EtcdDcs::new(settings(&[&ep], "watch", "b")).unwrap();
    a.set_ttl(TTL).await.unwrap();
    b.set_ttl(TTL).await.unwrap();

    // A change between b's load and b's watch wakes b at once.
    let known = b.load().await.unwrap().leader.map(|l| l.version);
    assert!(a.acquire_leader("a").await.unwrap());
    let t = Instant::now();
    assert_eq!(
        b.watch_leader(known, Duration::from_secs(5)).await.unwrap(),
        WatchOutcome::LeaderChanged
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t.elapsed()
    );
    // The same through the slow path: a known version that is not the last load's.
    assert_eq!(
        b.watch_leader(Some(1), Duration::from_secs(5))
            .await
            .unwrap(),
        WatchOutcome::LeaderChanged
    );

    // a's own release and re-acquire after its load do not wake a's watch.
    let known = a.load().await.unwrap().leader.map(|l| l.version);
    a.release_leader("a").await.unwrap();
    assert!(a.acquire_leader("a").await.unwrap());
    assert_eq!(
        a.watch_leader(known, Duration::from_millis(300))
            .await
            .unwrap(),
        WatchOutcome::TimedOut
    );
    // But b's write does.
    let known = a.load().await.unwrap().leader.map(|l| l.version);
    let (w, _) = tokio::join!(a.watch_leader(known, Duration::from_secs(5)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let path = KeyPath::new("service", "watch");
        raw_client(&ep)
            .await
            .delete(path.key("leader"), None)
            .await
            .unwrap();
    });
    assert_eq!(w.unwrap(), WatchOutcome::LeaderChanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_etcd_keeps_the_lock_and_the_client_reconnects() {
    let Some((_dir, mut server)) =
        server("a_restarted_etcd_keeps_the_lock_and_the_client_reconnects")
    else {
        return;
    };
    let dcs = EtcdDcs::new(settings(&[server.endpoint()], "restart", "node1")).unwrap();
    dcs.set_ttl(Duration::from_secs(5)).await.unwrap();
    assert!(dcs.acquire_leader("node1").await.unwrap());
    let lease = dcs.lease_id().await;
    server.stop();
    assert!(matches!(
        dcs.renew_leader("node1").await,
        Err(DcsError::Unreachable(_))
    ));
    server.start_again().unwrap();
    // etcd restores its leases on restart (with a fresh ttl): the same lease, the same lock, no new grant.
    assert!(dcs.renew_leader("node1").await.unwrap());
    assert_eq!(dcs.lease_id().await, lease);
    assert_eq!(dcs.load().await.unwrap().leader_name(), Some("node1"));
}

#[test]
fn servers_and_clusters_can_share_a_directory() {
    if etcd_or_skip("servers_and_clusters_can_share_a_directory").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = EtcdServer::start(dir.path()).unwrap();
    let b = EtcdServer::start(dir.path()).unwrap();
    assert_ne!(a.endpoint(), b.endpoint());
    let pid = a.pid().unwrap();
    drop(a);
    // Killed by PID on drop: /proc has no such process any more (it was reaped).
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(b.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn username_and_password_reach_an_etcd_with_auth_and_a_wrong_one_is_rejected() {
    let Some((_dir, server)) =
        server("username_and_password_reach_an_etcd_with_auth_and_a_wrong_one_is_rejected")
    else {
        return;
    };
    let ep = server.endpoint();
    let mut root = raw_client(&ep).await;
    root.user_add("root", "rootpw", None).await.unwrap();
    root.user_grant_role("root", "root").await.unwrap();
    root.auth_enable().await.unwrap();

    let mut s = settings(&[&ep], "auth", "node1");
    s.username = Some("root".into());
    s.password = Some("rootpw".into());
    let dcs = EtcdDcs::new(s.clone()).unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    assert!(dcs.acquire_leader("node1").await.unwrap());
    assert!(dcs.renew_leader("node1").await.unwrap());
    let known = dcs.load().await.unwrap().leader.map(|l| l.version);
    assert_eq!(
        dcs.watch_leader(known, Duration::from_millis(200))
            .await
            .unwrap(),
        WatchOutcome::TimedOut
    );

    s.password = Some("wrong".into());
    let t = Instant::now();
    let r = EtcdDcs::new(s).unwrap().load().await;
    assert!(matches!(r, Err(DcsError::Rejected(_))), "{r:?}");
    assert!(
        t.elapsed() < REQUEST_TIMEOUT,
        "a refusal is not retried until the deadline"
    );
    // Without credentials: refused too, not mistaken for an outage.
    let r = EtcdDcs::new(settings(&[&ep], "auth", "node2"))
        .unwrap()
        .load()
        .await;
    assert!(matches!(r, Err(DcsError::Rejected(_))), "{r:?}");
}

/// #17: a node cut off while others write and etcd compacts past every revision it saw comes back with the
/// cluster as it is now, not a stale or broken cache: its watch cannot resume from a compacted revision, so it
/// re-lists and watches from the new one, and sees the next change through the watch again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_across_a_compaction_resyncs_and_watches_again() {
    let Some((_dir, server)) =
        server("a_node_cut_off_across_a_compaction_resyncs_and_watches_again")
    else {
        return;
    };
    let proxy = TcpProxy::start(server.addr()).await.unwrap();
    let node = EtcdDcs::new(settings(
        &[format!("http://{}", proxy.addr())],
        "compact",
        "node1",
    ))
    .unwrap();
    let other = EtcdDcs::new(settings(&[server.endpoint()], "compact", "node2")).unwrap();
    node.set_ttl(Duration::from_secs(30)).await.unwrap();
    other.set_ttl(Duration::from_secs(30)).await.unwrap();
    node.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    assert!(other.acquire_leader("node2").await.unwrap());
    assert_eq!(node.load().await.unwrap().leader_name(), Some("node2"));

    // Cut off: meanwhile the leader changes hands, many revisions pass and etcd compacts them all.
    proxy.set_cut(true);
    other.release_leader("node2").await.unwrap();
    let mut raw = raw_client(&server.endpoint()).await;
    for i in 0..50 {
        raw.put("/service/compact/noise", format!("{i}"), None)
            .await
            .unwrap();
    }
    assert!(other.acquire_leader("node2").await.unwrap());
    let head = raw
        .get("/service/compact/noise", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    raw.compact(
        head,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    )
    .await
    .unwrap();
    proxy.set_cut(false);

    // Back: the first reads may fail while the cut connection is replaced; then the node sees the cluster as it
    // is, whatever its cache held before the cut.
    let start = Instant::now();
    let snap = loop {
        match node.load().await {
            Ok(c) if c.leader.as_ref().is_some_and(|l| l.version > 0) => break c,
            r => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "no fresh snapshot: {r:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let now = other.load().await.unwrap();
    assert_eq!(
        snap.leader, now.leader,
        "the node's snapshot after the compaction is not the cluster's"
    );
    // And it watches again: a change made now wakes its watch_leader.
    let known = snap.leader.as_ref().map(|l| l.version);
    let waker = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        other.release_leader("node2").await.unwrap();
        other
    });
    let woke = node
        .watch_leader(known, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(woke, WatchOutcome::LeaderChanged);
    let _ = waker.await;
    assert_eq!(node.load().await.unwrap().leader, None);
}
