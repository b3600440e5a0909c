//! Quorum commit on a real cluster (`synchronous_mode: quorum`, strict; etcd, PostgreSQL 15, HAProxy, a writer
//! committing every 20 ms through HAProxy the whole time). One cluster start, several checks in sequence: both
//! replicas become quorum standbys (REST, metrics, `hactl list`), a switchover through `POST /switchover` and one
//! through the CLI, a crash of the primary's machine, every replica stopped (a commit waits, acknowledged only once
//! one returns), a network partition of the primary with a client on its own machine. Not one acknowledged row may
//! be missing from the final primary.

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::scenario::{cluster_with_writer_as, failed_over, post, rejoined, serial};
use e2e_support::{finish, lost_rows, write_gap, Cluster, Partition, Spec, Writer};
use serde_json::json;

/// Waits until every running node but `leader` answers `/quorum` 200 and the `sync` key names them all.
async fn quorum_standbys(c: &Cluster, leader: usize, running: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut missing = Vec::new();
        for &i in running.iter().filter(|i| **i != leader) {
            if c.rest(i, "/quorum").await.map(|(code, _)| code) != Some(200) {
                missing.push(c.nodes[i].name.clone());
            }
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not quorum standbys after 60 s: {missing:?}\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metrics(c: &Cluster, i: usize) -> String {
    c.http
        .get(format!("{}/metrics", c.nodes[i].api()))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_commit_loses_no_acknowledged_write_through_switchovers_a_crash_and_a_partition() {
    let _g = serial();
    let scenario = "quorum_commit";
    if !Partition::available(scenario) {
        return;
    }
    let Some((mut c, w, first)) = cluster_with_writer_as(Spec::new(scenario).quorum()).await else {
        return;
    };
    let all = [0, 1, 2];
    quorum_standbys(&c, first, &all).await;
    let replica = (first + 1) % 3;
    let text = metrics(&c, replica).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("patroni_quorum_standby{") && l.ends_with(" 1")),
        "{} does not report itself a quorum standby:\n{text}",
        c.nodes[replica].name
    );
    let (ok, listed) = c.ctl(first, &["list"]);
    assert!(ok && listed.contains("Quorum Standby"), "{listed}");
    assert_eq!(
        c.rest(first, "/read-only-quorum")
            .await
            .map(|(code, _)| code),
        Some(200)
    );

    // A switchover through the REST API to a named quorum standby.
    let t0 = Instant::now();
    let (code, body) = post(
        &format!("{}/switchover", c.nodes[first].api()),
        json!({"leader": c.nodes[first].name, "candidate": c.nodes[replica].name}),
    )
    .await;
    assert_eq!(
        code,
        200,
        "switchover answered {code}: {body}\n{}",
        c.dump_logs()
    );
    let (p, took_rest) = failed_over(&c, first, Duration::from_secs(60)).await;
    assert_eq!(
        p,
        replica,
        "the switchover went to {}\n{}",
        c.nodes[p].name,
        c.dump_logs()
    );
    rejoined(&c, first).await;
    let gap_rest = write_gap(&c, &w, t0).await;
    quorum_standbys(&c, p, &all).await;

    // A switchover through the CLI.
    let cand = (p + 1) % 3;
    let t0 = Instant::now();
    let (ok, out) = c.ctl(
        p,
        &[
            "switchover",
            "--leader",
            &c.nodes[p].name,
            "--candidate",
            &c.nodes[cand].name,
            "--force",
        ],
    );
    assert!(ok, "hactl switchover: {out}\n{}", c.dump_logs());
    let (p2, took_cli) = failed_over(&c, p, Duration::from_secs(60)).await;
    assert_eq!(
        p2,
        cand,
        "the CLI switchover went to {}\n{}",
        c.nodes[p2].name,
        c.dump_logs()
    );
    rejoined(&c, p).await;
    let gap_cli = write_gap(&c, &w, t0).await;
    quorum_standbys(&c, p2, &all).await;

    // The primary's machine dies: a quorum standby takes over with the votes of the other.
    let t0 = Instant::now();
    c.crash_node(p2);
    let (p3, took_crash) = failed_over(&c, p2, Duration::from_secs(c.timing.ttl_s * 4)).await;
    let gap_crash = write_gap(&c, &w, t0).await;
    c.start_daemon(p2);
    rejoined(&c, p2).await;
    quorum_standbys(&c, p3, &all).await;

    // Strict: with every replica stopped a commit waits; it is acknowledged once one replica is back.
    let others: Vec<usize> = all.iter().copied().filter(|i| *i != p3).collect();
    for &i in &others {
        c.stop_daemon(i).await;
    }
    let direct = c
        .connect(c.nodes[p3].pg_port)
        .await
        .expect("connect to the primary");
    let waiting = tokio::spawn(async move {
        direct
            .execute("INSERT INTO e2e_writes (id) VALUES (2000000000)", &[])
            .await
            .map(|_| Instant::now())
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !waiting.is_finished(),
        "a commit was acknowledged with every replica stopped\n{}",
        c.dump_logs()
    );
    let back = Instant::now();
    c.start_daemon(others[0]);
    let acked_at = tokio::time::timeout(Duration::from_secs(90), waiting)
        .await
        .unwrap_or_else(|_| panic!("the waiting commit never returned\n{}", c.dump_logs()))
        .expect("join")
        .expect("the waiting commit failed");
    let strict_wait = acked_at.duration_since(back);
    c.start_daemon(others[1]);
    rejoined(&c, others[0]).await;
    rejoined(&c, others[1]).await;
    quorum_standbys(&c, p3, &all).await;

    // A partition of the primary, with a client on its own machine (unix socket): what it got acknowledged before
    // the cut is on the new primary; after the cut its commits wait for standbys it cannot reach.
    let local = Writer::start_at(c.nodes[p3].socket(), 1_000_000_000).await;
    assert!(
        local.wait_progress(25, Duration::from_secs(10)).await,
        "the local writer got nothing through"
    );
    let t0 = Instant::now();
    let cut = Partition::cut(&c, p3);
    let (p4, took_partition) = failed_over(&c, p3, Duration::from_secs(c.timing.ttl_s * 4)).await;
    let local_acked = local.stop().await;
    drop(cut);
    rejoined(&c, p3).await;
    let gap_partition = write_gap(&c, &w, t0).await;
    let local_lost = lost_rows(&c, c.nodes[p4].pg_port, &local_acked).await;
    assert!(
        local_lost.is_empty(),
        "{} of the local client's acknowledged rows are missing on the new primary\n{}",
        local_lost.len(),
        c.dump_logs()
    );
    let strict_row = c
        .connect(c.nodes[p4].pg_port)
        .await
        .expect("connect")
        .query_opt("SELECT 1 FROM e2e_writes WHERE id = 2000000000", &[])
        .await
        .expect("query");
    assert!(
        strict_row.is_some(),
        "the commit acknowledged after the wait is missing"
    );
    let figures = json!({
        "switchover_rest_s": took_rest.as_secs_f64(), "switchover_rest_write_gap_s": gap_rest.as_secs_f64(),
        "switchover_cli_s": took_cli.as_secs_f64(), "switchover_cli_write_gap_s": gap_cli.as_secs_f64(),
        "machine_crash_new_primary_s": took_crash.as_secs_f64(), "machine_crash_write_gap_s": gap_crash.as_secs_f64(),
        "strict_ack_after_replica_back_s": strict_wait.as_secs_f64(),
        "partition_new_primary_s": took_partition.as_secs_f64(), "partition_write_gap_s": gap_partition.as_secs_f64(),
        "local_rows_acked": local_acked.len(), "local_rows_lost": local_lost.len(),
    });
    finish(&c, w, p4, scenario, figures, 0).await;
}
