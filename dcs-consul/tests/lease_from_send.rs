//! The lease the driver counts must hold on the server: a lock taken with `acquire_leader` survives on Consul until
//! at least the acquire's send time + ttl − margin, even when the session it hangs on was last renewed long before
//! (a replica's session is renewed by its member writes, a loop earlier; #11 hole 1). Consul destroys an unrenewed
//! session 2 × its TTL (= ttl for ttl ≥ 20 s) after the last renewal, so the acquire itself must renew it.

use std::time::{Duration, Instant};

use dcs_consul::testing::ConsulServer;
use dcs_consul::{ConsulDcs, ConsulSettings};
use ha_core::dcs::{Dcs, DcsClient};
use ha_core::model::{MemberData, Timing};

const TTL: Duration = Duration::from_secs(20);

fn settings(server: &ConsulServer, name: &str) -> ConsulSettings {
    let mut s = ConsulSettings::new(server.url(), "lease", name);
    s.ttl = TTL;
    s.retry_timeout = Duration::from_secs(2);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_on_an_old_session_lives_a_whole_lease_from_the_acquire() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = ConsulServer::start_or_skip(dir.path()) else {
        return;
    };
    let node = ConsulDcs::new(settings(&server, "node1")).unwrap();
    let observer = ConsulDcs::ctl(settings(&server, "observer")).unwrap();
    node.set_ttl(TTL).await.unwrap();
    // The session is created (renewed) by a member write, then left alone for most of its TTL, as a replica's is
    // between two loops when the leader key vanishes.
    node.touch_member("node1", &MemberData::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let sent = Instant::now();
    assert!(node.acquire_leader("node1").await.unwrap());
    // From now on the node is silent (frozen). The driver acts as leader until send + ttl − margin.
    let lease = Duration::from_millis(
        Timing::from_seconds(TTL.as_secs_f64(), 1.0, 2.0)
            .unwrap()
            .lease_valid_ms(),
    );
    while sent.elapsed() < lease {
        let held = observer
            .load()
            .await
            .unwrap()
            .leader_name()
            .map(String::from);
        assert_eq!(
            held.as_deref(),
            Some("node1"),
            "the lock vanished {:.1} s after the acquire was sent, before the {:.0} s lease the driver counts",
            sent.elapsed().as_secs_f64(),
            lease.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
