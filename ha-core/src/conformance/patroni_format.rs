//! The conformance check that a backend reads what Patroni wrote and writes what Patroni would: the byte-level
//! compatibility that lets hactl and Patroni tooling share one DCS.

use super::{fail, Harness};

/// A snapshot as Patroni writes it (compact JSON, the leader key a plain name, the history a list of lists) loads
/// into the expected model, and what the client writes back is byte-identical to what Patroni writes.
pub async fn patroni_snapshot_round_trip(h: &dyn Harness) -> Result<(), String> {
    const CONFIG: &str = r#"{"ttl":30,"loop_wait":10,"retry_timeout":10,"maximum_lag_on_failover":1048576,"postgresql":{"use_pg_rewind":true}}"#;
    const MEMBER: &str = r#"{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"replica","version":"4.1.4","xlog_location":67393608,"replay_lsn":67393608,"receive_lsn":67393608,"replication_state":"streaming","timeline":1}"#;
    const HISTORY: &str =
        r#"[[1,25165984,"no recovery target specified","2024-01-01T00:00:00+00:00","node1"]]"#;
    h.put_raw("initialize", "7268616322854375442").await;
    h.put_raw("config", CONFIG).await;
    h.put_raw("leader", "node1").await;
    // Another node's member key (on ZooKeeper a member key belongs to its writer's session).
    h.put_raw("members/node3", MEMBER).await;
    h.put_raw("history", HISTORY).await;
    h.put_raw(
        "status",
        r#"{"optime":67393608,"slots":{"node2":67393608}}"#,
    )
    .await;
    h.put_raw("failover", "{}").await;

    let c = h.client("node2").await;
    let snap = c.load().await.map_err(|e| fail("load", e))?;
    let read = (
        snap.initialize.as_deref(),
        snap.leader_name(),
        snap.timeline(),
        snap.last_leader_lsn(),
        snap.config.as_ref().and_then(|c| c.value.ttl),
    );
    if read
        != (
            Some("7268616322854375442"),
            Some("node1"),
            2,
            Some(67393608),
            Some(30.0),
        )
    {
        return Err(fail("Patroni's snapshot read as", read));
    }
    let m = snap.member("node3").ok_or("member node3 not read")?;
    if m.data.xlog_location != Some(67393608) {
        return Err(fail("member node3 read as", &m.data));
    }
    let history = snap.history.as_ref().ok_or("history not read")?;

    // Written back through the client: byte-identical values.
    c.touch_member("node2", &m.data)
        .await
        .map_err(|e| fail("touch_member", e))?;
    c.set_history(&history.value, Some(history.version))
        .await
        .map_err(|e| fail("set_history", e))?;
    for (key, want) in [("members/node2", MEMBER), ("history", HISTORY)] {
        let got = h.get_raw(key).await;
        if got.as_deref() != Some(want) {
            return Err(format!("{key} written as {got:?}, Patroni writes {want}"));
        }
    }
    c.delete_cluster()
        .await
        .map_err(|e| fail("delete_cluster", e))?;
    Ok(())
}
