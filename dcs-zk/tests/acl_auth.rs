//! `zookeeper.auth_data` and `zookeeper.set_acls` against a real ZooKeeper: the znodes hactl creates carry the
//! configured ACL, a client with the digest credentials works as usual, and a client without them can neither write
//! nor delete the leader key.

use std::time::Duration;

use base64::Engine;
use dcs_zk::testing::ZkServer;
use dcs_zk::{acl_from_patroni, Permission, ZkDcs, ZkSettings};
use ha_core::dcs::{Dcs, DcsClient};
use zookeeper_async::{ZkError, ZooKeeper};

const USER: &str = "hactl";
const PASSWORD: &str = "zk-s3cret";

/// ZooKeeper's `digest` ACL id: `user:base64(sha1(user:password))`.
fn digest_id(user: &str, password: &str) -> String {
    let sha = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{user}:{password}").as_bytes(),
    );
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(sha.as_ref())
    )
}

fn settings(hosts: &str, name: &str, password: Option<&str>) -> ZkSettings {
    let mut s = ZkSettings::new(
        hosts,
        "service",
        "acl",
        name,
        Duration::from_secs(4),
        Duration::from_secs(2),
    );
    if let Some(pw) = password {
        s.auth = vec![("digest".into(), format!("{USER}:{pw}"))];
    }
    s.acl = vec![acl_from_patroni(
        &format!("digest:{}", digest_id(USER, PASSWORD)),
        &["ALL".to_string()],
    )
    .unwrap()];
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_acls_keep_clients_without_the_digest_out() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = ZkServer::start_or_skip(dir.path()) else {
        return;
    };
    let hosts = server.hosts();

    let node = ZkDcs::new(settings(&hosts, "node1", Some(PASSWORD)));
    node.set_ttl(Duration::from_secs(4)).await.unwrap();
    assert!(node.acquire_leader("node1").await.unwrap());
    let cluster = node.load().await.unwrap();
    assert_eq!(
        cluster.leader.as_ref().map(|l| l.name.as_str()),
        Some("node1")
    );

    // Another client with the same credentials sees and uses the cluster as usual.
    let ctl = ZkDcs::ctl(settings(&hosts, "", Some(PASSWORD)));
    let seen = ctl.load().await.unwrap();
    assert_eq!(seen.leader.map(|l| l.name), Some("node1".to_string()));

    // The leader key carries our ACL, and a raw client without the digest can neither write nor delete it.
    let raw = ZooKeeper::connect(&hosts, Duration::from_secs(4), |_| {})
        .await
        .unwrap();
    assert_eq!(
        raw.get_acl("/service/acl/leader").await.unwrap_err(),
        ZkError::NoAuth,
        "ZooKeeper 3.8 shows an ACL only to READ or ADMIN"
    );
    let admin = ZooKeeper::connect(&hosts, Duration::from_secs(4), |_| {})
        .await
        .unwrap();
    admin
        .add_auth("digest", format!("{USER}:{PASSWORD}").into_bytes())
        .await
        .unwrap();
    let (acl, _) = admin.get_acl("/service/acl/leader").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme, "digest");
    assert_eq!(acl[0].perms, Permission::ALL);
    assert_eq!(
        raw.set_data("/service/acl/leader", b"intruder".to_vec(), None)
            .await
            .unwrap_err(),
        ZkError::NoAuth
    );
    assert_eq!(
        raw.delete("/service/acl/leader", None).await.unwrap_err(),
        ZkError::NoAuth
    );
    assert_eq!(
        raw.get_data("/service/acl/leader", false)
            .await
            .unwrap_err(),
        ZkError::NoAuth
    );

    // A client with a wrong password is refused too (the digest it sends is another identity).
    let wrong = ZkDcs::ctl(settings(&hosts, "", Some("wrong")));
    assert!(wrong.load().await.is_err());
    let nobody = ZkDcs::ctl(settings(&hosts, "", None));
    assert!(nobody.load().await.is_err());

    // The leader is still ours.
    assert!(node.renew_leader("node1").await.unwrap());
    drop(server);
}
