//! Roles and data moving between real PostgreSQL 15 servers: bootstrap, clone, promote, demote, diverge, rewind.

mod common;

use std::time::Duration;

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
    // n2 streams through its slot, created on n1 by the clone.
    assert_eq!(
        sql(
            &n1,
            "SELECT slot_name || ':' || active FROM pg_replication_slots"
        )
        .await,
        vec!["n2:true"]
    );

    n2.stop(StopMode::Fast).await.unwrap();
    n1.stop(StopMode::Fast).await.unwrap();
    assert_eq!(n1.observe().await.run_state, Some(PgRunState::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_demote_then_diverge_and_the_loser_rejoins_with_pg_rewind() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.node("n1").await;
    let n2 = w.node("n2").await;
    n1.bootstrap().await.expect("bootstrap");
    n2.clone_from(&upstream(&n1)).await.expect("clone");
    n2.start_replica(Some(&upstream(&n1)))
        .await
        .expect("start replica");
    sql(
        &n1,
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('before failover')",
    )
    .await;
    wait_for(Duration::from_secs(20), "n2 to replay", || async {
        sql(&n2, "SELECT count(*) FROM pg_class WHERE relname = 't'").await == ["1"]
    })
    .await;

    // Switchover: the old primary stops cleanly, the replica is promoted.
    n1.stop(StopMode::Fast).await.unwrap();
    n2.promote().await.expect("promote");
    let o2 = n2.observe().await;
    assert!(o2.is_primary());
    assert_eq!(o2.timeline, 2);
    assert_eq!(o2.history.first().map(|h| h.timeline), Some(1));
    let changes = n2
        .ensure_slots(&["n1".to_string(), "n2".to_string()])
        .await
        .unwrap();
    assert_eq!(changes.created, vec!["n1"]);
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
