//! #11 hole 2: ZooKeeper expires a silent session after the timeout it *negotiated*, which its `maxSessionTimeout`
//! caps. A node whose session is shorter than the ttl would lead on a lock the server drops before the lease the
//! driver counts ends, so it refuses the lock, naming the server setting to change.

use std::time::Duration;

use dcs_zk::testing::ZkServer;
use dcs_zk::{ZkDcs, ZkSettings};
use ha_core::dcs::{Dcs, DcsClient, DcsError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_capped_below_the_ttl_refuses_the_lock_and_one_that_fits_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    if !dcs_zk::testing::binary_available() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true and ZooKeeper is not installed"
        );
        eprintln!("SKIPPED: ZooKeeper is not installed");
        return;
    }
    // The server allows sessions of 10 s at most.
    let server = ZkServer::start_with_max_session(dir.path(), 10_000).expect("start ZooKeeper");
    let settings = |name: &str, ttl_s: u64| {
        ZkSettings::new(
            server.hosts(),
            "service",
            "capped",
            name,
            Duration::from_secs(ttl_s),
            Duration::from_secs(2),
        )
    };

    let long = ZkDcs::new(settings("node1", 20));
    long.set_ttl(Duration::from_secs(20)).await.unwrap();
    match long.acquire_leader("node1").await {
        Err(DcsError::Rejected(why)) => assert!(why.contains("maxSessionTimeout"), "{why}"),
        other => panic!("a 20 s ttl on a 10 s session was not refused: {other:?}"),
    }
    assert_eq!(
        long.load().await.unwrap().leader_name(),
        None,
        "the refused node left a leader key"
    );

    let fits = ZkDcs::new(settings("node2", 10));
    fits.set_ttl(Duration::from_secs(10)).await.unwrap();
    assert!(fits.acquire_leader("node2").await.unwrap());
    assert!(fits.renew_leader("node2").await.unwrap());
}
