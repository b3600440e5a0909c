//! The Patroni HA test plan on real 3-node clusters (etcd, PostgreSQL 15, HAProxy, a writer committing every 20 ms
//! through HAProxy the whole time). Each scenario asserts what the data must show, and records its figures
//! (time to a new primary, the longest gap between acknowledged writes, rows lost) in
//! `target/tmp/e2e-results.jsonl`, printed as it grows. Scenarios run one at a time.

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{lost_rows, prerequisites_or_skip, record, Cluster, Writer, FAST, SERIAL};
use serde_json::{json, Value};

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

async fn post(url: &str, body: Value) -> (u16, String) {
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

/// A 3-node cluster with the writer running, and the primary at the start.
async fn cluster_with_writer(test: &str) -> Option<(Cluster, Writer, usize)> {
    if !prerequisites_or_skip(test) {
        return None;
    }
    let c = Cluster::start(test, 3, FAST).await;
    let p = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !w.acked().is_empty(),
        "the writer got no write through HAProxy before the fault"
    );
    Some((c, w, p))
}

async fn failed_over(c: &Cluster, old: usize, within: Duration) -> (usize, Duration) {
    c.wait_new_primary(old, within)
        .await
        .unwrap_or_else(|| panic!("no new primary within {within:?}\n{}", c.dump_logs()))
}

async fn rejoined(c: &Cluster, node: usize) -> Duration {
    c.wait_replica(node, Duration::from_secs(90))
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} did not come back as a replica\n{}",
                c.nodes[node].name,
                c.dump_logs()
            )
        })
}

/// Waits until writes flow again and returns the longest gap since the fault.
async fn write_gap(c: &Cluster, w: &Writer, fault_at: Instant) -> Duration {
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
    w.longest_gap_since(fault_at)
}

/// Stops the writer, counts acknowledged rows missing on `primary`, records the figures and checks the losses.
async fn finish(
    c: &Cluster,
    w: Writer,
    primary: usize,
    scenario: &str,
    mut figures: Value,
    max_lost: usize,
) {
    let acked = w.stop().await;
    let lost = lost_rows(c, c.nodes[primary].pg_port, &acked).await;
    figures["rows_acked"] = acked.len().into();
    figures["rows_lost"] = lost.len().into();
    figures["ttl_s"] = FAST.ttl_s.into();
    figures["loop_wait_s"] = FAST.loop_wait_s.into();
    record(scenario, figures);
    assert!(
        lost.len() <= max_lost,
        "{scenario}: {} acknowledged rows lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

/// Async replication may lose the last few commits when a primary dies; a switchover or a restart must lose none.
const FEW_ROWS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_to_a_named_candidate_loses_no_acknowledged_write() {
    let _g = serial();
    let Some((c, w, old)) = cluster_with_writer("switchover").await else {
        return;
    };
    let cand = (old + 1) % 3;
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
    let (newp, took) = failed_over(&c, old, Duration::from_secs(60)).await;
    assert_eq!(
        newp, cand,
        "the switchover went to {} instead of {}",
        c.nodes[newp].name, c.nodes[cand].name
    );
    let rejoin = rejoined(&c, old).await;
    let gap = write_gap(&c, &w, t0).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    finish(&c, w, cand, "switchover", figures, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_on_the_primary_restarts_in_place() {
    let _g = serial();
    let Some((c, w, p)) = cluster_with_writer("pgkill").await else {
        return;
    };
    let t0 = Instant::now();
    c.signal_postmaster(p, "KILL");
    let gap = write_gap(&c, &w, t0).await;
    assert_eq!(
        c.primary().await,
        Some(p),
        "the leader changed after a PostgreSQL crash\n{}",
        c.dump_logs()
    );
    finish(
        &c,
        w,
        p,
        "postgres_sigkill_primary",
        json!({"write_gap_s": gap.as_secs_f64(), "leader_changed": false}),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_postgres_on_the_primary_is_fenced_and_a_replica_takes_over() {
    let _g = serial();
    let Some((c, w, old)) = cluster_with_writer("pgstop").await else {
        return;
    };
    let t0 = Instant::now();
    let pm = c.nodes[old].postmaster_pid().expect("postmaster pid");
    e2e_support::signal(pm, "STOP");
    // The daemon must not hang: it fences its hung PostgreSQL after retry_timeout and releases the lock.
    let bound = Duration::from_secs(FAST.ttl_s + FAST.retry_timeout_s + 2 * FAST.loop_wait_s + 10);
    let found = c.wait_new_primary(old, bound).await;
    e2e_support::signal(pm, "CONT");
    let (newp, took) = found.unwrap_or_else(|| {
        panic!(
            "no new primary within {bound:?} of a hung PostgreSQL\n{}",
            c.dump_logs()
        )
    });
    let rejoin = rejoined(&c, old).await;
    let gap = write_gap(&c, &w, t0).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(), "retry_timeout_s": FAST.retry_timeout_s});
    finish(&c, w, newp, "postgres_sigstop_primary", figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_of_the_primary_daemon_hands_over_without_waiting_for_the_ttl() {
    let _g = serial();
    let Some((mut c, w, old)) = cluster_with_writer("stop").await else {
        return;
    };
    let t0 = Instant::now();
    c.stop_daemon(old).await;
    assert!(
        c.nodes[old]
            .postmaster_pid()
            .map_or(true, |pid| !std::path::Path::new(&format!("/proc/{pid}"))
                .exists()),
        "PostgreSQL still runs after the daemon stopped"
    );
    let (newp, _) = failed_over(&c, old, Duration::from_secs(30)).await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(FAST.ttl_s),
        "the handover took {took:?}, as long as waiting for the ttl"
    );
    let gap = write_gap(&c, &w, t0).await;
    c.start_daemon(old);
    let rejoin = rejoined(&c, old).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    finish(&c, w, newp, "graceful_stop_primary", figures, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_primary_daemon_fails_over_after_the_ttl_and_the_node_rejoins() {
    let _g = serial();
    let Some((mut c, w, old)) = cluster_with_writer("dkill").await else {
        return;
    };
    let t0 = Instant::now();
    c.kill_daemon(old);
    let (newp, took) = failed_over(&c, old, Duration::from_secs(FAST.ttl_s * 4)).await;
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
    let gap = write_gap(&c, &w, t0).await;
    c.start_daemon(old);
    let rejoin = rejoined(&c, old).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    finish(&c, w, newp, "daemon_sigkill_primary", figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_the_primary_daemon_fails_over_and_it_demotes_on_resume() {
    let _g = serial();
    let Some((c, w, old)) = cluster_with_writer("dstop").await else {
        return;
    };
    let t0 = Instant::now();
    c.signal_daemon(old, "STOP");
    let found = c
        .wait_new_primary(old, Duration::from_secs(FAST.ttl_s * 4))
        .await;
    c.signal_daemon(old, "CONT");
    let (newp, took) = found
        .unwrap_or_else(|| panic!("no failover while the daemon was frozen\n{}", c.dump_logs()));
    let rejoin = rejoined(&c, old).await;
    let gap = write_gap(&c, &w, t0).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    finish(&c, w, newp, "daemon_sigstop_primary", figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_machine_crash_fails_over_and_the_node_returns_as_a_replica() {
    let _g = serial();
    let Some((mut c, w, old)) = cluster_with_writer("crash").await else {
        return;
    };
    let t0 = Instant::now();
    c.crash_node(old);
    let (newp, took) = failed_over(&c, old, Duration::from_secs(FAST.ttl_s * 4)).await;
    let gap = write_gap(&c, &w, t0).await;
    c.start_daemon(old);
    let rejoin = rejoined(&c, old).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    finish(&c, w, newp, "primary_machine_crash", figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_of_one_etcd_member_of_three_changes_nothing() {
    let _g = serial();
    if !prerequisites_or_skip("etcd_member_loss") {
        return;
    }
    let mut c = Cluster::start_with_etcd("etcdloss", 3, FAST, 3).await;
    let p = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    if let e2e_support::Etcd::Members(m) = &mut c.etcd {
        m.stop(0);
    }
    // Three ttls with one member down: the lock is renewed through the other two, nobody fails over.
    tokio::time::sleep(Duration::from_secs(3 * FAST.ttl_s)).await;
    assert_eq!(
        c.primary().await,
        Some(p),
        "the leader changed after losing one etcd member\n{}",
        c.dump_logs()
    );
    let gap = write_gap(&c, &w, t0).await;
    assert!(
        gap < Duration::from_secs(1),
        "writes stalled {gap:?} after losing one etcd member"
    );
    finish(
        &c,
        w,
        p,
        "etcd_member_loss",
        json!({"write_gap_s": gap.as_secs_f64(), "leader_changed": false}),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_joins_with_the_data_and_the_cluster_wide_parameters_and_serves_reads() {
    let _g = serial();
    if !prerequisites_or_skip("new_replica") {
        return;
    }
    let mut c = Cluster::start_some("join", 3, 2, FAST, 1).await;
    let p = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    assert!(
        w.wait_progress(50, Duration::from_secs(30)).await,
        "no writes before the join"
    );
    let t0 = Instant::now();
    c.start_daemon(2);
    let joined = rejoined(&c, 2).await;
    // Cloned with the data written before, and streaming what is written since.
    let acked = w.acked();
    let newest = acked.last().map(|(id, _)| *id).expect("writes");
    let replica = c
        .connect(c.nodes[2].pg_port)
        .await
        .expect("connect to the new replica");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = replica
            .query_one("SELECT count(*) FROM e2e_writes WHERE id <= $1", &[&newest])
            .await
            .expect("count")
            .get(0);
        if n == newest {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new replica has {n} of the first {newest} rows after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The cluster-wide parameters from the DCS (bootstrap.dcs) reach it within a loop of its start.
    let deadline = Instant::now() + Duration::from_secs(2 * FAST.loop_wait_s + 10);
    loop {
        let keep: String = replica
            .query_one("SHOW wal_keep_size", &[])
            .await
            .expect("SHOW")
            .get(0);
        if keep == "256MB" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new replica still has wal_keep_size {keep}, not the cluster-wide 256MB"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // HAProxy's replica frontend reaches it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reached = false;
    while !reached && Instant::now() < deadline {
        if let Ok(cl) = c.connect(c.read_port).await {
            if let Ok(row) = cl.query_one("SELECT inet_server_port()", &[]).await {
                reached = row.get::<_, Option<i32>>(0) == Some(i32::from(c.nodes[2].pg_port));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reached,
        "HAProxy's replica frontend never reached the new replica\n{}",
        c.dump_logs()
    );
    let gap = w.longest_gap_since(t0);
    finish(
        &c,
        w,
        p,
        "new_replica_joins",
        json!({"join_s": joined.as_secs_f64(), "write_gap_s": gap.as_secs_f64()}),
        0,
    )
    .await;
}
