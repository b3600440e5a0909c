//! Roles and data moving between real PostgreSQL 15 servers: bootstrap, clone, promote, demote, diverge, rewind.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{sql, upstream, wait_for, World};
use ha_core::pg::{PgRunState, StopMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_clone_and_the_replica_reads_what_the_primary_wrote() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.node("n1").await;
    let n2 = w.node("n2").await;

    let sysid = n1.bootstrap().await.expect("bootstrap");
    let o1 = n1.observe().await;
    assert_eq!(o1.run_state, Some(PgRunState::Running));
    assert!(o1.is_primary());
    assert_eq!(o1.system_id.as_deref(), Some(sysid.as_str()));
    assert_eq!(o1.timeline, 1);

    // The managed configuration includes the user's file and the roles exist.
    let conf = std::fs::read_to_string(n1.settings().data_dir.join("postgresql.conf")).unwrap();
    assert!(conf.contains("include 'postgresql.base.conf'"));
    assert!(n1
        .settings()
        .data_dir
        .join("postgresql.base.conf")
        .is_file());
    let roles = sql(
        &n1,
        "SELECT rolname FROM pg_roles WHERE rolname IN ('replicator','rewinder') ORDER BY 1",
    )
    .await;
    assert_eq!(roles, vec!["replicator", "rewinder"]);
    let mode = std::fs::metadata(&n1.settings().pgpass).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    n2.clone_from(&upstream(&n1)).await.expect("clone");
    let stopped = n2.observe().await;
    assert_eq!(stopped.run_state, Some(PgRunState::Stopped));
    assert!(stopped.in_recovery, "a clone is a standby");
    assert_eq!(stopped.system_id.as_deref(), Some(sysid.as_str()));
    n2.start_replica(Some(&upstream(&n1)))
        .await
        .expect("start replica");

    sql(
        &n1,
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('written on n1')",
    )
    .await;
    wait_for(Duration::from_secs(20), "the row on n2", || async {
        n2.observe().await.streaming
            && sql(&n2, "SELECT count(*) FROM pg_class WHERE relname = 't'").await == ["1"]
            && sql(&n2, "SELECT v FROM t").await == ["written on n1"]
    })
    .await;
    let o2 = n2.observe().await;
    assert!(o2.is_replica());
    assert_eq!(o2.upstream.as_deref(), Some("n1"));
    let o1 = n1.observe().await;
    assert_eq!(o1.replicas, vec!["n2"]);
    // Both report when their postmaster started (within this test's minute) and the standby when the last
    // transaction it replayed committed (the CREATE TABLE above); a primary replays nothing.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for o in [&o1, &o2] {
        let started = o.postmaster_start_unix_ms.expect("postmaster start time");
        assert!(
            (now_ms - 120_000..=now_ms + 5_000).contains(&started),
            "{started} vs {now_ms}"
        );
    }
    let replayed = o2.replayed_unix_ms.expect("a replayed commit's time");
    assert!(
        (now_ms - 60_000..=now_ms + 5_000).contains(&replayed),
        "{replayed} vs {now_ms}"
    );
    assert_eq!(o1.replayed_unix_ms, None);
    // pg_stat_replication as the leader's synchronous replication reads it: n2 streams asynchronously until the
    // leader names it in synchronous_standby_names, then it is the synchronous standby; `None` gives the setting
    // back to the configuration.
    let row = &o1.replication[0];
    assert_eq!(
        (
            row.application_name.as_str(),
            row.state.as_str(),
            row.sync_state.as_str()
        ),
        ("n2", "streaming", "async")
    );
    assert!(row.usename.is_some() && row.flush_lsn.is_some(), "{row:?}");
    assert_eq!(o1.synchronous_standby_names.as_deref(), Some(""));
    n1.set_synchronous_standby_names(Some("\"n2\""))
        .await
        .unwrap();
    wait_for(Duration::from_secs(10), "n2 synchronous", || async {
        let o = n1.observe().await;
        o.synchronous_standby_names.as_deref() == Some("\"n2\"")
            && o.replication.first().map(|r| r.sync_state.as_str()) == Some("sync")
    })
    .await;
    n1.set_synchronous_standby_names(None).await.unwrap();
    assert_eq!(
        n1.observe().await.synchronous_standby_names.as_deref(),
        Some("")
    );
    // n2 streams through its slot, created on n1 by the clone.
    assert_eq!(
        sql(
            &n1,
            "SELECT slot_name || ':' || active FROM pg_replication_slots"
        )
        .await,
        vec!["n2:true"]
    );

    // The position at this moment (what `GET /patroni` reports): WAL written after a loop's observation shows at
    // once, on the primary as its current position, on the standby as received and replayed once it arrived; a
    // loop's observation patched with it moves forward.
    let before = n1.observe().await;
    let stale = n2.observe().await;
    sql(
        &n1,
        "INSERT INTO t SELECT 'more' FROM generate_series(1, 1000)",
    )
    .await;
    let p1 = n1.wal_position().await.expect("the primary answers");
    assert!(
        !p1.in_recovery && p1.current.unwrap() > before.lsn,
        "{p1:?} vs {}",
        before.lsn
    );
    let mut patched = before.clone();
    p1.refresh(&mut patched);
    assert_eq!(patched.lsn, p1.current.unwrap());
    wait_for(
        Duration::from_secs(10),
        "n2 received the new WAL",
        || async {
            let p = n2.wal_position().await.expect("the standby answers");
            p.in_recovery && p.receive >= p1.current && p.replay >= p1.current
        },
    )
    .await;
    let p2 = n2.wal_position().await.unwrap();
    let mut patched = stale.clone();
    p2.refresh(&mut patched);
    assert!(
        patched.lsn >= p1.current.unwrap() && patched.lsn > stale.lsn,
        "{patched:?}"
    );
    // A standby's position never patches a primary's observation (the role changed since the loop looked).
    let mut primary_seen = before.clone();
    p2.refresh(&mut primary_seen);
    assert_eq!(primary_seen, before);

    n2.stop(StopMode::Fast).await.unwrap();
    assert_eq!(
        n2.wal_position().await,
        None,
        "a stopped server has no position"
    );
    n1.stop(StopMode::Fast).await.unwrap();
    assert_eq!(n1.observe().await.run_state, Some(PgRunState::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_demote_then_diverge_and_the_loser_rejoins_with_pg_rewind() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let (n1, n2) = w.primary_and_replica("before failover").await;

    // Switchover: the old primary stops cleanly, the replica is promoted.
    n1.stop(StopMode::Fast).await.unwrap();
    n2.promote().await.expect("promote");
    let o2 = n2.observe().await;
    assert!(o2.is_primary());
    assert_eq!(o2.timeline, 2);
    assert_eq!(o2.history.first().map(|h| h.timeline), Some(1));
    n2.apply_slots(&slot_for("n1")).await.unwrap();
    let slots = n2.observe().await.slots.expect("slots observed");
    assert_eq!(
        slots
            .iter()
            .map(|s| (s.name.as_str(), s.managed, s.restart_lsn.is_some()))
            .collect::<Vec<_>>(),
        vec![("n1", true, true)],
        "the member slot is made, reserving WAL at once, and remembered as hactl's"
    );
    // A slot hactl did not make (a backup tool's) is never dropped; a member's slot goes when the member does:
    // the decision's plan for a node that wants no slot at all, applied to the real server.
    sql(&n2, "SELECT pg_create_physical_replication_slot('barman')").await;
    let local = n2.observe().await.slots.expect("slots observed");
    let (plan, copy) = ha_core::decision::slots::plan(
        &Default::default(),
        &local,
        &Default::default(),
        true,
        0,
        true,
    );
    assert_eq!(
        (plan.drop.clone(), copy),
        (vec!["n1".to_string()], Vec::<String>::new())
    );
    n2.apply_slots(&plan).await.unwrap();
    assert_eq!(
        sql(
            &n2,
            "SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots"
        )
        .await,
        ["barman"]
    );
    n2.apply_slots(&slot_for("n1")).await.unwrap();
    sql(&n2, "INSERT INTO t VALUES ('after failover')").await;

    // Demote the old primary: it was stopped cleanly, so it simply follows n2 onto timeline 2.
    let stopped = n1.observe().await;
    assert_eq!(stopped.run_state, Some(PgRunState::Stopped));
    assert_eq!(stopped.timeline, 1);
    assert!(
        stopped.lsn > 0,
        "a stopped server reports its checkpoint position"
    );
    n1.start_replica(Some(&upstream(&n2)))
        .await
        .expect("demote");
    wait_for(Duration::from_secs(20), "n1 to follow n2", || async {
        let o = n1.observe().await;
        o.is_replica() && o.streaming && o.timeline == 2
    })
    .await;
    wait_for(Duration::from_secs(20), "the new row on n1", || async {
        sql(&n1, "SELECT count(*) FROM t").await == ["2"]
    })
    .await;

    // Split brain: n1 is promoted too and both take writes.
    n1.promote().await.expect("promote n1");
    sql(&n1, "INSERT INTO t VALUES ('lost on n1'); CHECKPOINT").await;
    sql(&n2, "INSERT INTO t VALUES ('kept on n2')").await;
    n1.stop(StopMode::Fast).await.unwrap();
    let loser = n1.observe().await;
    assert_eq!(loser.timeline, 3, "n1 went its own way on timeline 3");
    assert!(!loser.in_recovery);

    // The loser is rewound from the winner and streams from it.
    n1.rewind(&upstream(&n2)).await.expect("pg_rewind");
    let rewound = n1.observe().await;
    assert!(rewound.in_recovery, "after a rewind the node is a standby");
    assert_eq!(rewound.upstream.as_deref(), Some("n2"));
    let conf = std::fs::read_to_string(n1.settings().data_dir.join("postgresql.conf")).unwrap();
    assert!(
        conf.contains(&format!("port = '{}'", n1.settings().port)),
        "pg_rewind copied n2's configuration; ours must be regenerated"
    );
    n1.start_replica(Some(&upstream(&n2)))
        .await
        .expect("start rewound replica");
    sql(&n2, "INSERT INTO t VALUES ('after rewind')").await;
    wait_for(Duration::from_secs(30), "n1 to stream from n2", || async {
        let o = n1.observe().await;
        o.is_replica()
            && o.streaming
            && sql(
                &n2,
                "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'",
            )
            .await
                == ["n1"]
    })
    .await;
    wait_for(Duration::from_secs(20), "n1 to have n2's rows", || async {
        sql(&n1, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await
            == ["after failover,after rewind,before failover,kept on n2"]
    })
    .await;

    n1.stop(StopMode::Fast).await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_primary_with_unreplicated_writes_is_rewound_and_follows() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let (n1, n2) = w.primary_and_replica("replicated").await;
    // The replica loses contact, the primary takes a write nobody else sees, then dies.
    n2.stop(StopMode::Fast).await.unwrap();
    sql(
        &n1,
        "INSERT INTO t SELECT 'unreplicated ' || g FROM generate_series(1, 1000) g",
    )
    .await;
    common::kill_postmaster(&n1);
    wait_for(Duration::from_secs(10), "n1 crashed", || async {
        n1.observe().await.run_state == Some(PgRunState::Crashed)
    })
    .await;

    // n2 takes over (a standby started as primary leaves recovery on a new timeline).
    n2.start_primary().await.expect("n2 as primary");
    let o2 = n2.observe().await;
    assert!(o2.is_primary());
    assert_eq!(o2.timeline, 2);
    // The crashed n1 reports a position past the fork point, so the rejoin check calls it diverged.
    let crashed = n1.observe().await;
    assert_eq!(crashed.timeline, 1);
    let fork = o2.end_of(1).expect("history of tl 1");
    assert!(
        crashed.lsn > fork,
        "crashed lsn {:X} <= fork {fork:X}",
        crashed.lsn
    );
    sql(&n2, "INSERT INTO t VALUES ('on n2')").await;
    n2.apply_slots(&slot_for("n1")).await.unwrap();

    // The crashed n1 was never shut down cleanly: pg_rewind recovers it first, then rewinds.
    n1.rewind(&upstream(&n2))
        .await
        .expect("rewind of a crashed primary");
    n1.start_replica(Some(&upstream(&n2))).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "n1 streaming from n2 with n2's rows",
        || async {
            n1.observe().await.streaming
                && sql(&n1, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await
                    == ["on n2,replicated"]
        },
    )
    .await;
    n1.stop(StopMode::Fast).await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_moves_a_replica_without_restart_and_reinitialize_reclones_it() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.node("n1").await;
    let n2 = w.node("n2").await;
    let n3 = w.node("n3").await;
    n1.bootstrap().await.expect("bootstrap");
    sql(&n1, "CREATE TABLE t(v int); INSERT INTO t VALUES (1)").await;
    n2.clone_from(&upstream(&n1)).await.unwrap();
    n2.start_replica(Some(&upstream(&n1))).await.unwrap();
    n3.clone_from(&upstream(&n1)).await.unwrap();
    n3.start_replica(Some(&upstream(&n1))).await.unwrap();
    wait_for(Duration::from_secs(20), "both replicas on n1", || async {
        n1.observe().await.replicas == ["n2", "n3"]
    })
    .await;

    // Cascade n3 behind n2: a reload, the postmaster stays the same process. n3 creates its slot on n2 itself.
    let pid = common::postmaster_pid(&n3.settings().data_dir).unwrap();
    sql(
        &n2,
        "SELECT pg_create_physical_replication_slot('n3', true)",
    )
    .await;
    n3.follow(&upstream(&n2)).await.expect("follow");
    wait_for(Duration::from_secs(30), "n3 streaming from n2", || async {
        sql(
            &n2,
            "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'n3'",
        )
        .await
            == ["1"]
    })
    .await;
    assert_eq!(common::postmaster_pid(&n3.settings().data_dir), Some(pid));
    assert_eq!(
        sql(
            &n2,
            "SELECT slot_name || ':' || active FROM pg_replication_slots"
        )
        .await,
        ["n3:true"]
    );
    assert_eq!(n3.observe().await.upstream.as_deref(), Some("n2"));
    sql(&n1, "INSERT INTO t VALUES (2)").await;
    wait_for(
        Duration::from_secs(20),
        "the row through the cascade",
        || async { sql(&n3, "SELECT count(*) FROM t").await == ["2"] },
    )
    .await;

    // Reinitialize n3 from n1: same cluster, so the directory is wiped and cloned again.
    n3.stop(StopMode::Fast).await.unwrap();
    std::fs::write(n3.settings().data_dir.join("junk-from-before"), "x").unwrap();
    n3.reinitialize(&upstream(&n1)).await.expect("reinitialize");
    assert!(!n3.settings().data_dir.join("junk-from-before").exists());
    n3.start_replica(Some(&upstream(&n1))).await.unwrap();
    assert_eq!(sql(&n3, "SELECT count(*) FROM t").await, ["2"]);
    for n in [&n3, &n2, &n1] {
        n.stop(StopMode::Fast).await.unwrap();
    }
}

/// A plan that makes the physical slot of member `m` (as the decision plans it for a member that streams).
fn slot_for(m: &str) -> ha_core::pg::SlotPlan {
    ha_core::pg::SlotPlan {
        create_physical: vec![m.to_string()],
        ..Default::default()
    }
}

/// A commit waits for a standby the primary does not name (strict synchronous mode after a failover names the
/// lost primary); naming the standby that already has the commit releases it at once, not at the standby's next
/// status report (`wal_receiver_status_interval`, set to a minute here so that waiting for it would show).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naming_a_synchronous_standby_releases_the_waiting_commits_at_once() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let (n1, n2) = w.primary_and_replica("before").await;
    let quiet = BTreeMap::from([(
        "wal_receiver_status_interval".to_string(),
        "60s".to_string(),
    )]);
    n2.apply_parameters(&quiet).await.unwrap();
    assert_eq!(
        sql(&n2, "SHOW wal_receiver_status_interval").await,
        ["1min"]
    );
    n1.set_synchronous_standby_names(Some("\"gone\""))
        .await
        .unwrap();
    let commit = async {
        sql(&n1, "INSERT INTO t VALUES ('waited')").await;
        Instant::now()
    };
    let name = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let named = Instant::now();
        n1.set_synchronous_standby_names(Some("\"n2\""))
            .await
            .unwrap();
        named
    };
    let (committed, named) = tokio::join!(commit, name);
    assert!(
        committed > named,
        "the commit did not wait for a named standby"
    );
    assert!(
        committed - named < Duration::from_secs(5),
        "the commit was released {:?} after n2 was named",
        committed - named
    );
    common::wait_rows(&n2, 2).await;
    n1.stop(StopMode::Fast).await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();
}
