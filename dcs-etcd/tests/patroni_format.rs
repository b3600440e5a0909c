//! Patroni compatibility on a real etcd: a snapshot in Patroni's format (the examples of patroni-compat.md, written
//! raw) loads into the right `Cluster`, and what EtcdDcs writes back is byte-identical to Patroni's values.

mod common;

use common::{raw_client, settings, TTL};
use dcs_etcd::testing::{etcd_or_skip, EtcdServer};
use dcs_etcd::EtcdDcs;
use etcd_client::PutOptions;
use ha_core::dcs::{Dcs, DcsClient};
use ha_core::model::codec::KeyPath;

const REPLICA: &str = r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":67393608,"replay_lsn":67393608,"receive_lsn":67393608,"replication_state":"streaming","timeline":1}"#;
const PRIMARY: &str = r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.4","xlog_location":67393608,"timeline":1}"#;
const CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true,"parameters":{"max_connections":100,"wal_level":"replica"}}}"#;
const FAILOVER: &str =
    r#"{"leader":"node1","member":"node2","scheduled_at":"2024-01-01T00:00:00+00:00"}"#;
const SYNC: &str = r#"{"leader":"node1","quorum":0,"sync_standby":"node2"}"#;
const HISTORY: &str =
    r#"[[1,25165984,"no recovery target specified","2024-01-01T00:00:00+00:00","node1"]]"#;
const STATUS: &str =
    r#"{"optime":67393608,"slots":{"node2":67393608},"retain_slots":["node1","node2"]}"#;
const FAILSAFE: &str =
    r#"{"node1":"http://127.0.0.1:8008/patroni","node2":"http://127.0.0.1:8009/patroni"}"#;
const SYSID: &str = "7268616322854375442";

/// Writes the snapshot as Patroni would: leader and members on a lease, everything else without.
async fn write_patroni_snapshot(endpoint: &str, path: &KeyPath) -> i64 {
    let mut c = raw_client(endpoint).await;
    let lease = c.lease_grant(30, None).await.unwrap().id();
    let leased = Some(PutOptions::new().with_lease(lease));
    c.put(path.key("initialize"), SYSID, None).await.unwrap();
    c.put(path.key("config"), CONFIG, None).await.unwrap();
    c.put(path.key("leader"), "node1", leased.clone())
        .await
        .unwrap();
    c.put(path.member("node1"), PRIMARY, leased.clone())
        .await
        .unwrap();
    c.put(path.member("node2"), REPLICA, leased).await.unwrap();
    c.put(path.key("failover"), FAILOVER, None).await.unwrap();
    c.put(path.key("sync"), SYNC, None).await.unwrap();
    c.put(path.key("history"), HISTORY, None).await.unwrap();
    c.put(path.key("status"), STATUS, None).await.unwrap();
    c.put(path.key("failsafe"), FAILSAFE, None).await.unwrap();
    lease
}

async fn raw_get(endpoint: &str, key: String) -> (String, i64, i64) {
    let mut c = raw_client(endpoint).await;
    let r = c.get(key.clone(), None).await.unwrap();
    let kv = r
        .kvs()
        .first()
        .unwrap_or_else(|| panic!("{key} is missing"));
    (
        kv.value_str().unwrap().to_string(),
        kv.lease(),
        kv.mod_revision(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_snapshot_loads_into_the_right_cluster() {
    if etcd_or_skip("patroni_snapshot_loads_into_the_right_cluster").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(dir.path()).unwrap();
    let ep = server.endpoint();
    // Patroni's default namespace, given with slashes as a YAML file may: the prefix collapses them.
    let mut s = settings(&[&ep], "batman", "node3");
    s.namespace = "/service/".into();
    let path = KeyPath::new("service", "batman");
    let lease = write_patroni_snapshot(&ep, &path).await;
    let dcs = EtcdDcs::new(s).unwrap();
    let c = dcs.load().await.unwrap();

    assert_eq!(c.initialize.as_deref(), Some(SYSID));
    let leader = c.leader.clone().expect("leader");
    assert_eq!(leader.name, "node1");
    assert_eq!(
        leader.session,
        Some(lease.to_string()),
        "session = the lease id"
    );
    let (_, _, leader_rev) = raw_get(&ep, path.key("leader")).await;
    assert_eq!(leader.version, leader_rev as u64, "version = mod_revision");

    let cfg = c.config.as_ref().expect("config");
    assert_eq!(cfg.value.ttl, Some(30.0));
    assert_eq!(cfg.value.loop_wait, Some(10.0));
    assert_eq!(cfg.value.maximum_lag_on_failover, Some(1_048_576));
    let pg = cfg.value.postgresql.as_ref().unwrap();
    assert_eq!(pg.use_pg_rewind, Some(true));
    assert_eq!(
        pg.parameters.as_ref().unwrap()["max_connections"],
        serde_json::json!(100)
    );

    assert_eq!(c.members.len(), 2);
    let n2 = c.member("node2").expect("node2");
    assert_eq!(n2.data.role.as_deref(), Some("replica"));
    assert_eq!(n2.data.replication_state.as_deref(), Some("streaming"));
    assert_eq!(n2.data.xlog_location, Some(67_393_608));
    assert_eq!(c.leader_member().map(|m| m.name.as_str()), Some("node1"));

    let f = c.pending_failover().expect("failover");
    assert_eq!(f.value.leader.as_deref(), Some("node1"));
    assert_eq!(f.value.member.as_deref(), Some("node2"));
    let sync = c.sync.as_ref().expect("sync");
    assert_eq!(sync.value.sync_standby.as_deref(), Some("node2"));
    assert_eq!(c.timeline(), 2);
    assert_eq!(c.timeline_end_lsn(1), Some(25_165_984));
    assert_eq!(c.last_leader_lsn(), Some(67_393_608));
    assert_eq!(c.failsafe.as_ref().map(|f| f.len()), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_written_back_are_byte_identical_to_patronis() {
    if etcd_or_skip("values_written_back_are_byte_identical_to_patronis").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(dir.path()).unwrap();
    let ep = server.endpoint();
    let path = KeyPath::new("service", "batman");
    write_patroni_snapshot(&ep, &path).await;

    // Read Patroni's snapshot, then write every value back through EtcdDcs (as node2, the replica).
    let dcs = EtcdDcs::new(settings(&[&ep], "batman", "node2")).unwrap();
    dcs.set_ttl(TTL).await.unwrap();
    let c = dcs.load().await.unwrap();
    let cfg = c.config.clone().unwrap();
    let failover = c.failover.clone().unwrap();
    let sync = c.sync.clone().unwrap();
    let history = c.history.clone().unwrap();
    dcs.touch_member("node2", &c.member("node2").unwrap().data)
        .await
        .unwrap();
    dcs.set_config(&cfg.value, Some(cfg.version)).await.unwrap();
    dcs.set_failover(&failover.value, Some(failover.version))
        .await
        .unwrap();
    dcs.set_sync_state(&sync.value, Some(sync.version))
        .await
        .unwrap();
    dcs.set_history(&history.value, Some(history.version))
        .await
        .unwrap();
    dcs.write_status(c.status.as_ref().unwrap()).await.unwrap();
    dcs.write_failsafe(c.failsafe.as_ref().unwrap())
        .await
        .unwrap();
    dcs.set_initialize(SYSID).await.unwrap();

    let our_lease = dcs.lease_id().await.expect("touch_member granted a lease");
    for (key, expected, leased) in [
        (path.member("node2"), REPLICA, true),
        (path.key("config"), CONFIG, false),
        (path.key("failover"), FAILOVER, false),
        (path.key("sync"), SYNC, false),
        (path.key("history"), HISTORY, false),
        (path.key("status"), STATUS, false),
        (path.key("failsafe"), FAILSAFE, false),
        (path.key("initialize"), SYSID, false),
    ] {
        let (value, lease, _) = raw_get(&ep, key.clone()).await;
        assert_eq!(value, expected, "{key} differs from Patroni's bytes");
        assert_eq!(lease, if leased { our_lease } else { 0 }, "{key}: lease");
    }

    // The leader key: the bare name on our lease, exactly as Patroni's acquire writes it.
    let raw = raw_client(&ep).await;
    let mut raw2 = raw.clone();
    raw2.delete(path.key("leader"), None).await.unwrap();
    assert!(dcs.acquire_leader("node2").await.unwrap());
    let (value, lease, _) = raw_get(&ep, path.key("leader")).await;
    assert_eq!((value.as_str(), lease), ("node2", our_lease));
    // Clearing a failover writes `{}`, as Patroni does.
    let fv = dcs.load().await.unwrap().failover.unwrap().version;
    dcs.set_failover(&Default::default(), Some(fv))
        .await
        .unwrap();
    assert_eq!(raw_get(&ep, path.key("failover")).await.0, "{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_key_on_a_foreign_lease_is_moved_to_ours_only_when_it_names_us() {
    if etcd_or_skip("a_leader_key_on_a_foreign_lease_is_moved_to_ours_only_when_it_names_us")
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(dir.path()).unwrap();
    let ep = server.endpoint();
    let path = KeyPath::new("service", "batman");
    // What a Patroni node1 left behind before it was restarted as hactl: the leader key on its own old lease.
    let mut raw = raw_client(&ep).await;
    let patroni_lease = raw.lease_grant(30, None).await.unwrap().id();
    raw.put(
        path.key("leader"),
        "node1",
        Some(PutOptions::new().with_lease(patroni_lease)),
    )
    .await
    .unwrap();

    // Someone else's name on it: renew says "not ours" and changes nothing.
    let node2 = EtcdDcs::new(settings(&[&ep], "batman", "node2")).unwrap();
    node2.set_ttl(TTL).await.unwrap();
    node2.load().await.unwrap();
    assert!(!node2.renew_leader("node2").await.unwrap());
    assert_eq!(
        raw_get(&ep, path.key("leader")).await.0,
        "node1",
        "renew touched a key it does not hold"
    );

    // Our name on it: renew moves it to our lease, so the old lease's expiry no longer matters.
    let node1 = EtcdDcs::new(settings(&[&ep], "batman", "node1")).unwrap();
    node1.set_ttl(TTL).await.unwrap();
    assert_eq!(
        node1.load().await.unwrap().leader.unwrap().session,
        Some(patroni_lease.to_string())
    );
    assert!(node1.renew_leader("node1").await.unwrap());
    let ours = node1.lease_id().await.unwrap();
    assert_eq!(raw_get(&ep, path.key("leader")).await.1, ours);
    raw.lease_revoke(patroni_lease).await.unwrap();
    assert_eq!(node1.load().await.unwrap().leader_name(), Some("node1"));
}
