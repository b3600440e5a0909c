//! A server that dies, one that hangs, and a parameter that waits for a restart.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{postmaster_pid, signal, sql, wait_for, World};
use ha_core::pg::{PgControl, PgRunState, StopMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_postmaster_is_observed_crashed_and_restarts_with_its_data() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.primary().await;
    sql(
        &n1,
        "CREATE TABLE t(v int); INSERT INTO t SELECT generate_series(1, 1000)",
    )
    .await;

    let pid = postmaster_pid(&n1.settings().data_dir).unwrap();
    signal(pid, libc::SIGKILL);
    wait_for(
        Duration::from_secs(10),
        "the crash to be observed",
        || async { n1.observe().await.run_state == Some(PgRunState::Crashed) },
    )
    .await;
    // Stopping a dead server is a no-op; it stays crashed (its pid file is still there).
    n1.stop(StopMode::Fast).await.unwrap();
    assert_eq!(n1.observe().await.run_state, Some(PgRunState::Crashed));

    // The backends notice their postmaster died and exit; then the server restarts through crash recovery.
    wait_for(
        Duration::from_secs(10),
        "the start after the crash",
        || async { n1.start_primary().await.is_ok() },
    )
    .await;
    let o = n1.observe().await;
    assert!(o.is_primary());
    assert_eq!(sql(&n1, "SELECT count(*) FROM t").await, ["1000"]);
    n1.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_of_a_killed_postmaster_is_noticed_at_once() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.primary().await;
    let waiting = tokio::spawn({
        let n1 = pg_control::PgCtl::new(n1.settings().clone()).await.unwrap();
        async move { PgControl::exited(&n1).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "exited() resolved while the server runs"
    );
    let pid = postmaster_pid(&n1.settings().data_dir).unwrap();
    let killed = Instant::now();
    signal(pid, libc::SIGKILL);
    tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the postmaster's exit was not noticed within 2 s")
        .unwrap();
    eprintln!("postmaster exit noticed after {:?}", killed.elapsed());
    // A server already gone: nothing to wait for.
    wait_for(
        Duration::from_secs(10),
        "the crash to be observed",
        || async { n1.observe().await.run_state == Some(PgRunState::Crashed) },
    )
    .await;
    tokio::time::timeout(Duration::from_millis(300), PgControl::exited(&n1))
        .await
        .expect("exited() waits although no server runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstopped_postmaster_is_unresponsive_within_the_timeout_and_fence_kills_its_backends() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let mut s = w.settings("n1");
    s.timeouts.query = Duration::from_millis(800);
    let n1 = pg_control::PgCtl::new(s).await.unwrap();
    n1.bootstrap().await.expect("bootstrap");
    sql(&n1, "CREATE TABLE t(v int)").await;

    // A client connected before the hang: its backend keeps serving while the postmaster is stopped.
    let (client, conn) = n1
        .local_config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(conn);

    let pid = postmaster_pid(&n1.settings().data_dir).unwrap();
    signal(pid, libc::SIGSTOP);
    let started = Instant::now();
    let o = PgControl::observe(&n1).await;
    let took = started.elapsed();
    assert_eq!(o.run_state, Some(PgRunState::Unresponsive));
    assert!(!o.is_running(), "a hung server is not healthy");
    assert!(o.is_alive(), "but it may still serve its clients");
    assert!(
        took < Duration::from_millis(800 + 700),
        "observe must return within the query timeout, took {took:?}"
    );
    client
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .expect("an existing backend of a stopped postmaster still takes writes");

    // A clean stop cannot work on a stopped postmaster: it fails in bounded time instead of hanging.
    let mut short = n1.settings().clone();
    short.timeouts.stop = Duration::from_secs(1);
    let impatient = pg_control::PgCtl::new(short).await.unwrap();
    let started = Instant::now();
    let err = PgControl::stop(&impatient, StopMode::Fast)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ha_core::pg::PgError::Timeout { .. }),
        "stop of a hung server: {err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    PgControl::fence(&n1).await.expect("fence");
    assert_eq!(n1.observe().await.run_state, Some(PgRunState::Crashed));
    assert!(
        client
            .batch_execute("INSERT INTO t VALUES (2)")
            .await
            .is_err(),
        "fencing killed the backend too"
    );
    conn_task.abort();

    n1.start_primary().await.expect("start after fencing");
    assert_eq!(sql(&n1, "SELECT array_agg(v) FROM t").await, ["{1}"]);
    n1.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_only_parameter_is_pending_until_restart() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.primary().await;
    assert_eq!(sql(&n1, "SHOW max_connections").await, ["100"]);

    let params = BTreeMap::from([
        ("max_connections".to_string(), "123".to_string()),
        ("work_mem".to_string(), "7MB".to_string()),
        // A cluster-wide value never moves a node's port.
        ("port".to_string(), "1".to_string()),
        // Patroni's own test config sets wal_keep_segments, which PostgreSQL 13+ no longer knows; and a name no
        // version knows. Written as they are, the server would refuse its configuration file.
        ("wal_keep_segments".to_string(), "100".to_string()),
        ("no_such_parameter".to_string(), "1".to_string()),
    ]);
    let change = PgControl::apply_parameters(&n1, &params, &Default::default())
        .await
        .unwrap();
    assert_eq!(change.pending_restart, vec!["max_connections"]);
    assert_eq!(
        sql(&n1, "SHOW work_mem").await,
        ["7MB"],
        "reloadable: applied at once"
    );
    let seen = n1.observe().await;
    assert_eq!(seen.pending_restart, vec!["max_connections"]);
    let (old, new) = &seen.pending_restart_values["max_connections"];
    assert_eq!(
        (old.as_str(), new.as_str()),
        (sql(&n1, "SHOW max_connections").await[0].as_str(), "123"),
        "Patroni's pending_restart_reason: the value in force and the one in the files"
    );
    assert_eq!(
        sql(&n1, "SHOW wal_keep_size").await,
        ["1600MB"],
        "wal_keep_segments translated"
    );

    n1.restart().await.expect("restart");
    assert_eq!(sql(&n1, "SHOW max_connections").await, ["123"]);
    assert_eq!(
        sql(&n1, "SHOW port").await,
        [n1.settings().port.to_string()]
    );
    assert!(n1.observe().await.pending_restart.is_empty());

    // The node's own parameters win over the cluster's, and can change at run time (the daemon re-read its file).
    let mut local = n1.settings().parameters.clone();
    local.insert("work_mem".into(), "9MB".into());
    n1.set_local_config(local, n1.settings().pg_hba.clone())
        .unwrap();
    n1.reload().await.unwrap();
    wait_for(Duration::from_secs(10), "the local work_mem", || async {
        sql(&n1, "SHOW work_mem").await == ["9MB"]
    })
    .await;

    // An immediate stop skips the shutdown checkpoint: the control file says it was not shut down cleanly.
    n1.stop(StopMode::Immediate).await.unwrap();
    assert_eq!(n1.observe().await.run_state, Some(PgRunState::Crashed));
    n1.start_primary()
        .await
        .expect("start after an immediate stop");
    assert_eq!(
        sql(&n1, "SHOW max_connections").await,
        ["123"],
        "the cluster-wide value survives"
    );
    n1.stop(StopMode::Fast).await.unwrap();
    assert_eq!(n1.observe().await.run_state, Some(PgRunState::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_cut_short_by_its_timeout_leaves_an_empty_dir_and_can_be_retried() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.primary().await;
    sql(
        &n1,
        "CREATE TABLE t AS SELECT generate_series(1, 100000) AS v",
    )
    .await;

    let mut s = w.settings("n2");
    s.timeouts.clone = Duration::from_millis(30);
    let hasty = pg_control::PgCtl::new(s.clone()).await.unwrap();
    let err = hasty.clone_from(&common::upstream(&n1)).await.unwrap_err();
    assert!(matches!(err, pg_control::Error::Timeout { .. }), "{err:?}");
    let left: Vec<_> = std::fs::read_dir(&s.data_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the partial copy is gone: {left:?}");

    s.timeouts.clone = Duration::from_secs(60);
    let n2 = pg_control::PgCtl::new(s).await.unwrap();
    n2.clone_from(&common::upstream(&n1))
        .await
        .expect("the retry");
    n2.start_replica(Some(&common::upstream(&n1)))
        .await
        .unwrap();
    assert_eq!(sql(&n2, "SELECT count(*) FROM t").await, ["100000"]);
    n2.stop(StopMode::Fast).await.unwrap();
    n1.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_that_refuses_connections_is_observed_starting_not_hung() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let n1 = w.primary().await;
    let mut s = w.settings("n2");
    // With hot_standby off a standby answers every connection with "not accepting connections" (57P03).
    s.parameters.insert("hot_standby".into(), "off".into());
    let n2 = pg_control::PgCtl::new(s).await.unwrap();
    n2.clone_from(&common::upstream(&n1)).await.unwrap();
    n2.start_replica(Some(&common::upstream(&n1)))
        .await
        .expect("pg_ctl -w returns once the standby is consistent");
    let started = Instant::now();
    let o = n2.observe().await;
    assert_eq!(o.run_state, Some(PgRunState::Starting));
    assert!(o.in_recovery);
    assert!(o.is_alive() && !o.is_running());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a refusal is quick, no timeout waited out"
    );
    wait_for(
        Duration::from_secs(20),
        "n2 to stream with hot_standby off",
        || async { n1.observe().await.replicas == ["n2"] },
    )
    .await;
    n2.stop(StopMode::Fast).await.unwrap();
    n1.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_hung_postmaster_stays_unresponsive_after_its_listen_queue_fills() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let mut s = w.settings("n1");
    // A small listen queue (its length follows max_connections) so a few dozen observations fill it.
    s.parameters.insert("max_connections".into(), "5".into());
    s.parameters
        .insert("superuser_reserved_connections".into(), "1".into());
    let n1 = pg_control::PgCtl::new(s.clone()).await.unwrap();
    n1.bootstrap().await.expect("bootstrap");
    s.timeouts.query = Duration::from_millis(50);
    let n1 = pg_control::PgCtl::new(s).await.unwrap();
    let pid = postmaster_pid(&n1.settings().data_dir).unwrap();
    signal(pid, libc::SIGSTOP);
    // PostgreSQL's queue is 2 × MaxBackends (5 + autovacuum + workers + wal senders = 27 here): 54 pending
    // connections, never accepted, fill it; after that a connect is refused at once with EAGAIN.
    let mut refused_at_once = 0;
    for i in 0..80 {
        let started = Instant::now();
        let o = n1.observe().await;
        assert_eq!(
            o.run_state,
            Some(PgRunState::Unresponsive),
            "observation {i} of a hung server"
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(50 + 500),
            "observation {i} took {took:?}"
        );
        if took < Duration::from_millis(25) {
            refused_at_once += 1;
        }
    }
    assert!(
        refused_at_once > 0,
        "the listen queue never filled: the test proves nothing"
    );
    n1.fence().await.unwrap();
    assert_eq!(n1.observe().await.run_state, Some(PgRunState::Crashed));
}

/// A leader's start after a crash may take longer than the HA loop can wait without renewing its lock: the start
/// returns after `primary_start_wait` with the server still starting, observed `Starting` (or already up), and the
/// server comes up on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_start_longer_than_its_wait_returns_with_the_server_starting() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let mut s = w.settings("n1");
    s.timeouts.primary_start_wait = Duration::ZERO;
    let n1 = pg_control::PgCtl::new(s).await.expect("settings");
    n1.bootstrap().await.expect("bootstrap");
    sql(
        &n1,
        "CREATE TABLE t(v int); INSERT INTO t SELECT generate_series(1, 100000)",
    )
    .await;
    common::kill_postmaster(&n1);
    wait_for(
        Duration::from_secs(10),
        "the crash to be observed",
        || async { n1.observe().await.run_state == Some(PgRunState::Crashed) },
    )
    .await;

    let began = Instant::now();
    wait_for(
        Duration::from_secs(10),
        "the start after the crash (the backends exit first)",
        || async { n1.start_primary().await.is_ok() },
    )
    .await;
    let state = n1.observe().await.run_state;
    assert!(
        matches!(state, Some(PgRunState::Starting | PgRunState::Running)),
        "{state:?} after {:?}",
        began.elapsed()
    );
    wait_for(Duration::from_secs(30), "crash recovery to end", || async {
        n1.observe().await.is_primary()
    })
    .await;
    assert_eq!(sql(&n1, "SELECT count(*) FROM t").await, ["100000"]);
    n1.stop(StopMode::Fast).await.unwrap();
}
