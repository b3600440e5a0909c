//! The conformance suite every [`Dcs`] implementation passes: the mock, etcd, Consul and ZooKeeper run these same
//! checks. A backend provides a [`Harness`]: clients per node, a way to let time pass, to stop and start its server
//! and to write raw garbage.

#[cfg(feature = "testing")]
pub mod bench;
mod macros;
mod patroni_format;

pub use patroni_format::patroni_snapshot_round_trip;

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::dcs::{Dcs, DcsError, WatchOutcome};
use crate::model::{Failover, GlobalConfig, MemberData, SyncState};

/// What a backend gives the suite.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new client for node `name`, with its own lease/session.
    async fn client(&self, name: &str) -> Box<dyn Dcs>;
    /// The shortest ttl the backend honours (Consul: 10 s sessions...).
    fn ttl(&self) -> Duration;
    /// Lets `d` pass (sleeps on real servers, advances the clock of the mock).
    async fn pass(&self, d: Duration);
    /// Writes a raw value under a key relative to the cluster prefix, bypassing the client.
    async fn put_raw(&self, key: &str, value: &str);
    /// Reads the raw value of a key relative to the cluster prefix, bypassing the client; `None` if absent.
    async fn get_raw(&self, key: &str) -> Option<String>;
    /// Stops the server (all members of it).
    async fn stop_server(&self);
    /// Starts it again with its data.
    async fn start_server(&self);
    /// How long after the ttl a backend may keep an expired lease (Consul keeps sessions up to 2 × ttl).
    fn expiry_slack(&self) -> Duration {
        Duration::from_secs(2)
    }
}

fn fail(what: &str, detail: impl std::fmt::Debug) -> String {
    format!("{what}: {detail:?}")
}

/// N concurrent contenders for the lock: exactly one wins.
pub async fn one_of_n_contenders_wins(h: &dyn Harness) -> Result<(), String> {
    let mut clients = Vec::new();
    for i in 0..5 {
        let c = h.client(&format!("c{i}")).await;
        c.set_ttl(h.ttl()).await.map_err(|e| fail("set_ttl", e))?;
        clients.push(c);
    }
    let results = futures_join_all(clients.iter().enumerate().map(|(i, c)| {
        let name = format!("c{i}");
        async move { c.acquire_leader(&name).await }
    }))
    .await;
    let wins = results.iter().filter(|r| matches!(r, Ok(true))).count();
    if wins != 1 {
        return Err(fail("expected exactly one winner", results));
    }
    let winner = results
        .iter()
        .position(|r| matches!(r, Ok(true)))
        .unwrap_or(0);
    let snap = clients[0].load().await.map_err(|e| fail("load", e))?;
    if snap.leader_name() != Some(format!("c{winner}").as_str()) {
        return Err(fail("leader key does not name the winner", snap.leader));
    }
    clients[winner]
        .release_leader(&format!("c{winner}"))
        .await
        .map_err(|e| fail("release", e))?;
    Ok(())
}

async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().collect();
    let mut out = Vec::with_capacity(handles.len());
    // Started together: each acquire is one request; polling them in turn keeps them concurrent on the server side.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    for d in done {
        out.extend(d);
    }
    out
}

/// An unrenewed lock expires after its ttl, not before the lease the driver counts (ttl minus the safety margin,
/// from the renewal's send); a renewed one does not.
pub async fn lock_expires_unless_renewed(h: &dyn Harness) -> Result<(), String> {
    let a = h.client("a").await;
    let b = h.client("b").await;
    a.set_ttl(h.ttl()).await.map_err(|e| fail("set_ttl", e))?;
    b.set_ttl(h.ttl()).await.map_err(|e| fail("set_ttl", e))?;
    if !a
        .acquire_leader("a")
        .await
        .map_err(|e| fail("acquire", e))?
    {
        return Err("a could not take a free lock".into());
    }
    // Renewed every third of the ttl for two ttls: still ours.
    let third = h.ttl() / 3;
    for _ in 0..6 {
        h.pass(third).await;
        if !a.renew_leader("a").await.map_err(|e| fail("renew", e))? {
            return Err("a renewed lock was lost".into());
        }
    }
    if b.acquire_leader("b")
        .await
        .map_err(|e| fail("acquire", e))?
    {
        return Err("b took a lock that a kept renewing".into());
    }
    // Not renewed: still held at the end of the lease the driver counts from the last renewal's send (ttl minus
    // the safety margin: the check comes a little later, after the renewal's reply), gone after ttl (+ the
    // backend's slack). A server expiring a lock early would let a replica promote while the primary still writes.
    let timing = crate::model::Timing {
        ttl_ms: h.ttl().as_millis() as u64,
        loop_wait_ms: 0,
        retry_timeout_ms: 0,
    };
    let lease = Duration::from_millis(timing.lease_valid_ms());
    h.pass(lease).await;
    if b.acquire_leader("b")
        .await
        .map_err(|e| fail("acquire", e))?
    {
        return Err(format!(
            "the server let b take the lock {lease:?} after a's last renewal, before the lease a counts ran out"
        ));
    }
    h.pass(h.ttl() - lease + h.expiry_slack()).await;
    let snap = b.load().await.map_err(|e| fail("load", e))?;
    if snap.leader.is_some() {
        return Err(fail(
            "lock still there after ttl without renewal",
            snap.leader,
        ));
    }
    if !b
        .acquire_leader("b")
        .await
        .map_err(|e| fail("acquire", e))?
    {
        return Err("b could not take an expired lock".into());
    }
    if a.renew_leader("a").await.map_err(|e| fail("renew", e))? {
        return Err("a renewed a lock b holds".into());
    }
    b.release_leader("b")
        .await
        .map_err(|e| fail("release", e))?;
    Ok(())
}

/// A compare-and-set with a stale version fails with `Conflict`; with the current one it succeeds.
pub async fn stale_cas_conflicts(h: &dyn Harness) -> Result<(), String> {
    let a = h.client("a").await;
    let cfg = GlobalConfig {
        ttl: Some(30.0),
        ..Default::default()
    };
    a.set_config(&cfg, None)
        .await
        .map_err(|e| fail("set_config", e))?;
    let v1 = a
        .load()
        .await
        .map_err(|e| fail("load", e))?
        .config
        .ok_or("config missing after write")?
        .version;
    let cfg2 = GlobalConfig {
        ttl: Some(20.0),
        ..Default::default()
    };
    a.set_config(&cfg2, Some(v1))
        .await
        .map_err(|e| fail("CAS with the current version", e))?;
    match a.set_config(&cfg, Some(v1)).await {
        Err(DcsError::Conflict(_)) => {}
        other => return Err(fail("CAS with a stale version", other)),
    }
    let snap = a.load().await.map_err(|e| fail("load", e))?;
    if snap.config.map(|c| c.value.ttl) != Some(Some(20.0)) {
        return Err("a stale CAS changed the value".into());
    }
    let f = Failover {
        leader: Some("a".into()),
        member: Some("b".into()),
        ..Default::default()
    };
    a.set_failover(&f, None)
        .await
        .map_err(|e| fail("set_failover", e))?;
    let fv = a
        .load()
        .await
        .map_err(|e| fail("load", e))?
        .failover
        .ok_or("failover missing")?
        .version;
    match a.set_failover(&Failover::default(), Some(fv + 1000)).await {
        Err(DcsError::Conflict(_)) => Ok(()),
        other => Err(fail("failover CAS with a wrong version", other)),
    }
}

/// The `sync` key: written, read back as Patroni's JSON (`leader`, `sync_standby`, `quorum`), replaced with
/// compare-and-set on its version, and a stale version refused with `Conflict` without changing it.
pub async fn sync_key_round_trip_and_cas(h: &dyn Harness) -> Result<(), String> {
    let a = h.client("a").await;
    let first = SyncState {
        leader: Some("a".into()),
        ..Default::default()
    };
    a.set_sync_state(&first, None)
        .await
        .map_err(|e| fail("set_sync_state", e))?;
    let read = a
        .load()
        .await
        .map_err(|e| fail("load", e))?
        .sync
        .ok_or("sync missing after write")?;
    if read.value.leader.as_deref() != Some("a") || !read.value.members().is_empty() {
        return Err(format!("sync read back as {:?}", read.value));
    }
    let second = SyncState {
        leader: Some("a".into()),
        sync_standby: Some("b,c".into()),
        quorum: Some(1),
        ..Default::default()
    };
    a.set_sync_state(&second, Some(read.version))
        .await
        .map_err(|e| fail("sync CAS with the current version", e))?;
    match a.set_sync_state(&first, Some(read.version)).await {
        Err(DcsError::Conflict(_)) => {}
        other => return Err(fail("sync CAS with a stale version", other)),
    }
    let now = a
        .load()
        .await
        .map_err(|e| fail("load", e))?
        .sync
        .ok_or("sync missing")?;
    if now.value.members() != ["b", "c"]
        || now.value.quorum != Some(1)
        || !now.value.matches("c", false)
        || !now.value.matches("a", true)
    {
        return Err(format!(
            "a stale sync CAS changed the value: {:?}",
            now.value
        ));
    }
    Ok(())
}

/// Releasing the lock lets another node take it at once.
pub async fn release_lets_another_acquire(h: &dyn Harness) -> Result<(), String> {
    let a = h.client("a").await;
    let b = h.client("b").await;
    a.set_ttl(h.ttl()).await.map_err(|e| fail("set_ttl", e))?;
    b.set_ttl(h.ttl()).await.map_err(|e| fail("set_ttl", e))?;
    if !a
        .acquire_leader("a")
        .await
        .map_err(|e| fail("acquire", e))?
    {
        return Err("a could not take a free lock".into());
    }
    a.release_leader("a")
        .await
        .map_err(|e| fail("release", e))?;
    if !b
        .acquire_leader("b")
        .await
        .map_err(|e| fail("acquire", e))?
    {
        return Err("b could not take a released lock".into());
    }
    // Releasing someone else's lock does nothing.
    a.release_leader("a")
        .await
        .map_err(|e| fail("release", e))?;
    let snap = a.load().await.map_err(|e| fail("load", e))?;
    if snap.leader_name() != Some("b") {
        return Err(fail("a's release removed b's lock", snap.leader));
    }
    b.release_leader("b")
        .await
        .map_err(|e| fail("release", e))?;
    Ok(())
}

/// The watch wakes within 1 s of a leader change.
pub async fn watch_wakes_on_leader_change(h: &dyn Harness) -> Result<(), String> {
    let a = h.client("a").await;
    let w = h.client("w").await;
    a.set_ttl(h.ttl()).await.map_err(|e| fail("set_ttl", e))?;
    let known = w
        .load()
        .await
        .map_err(|e| fail("load", e))?
        .leader
        .map(|l| l.version);
    let start = Instant::now();
    let (outcome, acquired) = tokio::join!(w.watch_leader(known, Duration::from_secs(10)), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        (Instant::now(), a.acquire_leader("a").await)
    });
    let (changed_at, acquired) = acquired;
    if !matches!(acquired, Ok(true)) {
        return Err(fail("acquire", acquired));
    }
    match outcome {
        Ok(WatchOutcome::LeaderChanged) => {}
        other => return Err(fail("watch did not report the change", other)),
    }
    let latency = start.elapsed().saturating_sub(changed_at - start);
    if latency > Duration::from_secs(1) {
        return Err(fail("watch woke too late", latency));
    }
    // And times out when nothing changes.
    let known = w
        .load()
        .await
        .map_err(|e| fail("load", e))?
        .leader
        .map(|l| l.version);
    match w.watch_leader(known, Duration::from_millis(500)).await {
        Ok(WatchOutcome::TimedOut) => {}
        other => return Err(fail("watch without a change", other)),
    }
    a.release_leader("a")
        .await
        .map_err(|e| fail("release", e))?;
    Ok(())
}

/// Member keys expire with their lease.
pub async fn member_keys_expire(h: &dyn Harness) -> Result<(), String> {
    let a = h.client("m1").await;
    a.set_ttl(h.ttl()).await.map_err(|e| fail("set_ttl", e))?;
    let data = MemberData {
        conn_url: Some("postgres://127.0.0.1:5432/postgres".into()),
        state: Some("running".into()),
        ..Default::default()
    };
    a.touch_member("m1", &data)
        .await
        .map_err(|e| fail("touch_member", e))?;
    let snap = a.load().await.map_err(|e| fail("load", e))?;
    if snap.member("m1").map(|m| &m.data) != Some(&data) {
        return Err(fail("member not read back", snap.members));
    }
    h.pass(h.ttl() + h.expiry_slack()).await;
    let snap = a.load().await.map_err(|e| fail("load", e))?;
    if snap.member("m1").is_some() {
        return Err("member key outlived its ttl".into());
    }
    Ok(())
}

/// Garbage in every key is skipped, never fatal, and the rest of the snapshot still reads.
pub async fn garbage_is_survived(h: &dyn Harness) -> Result<(), String> {
    let a = h.client("a").await;
    for key in [
        "config",
        "failover",
        "sync",
        "history",
        "status",
        "failsafe",
        "members/junk",
        "leader",
        "initialize",
    ] {
        h.put_raw(key, "{\u{1}not json at all").await;
    }
    h.put_raw(
        "members/ok",
        r#"{"conn_url":"postgres://x:5432/postgres","state":"running","role":"replica"}"#,
    )
    .await;
    let snap = a.load().await.map_err(|e| fail("load with garbage", e))?;
    if snap.member("ok").is_none() || snap.member("junk").is_some() || snap.config.is_some() {
        return Err(fail("garbage handling", snap));
    }
    a.delete_cluster()
        .await
        .map_err(|e| fail("delete_cluster", e))?;
    Ok(())
}

/// A stopped server gives `Unreachable` within the client's deadline; a restarted one works again. The deadline
/// is the one set at run time ([`Dcs::set_retry_timeout`] to 1 s, as a cluster's `retry_timeout` sets it), not
/// the one the client was built with: the error must come within `min(deadline, 1.5 s)`.
pub async fn outage_is_unreachable_then_recovers(
    h: &dyn Harness,
    deadline: Duration,
) -> Result<(), String> {
    let a = h.client("a").await;
    a.load()
        .await
        .map_err(|e| fail("load before the outage", e))?;
    a.set_retry_timeout(Duration::from_secs(1));
    let deadline = deadline.min(Duration::from_millis(1500));
    h.stop_server().await;
    let start = Instant::now();
    let r = a.load().await;
    let took = start.elapsed();
    if !matches!(r, Err(DcsError::Unreachable(_))) {
        h.start_server().await;
        return Err(fail("load against a stopped server", r));
    }
    if took > deadline {
        h.start_server().await;
        return Err(fail("unreachable error came too late", took));
    }
    h.start_server().await;
    let start = Instant::now();
    loop {
        match a.load().await {
            Ok(_) => break,
            Err(e) if start.elapsed() > Duration::from_secs(30) => {
                return Err(fail("no reconnect after restart", e))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    Ok(())
}

/// Every check but the outage one, in order, with the name of the first that fails.
pub async fn run_all(h: &dyn Harness) -> Result<(), String> {
    one_of_n_contenders_wins(h)
        .await
        .map_err(|e| format!("one_of_n_contenders_wins: {e}"))?;
    stale_cas_conflicts(h)
        .await
        .map_err(|e| format!("stale_cas_conflicts: {e}"))?;
    sync_key_round_trip_and_cas(h)
        .await
        .map_err(|e| format!("sync_key_round_trip_and_cas: {e}"))?;
    release_lets_another_acquire(h)
        .await
        .map_err(|e| format!("release_lets_another_acquire: {e}"))?;
    watch_wakes_on_leader_change(h)
        .await
        .map_err(|e| format!("watch_wakes_on_leader_change: {e}"))?;
    lock_expires_unless_renewed(h)
        .await
        .map_err(|e| format!("lock_expires_unless_renewed: {e}"))?;
    member_keys_expire(h)
        .await
        .map_err(|e| format!("member_keys_expire: {e}"))?;
    garbage_is_survived(h)
        .await
        .map_err(|e| format!("garbage_is_survived: {e}"))?;
    patroni_snapshot_round_trip(h)
        .await
        .map_err(|e| format!("patroni_snapshot_round_trip: {e}"))?;
    Ok(())
}
