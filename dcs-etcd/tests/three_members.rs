//! A 3-member etcd cluster: one member stopped (any of them, the etcd leader included) and hactl keeps loading and
//! renewing; garbage in every key never panics.

mod common;

use std::time::{Duration, Instant};

use common::{raw_client, settings, REQUEST_TIMEOUT, TTL};
use dcs_etcd::testing::{etcd_or_skip, EtcdCluster};
use dcs_etcd::EtcdDcs;
use ha_core::dcs::{Dcs, DcsClient, DcsError, WatchOutcome};
use ha_core::model::codec::KeyPath;
use ha_core::model::{GlobalConfig, MemberData};

/// Which member is the etcd raft leader, asking each member not in `down` for its status; an election still going
/// on is waited for (up to 10 s).
async fn raft_leader(cluster: &EtcdCluster, down: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for i in (0..cluster.len()).filter(|i| !down.contains(i)) {
            let mut c = raw_client(&cluster.endpoint(i)).await;
            if let Ok(s) = c.status().await {
                if s.leader() == s.header().map_or(0, |h| h.member_id()) {
                    return i;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no etcd member reports itself as leader"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HA loop's worth of calls as the leader: load, renew, touch the member key. All must succeed in time.
async fn leader_loop(dcs: &EtcdDcs, name: &str) -> Result<(), DcsError> {
    let start = Instant::now();
    let c = dcs.load().await?;
    assert_eq!(c.leader_name(), Some(name), "{c:?}");
    assert!(dcs.renew_leader(name).await?, "renew lost the lock");
    let data = MemberData {
        state: Some("running".into()),
        role: Some("primary".into()),
        ..Default::default()
    };
    dcs.touch_member(name, &data).await?;
    assert!(
        start.elapsed() < 3 * REQUEST_TIMEOUT,
        "a loop took {:?}",
        start.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_down_loads_and_renewals_still_work() {
    if etcd_or_skip("one_member_down_loads_and_renewals_still_work").is_none() {
        return;
    }
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = EtcdCluster::start(dir.path(), 3).unwrap();
    // The client's first endpoint is a follower, so stopping it costs no election (that case comes below): the
    // first member started is often the raft leader, and an election can outlast a 2 s request on a loaded machine.
    let first = (raft_leader(&cluster, &[]).await + 1) % cluster.len();
    let mut eps = cluster.endpoints();
    eps.rotate_left(first);
    let dcs = EtcdDcs::new(settings(&eps, "three", "node1")).unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    assert!(dcs.acquire_leader("node1").await.unwrap());

    // The member this client talks to first goes down: the next call moves to another.
    cluster.stop(first);
    for _ in 0..3 {
        leader_loop(&dcs, "node1").await.unwrap();
        tokio::time::sleep(TTL / 3).await;
    }
    // A new client whose first endpoint is the dead one works from its first call (the survivors have a raft
    // leader: a loaded machine can still start an election of its own, which is not what this part is about).
    raft_leader(&cluster, &[first]).await;
    let other = EtcdDcs::new(settings(&eps, "three", "node2")).unwrap();
    assert_eq!(other.load().await.unwrap().leader_name(), Some("node1"));
    cluster.start_member(first).unwrap();

    // Now the raft leader is killed: an election follows (~1-2 s), renewals must survive it within the ttl.
    let leader = raft_leader(&cluster, &[]).await;
    cluster.stop(leader);
    let killed_at = Instant::now();
    let mut renewed_after_election = false;
    while killed_at.elapsed() < Duration::from_secs(6) {
        match leader_loop(&dcs, "node1").await {
            Ok(()) => renewed_after_election = true,
            // During the election the remaining members have no leader: unreachable, never a wrong answer.
            Err(DcsError::Unreachable(_)) => renewed_after_election = false,
            Err(e) => panic!("unexpected error during the election: {e}"),
        }
        tokio::time::sleep(TTL / 4).await;
    }
    assert!(
        renewed_after_election,
        "no successful loop after the etcd leader was killed"
    );
    // The watch works on the surviving members too.
    let known = other.load().await.unwrap().leader.map(|l| l.version);
    let (watch, released) =
        tokio::join!(other.watch_leader(known, Duration::from_secs(5)), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            dcs.release_leader("node1").await
        });
    released.unwrap();
    assert_eq!(watch.unwrap(), WatchOutcome::LeaderChanged);
    cluster.start_member(leader).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_every_key_never_panics() {
    if etcd_or_skip("garbage_in_every_key_never_panics").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cluster = EtcdCluster::start(dir.path(), 3).unwrap();
    let eps = cluster.endpoints();
    let path = KeyPath::new("service", "junk");
    let mut raw = raw_client(&eps[1]).await;
    let garbage: [&[u8]; 6] = [
        b"{\x01not json",
        b"\xff\xfe\x00binary",
        b"[1,2",
        b"",
        b"{\"ttl\":{}}",
        b"null",
    ];
    let dcs = EtcdDcs::new(settings(&eps, "junk", "node1")).unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    for g in garbage {
        for key in [
            "initialize",
            "config",
            "leader",
            "members/node2",
            "members/",
            "members/a/b",
            "failover",
            "sync",
            "history",
            "status",
            "failsafe",
            "optime/leader",
            "unknown/key",
        ] {
            raw.put(path.key(key), g, None).await.unwrap();
        }
        let c = dcs.load().await.unwrap();
        assert!(c.config.is_none(), "{g:?}: {c:?}");
        // The writers still work on top of garbage: CAS on the garbage's version, acquire refused while the
        // leader key exists, a watch on it.
        let v = raw.get(path.key("config"), None).await.unwrap().kvs()[0].mod_revision() as u64;
        dcs.set_config(&GlobalConfig::default(), Some(v))
            .await
            .unwrap();
        // The leader key exists (garbage or not): acquire must refuse; once it is gone, the lock works as usual.
        assert!(!dcs.acquire_leader("node1").await.unwrap(), "{g:?}");
        raw.delete(path.key("leader"), None).await.unwrap();
        assert!(dcs.acquire_leader("node1").await.unwrap());
        assert!(dcs.renew_leader("node1").await.unwrap());
        dcs.release_leader("node1").await.unwrap();
        let known = dcs.load().await.unwrap().leader.map(|l| l.version);
        assert_eq!(
            dcs.watch_leader(known, Duration::from_millis(100))
                .await
                .unwrap(),
            WatchOutcome::TimedOut
        );
    }
    dcs.delete_cluster().await.unwrap();
    assert_eq!(dcs.load().await.unwrap(), Default::default());
}
