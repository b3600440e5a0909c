//! The Patroni HA test plan on real 3-node clusters (etcd, PostgreSQL 15, HAProxy, a writer committing every 20 ms
//! through HAProxy the whole time). Each scenario asserts what the data must show, and records its figures
//! (time to a new primary, the longest gap between acknowledged writes, rows lost) in
//! `target/tmp/e2e-results.jsonl`, printed as it grows. Scenarios run one at a time.

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{lost_rows, prerequisites_or_skip, record, Cluster, Writer, FAST, SERIAL};
use serde_json::json;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

async fn post(url: &str, body: serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("POST");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// Writes for a while so the writer has a baseline before the fault.
async fn warm_up(w: &Writer) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !w.acked().is_empty(),
        "the writer got no write through HAProxy before the fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_to_a_named_candidate_loses_no_acknowledged_write() {
    let _g = serial();
    if !prerequisites_or_skip("switchover") {
        return;
    }
    let c = Cluster::start("switchover", 3, FAST).await;
    let old = c.primary().await.expect("a primary");
    let cand = (old + 1) % 3;
    let w = Writer::start(c.write_port).await;
    warm_up(&w).await;
    let t0 = Instant::now();
    let (code, body) = post(
        &format!("{}/switchover", c.nodes[old].api()),
        json!({"leader": c.nodes[old].name, "candidate": c.nodes[cand].name}),
    )
    .await;
    assert_eq!(
        code,
        200,
        "switchover answered {code}: {body}\n{}",
        c.dump_logs()
    );
    let (newp, took) = c
        .wait_new_primary(old, Duration::from_secs(60))
        .await
        .expect("no new primary");
    assert_eq!(
        newp, cand,
        "the switchover went to {} instead of {}",
        c.nodes[newp].name, c.nodes[cand].name
    );
    let rejoin = c
        .wait_replica(old, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("old primary did not rejoin\n{}", c.dump_logs()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    let acked = w.stop().await;
    let lost = lost_rows(&c, c.nodes[cand].pg_port, &acked).await;
    assert!(
        lost.is_empty(),
        "{} acknowledged rows lost in a switchover: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    record(
        "switchover",
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(),
               "rows_acked": acked.len(), "rows_lost": lost.len(), "ttl_s": FAST.ttl_s, "loop_wait_s": FAST.loop_wait_s}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_on_the_primary_restarts_in_place() {
    let _g = serial();
    if !prerequisites_or_skip("pg_sigkill") {
        return;
    }
    let c = Cluster::start("pgkill", 3, FAST).await;
    let p = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    warm_up(&w).await;
    let t0 = Instant::now();
    c.signal_postmaster(p, "KILL");
    // Back as primary on the same node: wait for the writer to get through again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let n0 = w.acked().len();
    while w.acked().len() < n0 + 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        c.primary().await,
        Some(p),
        "the leader changed after a PostgreSQL crash\n{}",
        c.dump_logs()
    );
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    let acked = w.stop().await;
    let lost = lost_rows(&c, c.nodes[p].pg_port, &acked).await;
    assert!(
        lost.is_empty(),
        "rows lost after a crash and restart in place: {lost:?}"
    );
    record(
        "postgres_sigkill_primary",
        json!({"write_gap_s": gap.as_secs_f64(), "rows_acked": acked.len(), "rows_lost": 0, "leader_changed": false}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_of_the_primary_daemon_hands_over_without_waiting_for_the_ttl() {
    let _g = serial();
    if !prerequisites_or_skip("graceful_stop") {
        return;
    }
    let mut c = Cluster::start("stop", 3, FAST).await;
    let old = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    warm_up(&w).await;
    let t0 = Instant::now();
    c.stop_daemon(old).await;
    assert!(
        c.nodes[old]
            .postmaster_pid()
            .map_or(true, |pid| !std::path::Path::new(&format!("/proc/{pid}"))
                .exists()),
        "PostgreSQL still runs after the daemon stopped"
    );
    let (newp, _) = c
        .wait_new_primary(old, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no new primary\n{}", c.dump_logs()));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(FAST.ttl_s),
        "the handover took {took:?}, as long as waiting for the ttl"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    let acked = w.stop().await;
    let lost = lost_rows(&c, c.nodes[newp].pg_port, &acked).await;
    assert!(
        lost.is_empty(),
        "rows lost in a graceful handover: {lost:?}"
    );
    // The node comes back as a replica.
    c.start_daemon(old);
    let rejoin = c
        .wait_replica(old, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("did not rejoin\n{}", c.dump_logs()));
    record(
        "graceful_stop_primary",
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(), "rows_lost": 0}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_primary_daemon_fails_over_after_the_ttl_and_the_node_rejoins() {
    let _g = serial();
    if !prerequisites_or_skip("daemon_sigkill") {
        return;
    }
    let mut c = Cluster::start("dkill", 3, FAST).await;
    let old = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    warm_up(&w).await;
    let t0 = Instant::now();
    c.kill_daemon(old);
    let (newp, took) = c
        .wait_new_primary(old, Duration::from_secs(FAST.ttl_s * 4))
        .await
        .unwrap_or_else(|| panic!("no failover after the daemon died\n{}", c.dump_logs()));
    // The orphaned PostgreSQL must not take writes any more (the fencer stopped it at the lease's end).
    let old_still_writable = match c.connect(c.nodes[old].pg_port).await {
        Ok(cl) => cl
            .query_one("SELECT NOT pg_is_in_recovery()", &[])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false),
        Err(_) => false,
    };
    assert!(
        !old_still_writable,
        "two primaries: the old one still accepts writes after the failover"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    c.start_daemon(old);
    let rejoin = c
        .wait_replica(old, Duration::from_secs(90))
        .await
        .unwrap_or_else(|| panic!("did not rejoin\n{}", c.dump_logs()));
    let acked = w.stop().await;
    let lost = lost_rows(&c, c.nodes[newp].pg_port, &acked).await;
    record(
        "daemon_sigkill_primary",
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(),
               "rows_acked": acked.len(), "rows_lost": lost.len(), "ttl_s": FAST.ttl_s}),
    );
    assert!(
        lost.len() < 100,
        "{} acknowledged rows lost (async replication may lose the last few)",
        lost.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_the_primary_daemon_fails_over_and_it_demotes_on_resume() {
    let _g = serial();
    if !prerequisites_or_skip("daemon_sigstop") {
        return;
    }
    let c = Cluster::start("dstop", 3, FAST).await;
    let old = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    warm_up(&w).await;
    let t0 = Instant::now();
    c.signal_daemon(old, "STOP");
    let found = c
        .wait_new_primary(old, Duration::from_secs(FAST.ttl_s * 4))
        .await;
    c.signal_daemon(old, "CONT");
    let (newp, took) = found
        .unwrap_or_else(|| panic!("no failover while the daemon was frozen\n{}", c.dump_logs()));
    let rejoin = c
        .wait_replica(old, Duration::from_secs(90))
        .await
        .unwrap_or_else(|| panic!("did not rejoin\n{}", c.dump_logs()));
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    let acked = w.stop().await;
    let lost = lost_rows(&c, c.nodes[newp].pg_port, &acked).await;
    record(
        "daemon_sigstop_primary",
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(),
               "rows_acked": acked.len(), "rows_lost": lost.len(), "ttl_s": FAST.ttl_s}),
    );
    assert!(lost.len() < 100, "{} acknowledged rows lost", lost.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_postgres_on_the_primary_is_fenced_and_a_replica_takes_over() {
    let _g = serial();
    if !prerequisites_or_skip("pg_sigstop") {
        return;
    }
    let c = Cluster::start("pgstop", 3, FAST).await;
    let old = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    warm_up(&w).await;
    let t0 = Instant::now();
    let pm = c.nodes[old].postmaster_pid().expect("postmaster pid");
    support_signal(pm, "STOP");
    // The daemon must not hang: its REST API keeps answering while PostgreSQL does not.
    let bound = Duration::from_secs(FAST.ttl_s + FAST.retry_timeout_s + 2 * FAST.loop_wait_s + 10);
    let found = c.wait_new_primary(old, bound).await;
    support_signal(pm, "CONT");
    let (newp, took) = found.unwrap_or_else(|| {
        panic!(
            "no new primary within {bound:?} of a hung PostgreSQL\n{}",
            c.dump_logs()
        )
    });
    let rejoin = c
        .wait_replica(old, Duration::from_secs(90))
        .await
        .unwrap_or_else(|| panic!("did not rejoin\n{}", c.dump_logs()));
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    let acked = w.stop().await;
    if std::env::var("E2E_VERBOSE").is_ok() {
        eprintln!("{}", c.dump_logs());
    }
    let lost = lost_rows(&c, c.nodes[newp].pg_port, &acked).await;
    record(
        "postgres_sigstop_primary",
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(),
               "rows_acked": acked.len(), "rows_lost": lost.len(), "retry_timeout_s": FAST.retry_timeout_s}),
    );
    assert!(lost.len() < 100, "{} acknowledged rows lost", lost.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_machine_crash_fails_over_and_the_node_returns_as_a_replica() {
    let _g = serial();
    if !prerequisites_or_skip("node_crash") {
        return;
    }
    let mut c = Cluster::start("crash", 3, FAST).await;
    let old = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    warm_up(&w).await;
    let t0 = Instant::now();
    c.crash_node(old);
    let (newp, took) = c
        .wait_new_primary(old, Duration::from_secs(FAST.ttl_s * 4))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no failover after the primary's machine died\n{}",
                c.dump_logs()
            )
        });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    c.start_daemon(old);
    let rejoin = c
        .wait_replica(old, Duration::from_secs(90))
        .await
        .unwrap_or_else(|| panic!("did not return\n{}", c.dump_logs()));
    let acked = w.stop().await;
    let lost = lost_rows(&c, c.nodes[newp].pg_port, &acked).await;
    record(
        "primary_machine_crash",
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(),
               "rows_acked": acked.len(), "rows_lost": lost.len(), "ttl_s": FAST.ttl_s}),
    );
    assert!(lost.len() < 100, "{} acknowledged rows lost", lost.len());
}

fn support_signal(pid: i32, sig: &str) {
    e2e_support::signal(pid, sig);
}
