//! An old primary rejoining after a switchover, as the 3-node end-to-end run does it (real PostgreSQL 15):
//! recovery-sensitive parameters lowered cluster-wide but not yet restarted, a standby with no upstream in
//! between, and pg_rewind of a target that was stopped (or crashed) in recovery.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{sql, upstream, wait_for, World};
use ha_core::decision::rejoin::{self, Rejoin};
use ha_core::model::{Cluster, HistoryEntry, Leader, Member, MemberData, Versioned};
use ha_core::pg::{Lineage, PgRunState, StopMode, TimelineSwitch};

fn lowered() -> BTreeMap<String, String> {
    BTreeMap::from([("max_connections".to_string(), "50".to_string())])
}

/// primary → stop(Fast) → start_replica(None) → stop(Fast) → start_replica(Some(new primary promoted from its
/// replica)), with max_connections lowered cluster-wide from 100 to 50 and never restarted; then the same node
/// stopped and rewound, and started as a replica again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_primary_rejoins_with_lowered_max_connections_through_a_standby_without_upstream() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let (n1, n2) = w.primary_and_replica("from n1").await;
    assert_eq!(sql(&n1, "SHOW max_connections").await, ["100"]);

    // The cluster-wide configuration lowers max_connections; nobody restarts.
    let p1 = n1.apply_parameters(&lowered()).await.unwrap();
    assert!(p1.contains(&"max_connections".to_string()), "{p1:?}");
    let p2 = n2.apply_parameters(&lowered()).await.unwrap();
    assert!(
        p2.contains(&"max_connections".to_string()),
        "the standby runs with 100 while 50 is configured: {p2:?}"
    );
    assert!(n2
        .observe()
        .await
        .pending_restart
        .contains(&"max_connections".to_string()));

    // Switchover: n1 stops cleanly and waits as a standby with no upstream; n2 is promoted.
    n1.stop(StopMode::Fast).await.unwrap();
    n1.start_replica(None)
        .await
        .expect("start as a standby with no upstream despite max_connections = 50 < 100");
    assert_eq!(sql(&n1, "SHOW max_connections").await, ["100"]);
    let o1 = n1.observe().await;
    assert!(o1.in_recovery);
    assert!(
        o1.pending_restart.contains(&"max_connections".to_string()),
        "configured 50, running 100: still pending ({:?})",
        o1.pending_restart
    );
    n2.promote().await.expect("promote n2");
    n2.apply_slots(&slot_for("n1")).await.unwrap();
    sql(&n2, "INSERT INTO t VALUES ('from n2')").await;

    // n1 follows n2.
    n1.stop(StopMode::Fast).await.unwrap();
    n1.start_replica(Some(&upstream(&n2)))
        .await
        .expect("start as n2's replica");
    wait_for(Duration::from_secs(30), "n1 to stream from n2", || async {
        let o = n1.observe().await;
        o.is_replica() && o.streaming && o.timeline == 2
    })
    .await;
    wait_for(Duration::from_secs(20), "n2's row on n1", || async {
        sql(&n1, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await == ["from n1,from n2"]
    })
    .await;

    // A running standby that follows keeps its raised settings too.
    n1.follow(&upstream(&n2)).await.expect("follow");
    let conf = std::fs::read_to_string(n1.settings().data_dir.join("postgresql.conf")).unwrap();
    assert!(conf.contains("max_connections = '100'"), "{conf}");

    // Rewinding such a node (stopped cleanly in recovery, standby.signal present) works and leaves it n2's
    // standby.
    n1.stop(StopMode::Fast).await.unwrap();
    n1.rewind(&upstream(&n2)).await.expect("pg_rewind");
    let o1 = n1.observe().await;
    assert_eq!(o1.run_state, Some(PgRunState::Stopped));
    assert!(o1.in_recovery, "still a standby after the rewind");
    assert_eq!(o1.upstream.as_deref(), Some("n2"));
    n1.start_replica(Some(&upstream(&n2)))
        .await
        .expect("start the rewound replica");
    sql(&n2, "INSERT INTO t VALUES ('after rewind')").await;
    wait_for(Duration::from_secs(20), "the new row on n1", || async {
        n1.observe().await.streaming && sql(&n1, "SELECT count(*) FROM t").await == ["3"]
    })
    .await;

    // Once n2 restarts with 50, its standby can too and nothing is pending any more.
    n2.restart().await.expect("restart n2");
    assert_eq!(sql(&n2, "SHOW max_connections").await, ["50"]);
    sql(&n2, "INSERT INTO t VALUES ('after n2 restart'); CHECKPOINT").await;
    wait_for(
        Duration::from_secs(20),
        "n1 to replay past n2's restart",
        || async { sql(&n1, "SELECT count(*) FROM t").await == ["4"] },
    )
    .await;
    sql(&n1, "CHECKPOINT").await;
    n1.restart().await.expect("restart n1");
    assert_eq!(sql(&n1, "SHOW max_connections").await, ["50"]);
    assert!(!n1
        .observe()
        .await
        .pending_restart
        .contains(&"max_connections".to_string()));

    n1.stop(StopMode::Fast).await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();
}

/// A diverged old primary that is then started as a standby with no upstream and crashes while in recovery
/// (standby.signal present, control file "in archive recovery"): pg_rewind's crash recovery runs
/// `postgres --single`, which refuses standby mode unless the signal files are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_that_crashed_in_recovery_is_rewound() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let (n1, n2) = w.primary_and_replica("replicated").await;

    // n2 stops; n1 writes what n2 never sees, then becomes a standby with no upstream.
    n2.stop(StopMode::Fast).await.unwrap();
    sql(&n1, "INSERT INTO t VALUES ('lost on n1'); CHECKPOINT").await;
    n1.stop(StopMode::Fast).await.unwrap();
    n1.start_replica(None)
        .await
        .expect("standby with no upstream");
    // n2 takes over on timeline 2.
    n2.start_primary().await.expect("n2 as primary");
    sql(&n2, "INSERT INTO t VALUES ('kept on n2')").await;
    n2.apply_slots(&slot_for("n1")).await.unwrap();

    // n1 crashes in recovery.
    n1.stop(StopMode::Immediate).await.unwrap();
    let o1 = n1.observe().await;
    assert_eq!(o1.run_state, Some(PgRunState::Crashed));
    assert!(n1.settings().data_dir.join("standby.signal").exists());

    n1.rewind(&upstream(&n2))
        .await
        .expect("pg_rewind of a standby that crashed in recovery");
    assert!(
        n1.settings().data_dir.join("standby.signal").exists(),
        "the rewound node is configured as a standby again"
    );
    assert!(!n1.settings().data_dir.join("recovery.signal").exists());
    let o1 = n1.observe().await;
    assert!(o1.in_recovery);
    assert_eq!(o1.upstream.as_deref(), Some("n2"));
    n1.start_replica(Some(&upstream(&n2)))
        .await
        .expect("start the rewound replica");
    sql(&n2, "INSERT INTO t VALUES ('after rewind')").await;
    wait_for(
        Duration::from_secs(30),
        "n1 to have exactly n2's rows",
        || async {
            let o = n1.observe().await;
            o.is_replica()
                && o.streaming
                && sql(&n1, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await
                    == ["after rewind,kept on n2,replicated"]
        },
    )
    .await;

    n1.stop(StopMode::Fast).await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();
}

/// An asynchronous standby that replayed WAL the promoted one never had: while it runs, PostgreSQL refuses to
/// stream the new timeline ("forked off ... before current recovery point"). The running-standby rejoin check must
/// call it diverged (it used to wait forever "following" the leader); stopped, the stopped check agrees, and
/// pg_rewind brings it onto the new leader's history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_standby_that_replayed_past_the_fork_is_found_diverged_and_rewound() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.node("n1").await;
    let n2 = w.node("n2").await;
    let n3 = w.node("n3").await;
    n1.bootstrap().await.expect("bootstrap");
    for n in [&n2, &n3] {
        n.clone_from(&upstream(&n1)).await.expect("clone");
        n.start_replica(Some(&upstream(&n1))).await.unwrap();
    }
    sql(
        &n1,
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('replicated')",
    )
    .await;
    for n in [&n2, &n3] {
        common::wait_rows(n, 1).await;
    }

    // n2 falls behind; n3 replays rows n2 never sees; n1 dies; n2 is promoted on timeline 2.
    n2.stop(StopMode::Fast).await.unwrap();
    sql(
        &n1,
        "INSERT INTO t SELECT 'only n1 and n3 ' || g FROM generate_series(1, 1000) g",
    )
    .await;
    common::wait_rows(&n3, 1001).await;
    common::kill_postmaster(&n1);
    n2.start_primary().await.expect("n2 as primary");
    let fork = n2
        .observe()
        .await
        .end_of(1)
        .expect("n2's history of timeline 1");
    n2.apply_slots(&slot_for("n3")).await.unwrap();
    sql(&n2, "INSERT INTO t VALUES ('on n2')").await;

    // The cluster as the DCS shows it: n2 leads on timeline 2, timeline 1 ended at the fork.
    let cluster = Cluster {
        leader: Some(Leader {
            name: "n2".into(),
            version: 1,
            session: None,
        }),
        members: vec![Member {
            name: "n2".into(),
            data: MemberData {
                conn_url: Some(n2.settings().conn_url()),
                role: Some("primary".into()),
                state: Some("running".into()),
                timeline: Some(2),
                ..Default::default()
            },
            version: 1,
        }],
        history: Some(Versioned {
            value: vec![HistoryEntry::new(1, fork, "", "", "n2")],
            version: 1,
        }),
        ..Default::default()
    };
    let leader = &rejoin::LeaderHistory {
        cluster: &cluster,
        leader: cluster.member("n2").unwrap(),
    };

    // n3, still running, is pointed at n2 (what the Follow action does) and cannot stream from it.
    n3.follow(&upstream(&n2)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let o3 = n3.observe().await;
    assert_eq!(o3.run_state, Some(PgRunState::Running));
    assert!(o3.in_recovery && !o3.streaming, "{o3:?}");
    assert_eq!(o3.timeline, 1);
    assert!(
        o3.replay_lsn.unwrap() > fork,
        "replayed {:X} <= fork {fork:X}",
        o3.replay_lsn.unwrap()
    );
    match rejoin::check_running(&o3, leader) {
        Rejoin::Diverged(why) => assert!(why.contains("past the end of timeline 1"), "{why}"),
        Rejoin::Follow => {
            panic!("a running standby past the fork was judged able to follow: {o3:?}")
        }
    }

    // A standby cluster's leader has no `history` key of its source's cluster: it asks the source itself. n2's
    // answer is the same lineage, and the same verdict.
    let lineage = n3
        .source_lineage(&upstream(&n2))
        .await
        .expect("n2 answers with its timeline history");
    assert_eq!(
        lineage,
        Lineage {
            timeline: 2,
            switches: vec![TimelineSwitch {
                timeline: 1,
                lsn: fork
            }],
        }
    );
    match rejoin::check_running(&o3, &lineage) {
        Rejoin::Diverged(why) => assert!(why.contains("in the source's history"), "{why}"),
        Rejoin::Follow => panic!("judged able to follow by the source's lineage: {o3:?}"),
    }

    // What the decision does next: stop it, find it diverged again from its control data, rewind, follow.
    n3.stop(StopMode::Fast).await.unwrap();
    let stopped = n3.observe().await;
    assert!(
        matches!(rejoin::check(&stopped, leader), Rejoin::Diverged(_)),
        "{stopped:?}"
    );
    n3.rewind(&upstream(&n2))
        .await
        .expect("pg_rewind of the diverged standby");
    n3.start_replica(Some(&upstream(&n2))).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "n3 to stream from n2 with exactly n2's rows",
        || async {
            let o = n3.observe().await;
            o.streaming
                && o.timeline == 2
                && sql(&n3, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await
                    == ["on n2,replicated"]
        },
    )
    .await;
    assert!(matches!(
        rejoin::check_running(&n3.observe().await, leader),
        Rejoin::Follow
    ));

    for n in [&n3, &n2] {
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

/// demote-cluster with archiving on: before the old primary starts as the standby leader of another cluster, the
/// segment holding its shutdown checkpoint is archived (Patroni's `archive_shutdown_checkpoint_wal`), so a cluster
/// replaying this archive reaches the checkpoint before it is promoted and forks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_demoted_to_a_standby_cluster_archives_its_shutdown_checkpoint() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let archive = w.path().join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    if common::is_root() {
        let (uid, gid) = common::postgres_ids();
        std::os::unix::fs::chown(&archive, Some(uid), Some(gid)).unwrap();
    }
    let n1 = w.primary().await;
    let archiving = BTreeMap::from([
        ("archive_mode".to_string(), "on".to_string()),
        (
            "archive_command".to_string(),
            format!("test ! -f {0}/%f && cp %p {0}/%f", archive.display()),
        ),
    ]);
    n1.apply_parameters(&archiving).await.unwrap();
    n1.restart().await.unwrap();
    sql(&n1, "CREATE TABLE before_demotion(v int)").await;
    let listing = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&archive)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    n1.stop(StopMode::Fast).await.unwrap();
    let before = listing();
    let source = ha_core::pg::Upstream {
        name: "batman1".into(),
        conn_url: String::new(),
        remote: Some(ha_core::pg::RemoteSource {
            restore_command: Some(format!("cp {}/%f %p", archive.display())),
            ..Default::default()
        }),
    };
    n1.start_replica(Some(&source))
        .await
        .expect("starts as a standby leader");
    let added: Vec<String> = listing()
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(
        added.len(),
        1,
        "the shutdown checkpoint's segment, archived: {added:?} (before: {before:?})"
    );
    assert!(
        added[0].len() == 24 && added[0].chars().all(|c| c.is_ascii_hexdigit()),
        "{added:?}"
    );
    // A standby's clean stop has nothing of its own to archive.
    n1.stop(StopMode::Fast).await.unwrap();
    let before = listing();
    n1.start_replica(Some(&source)).await.unwrap();
    assert_eq!(listing(), before, "nothing archived for a standby's stop");
}
