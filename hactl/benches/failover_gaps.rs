//! Write gaps through HAProxy at ttl 5 s (loop_wait 1, retry_timeout 2), median and worst of 5 each: a crashed
//! primary machine (daemon, fencer and PostgreSQL SIGKILLed at once), a frozen primary daemon (SIGSTOP), a
//! switchover and a PostgreSQL SIGKILL. One 3-node cluster (etcd, PostgreSQL 15, HAProxy `inter 1s`, a writer
//! committing every 20 ms) takes every fault in turn, the failed node brought back as a replica between runs; the
//! gap is the longest time between two acknowledged writes from the fault on, the same figure the end-to-end
//! scenarios record. Rows lost are counted at the end (a crash may lose the last asynchronous commits).
//!
//! `cargo bench -p hactl --bench failover_gaps` (about 8 minutes; needs what the end-to-end tests need).

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::scenario::{cluster_with_writer_as, failed_over, post, rejoined, wait_streaming};
use e2e_support::{lost_rows, write_gap, Spec, Timing};
use serde_json::json;

const TTL5: Timing = Timing {
    ttl_s: 5,
    loop_wait_s: 1,
    retry_timeout_s: 2,
};
const RUNS: usize = 5;

/// Median and worst of `v`, in seconds.
fn median_worst(v: &mut [Duration]) -> (f64, f64) {
    v.sort();
    (
        v[v.len() / 2].as_secs_f64(),
        v.last().copied().unwrap_or_default().as_secs_f64(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some((mut c, w, mut p)) =
        cluster_with_writer_as(Spec::new("bench_gaps").timing(TTL5)).await
    else {
        eprintln!("failover_gaps: skipped (PostgreSQL 15, etcd or HAProxy missing)");
        return;
    };
    let (mut crash, mut frozen, mut switch, mut pgkill) = (vec![], vec![], vec![], vec![]);
    let (mut crash_new, mut frozen_new) = (vec![], vec![]);
    for run in 0..RUNS {
        // The whole machine of the primary dies.
        let t0 = Instant::now();
        c.crash_node(p);
        let (newp, took) = failed_over(&c, p, Duration::from_secs(30)).await;
        crash.push(write_gap(&c, &w, t0).await);
        crash_new.push(took);
        c.start_daemon(p);
        rejoined(&c, p).await;
        p = newp;
        wait_streaming(&c).await;

        // The primary's daemon freezes (its PostgreSQL goes on until the fencer stops it at the lease's end).
        let t0 = Instant::now();
        c.signal_daemon(p, "STOP");
        let found = c.wait_new_primary(p, Duration::from_secs(30)).await;
        c.signal_daemon(p, "CONT");
        let (newp, took) = found.expect("no failover while the daemon was frozen");
        frozen.push(write_gap(&c, &w, t0).await);
        frozen_new.push(took);
        rejoined(&c, p).await;
        p = newp;
        wait_streaming(&c).await;

        // A switchover to the next node.
        let cand = (p + 1) % 3;
        let t0 = Instant::now();
        let (code, body) = post(
            &format!("{}/switchover", c.nodes[p].api()),
            json!({"leader": c.nodes[p].name, "candidate": c.nodes[cand].name}),
        )
        .await;
        assert_eq!(code, 200, "switchover: {body}");
        let (newp, _) = failed_over(&c, p, Duration::from_secs(30)).await;
        switch.push(write_gap(&c, &w, t0).await);
        rejoined(&c, p).await;
        p = newp;
        wait_streaming(&c).await;

        // PostgreSQL killed on the primary: restarted in place.
        let t0 = Instant::now();
        c.signal_postmaster(p, "KILL");
        pgkill.push(write_gap(&c, &w, t0).await);
        wait_streaming(&c).await;
        eprintln!("failover_gaps: run {} of {RUNS} done", run + 1);
    }
    let acked = w.stop().await;
    let lost = lost_rows(&c, c.nodes[p].pg_port, &acked).await.len();
    println!("failover_gaps: ttl 5 s, loop_wait 1 s, retry_timeout 2 s, through HAProxy (examples/haproxy: inter 1s), {RUNS} runs each");
    println!(
        "  {:<28} {:>10} {:>10} {:>18}",
        "fault", "gap med", "gap worst", "new primary med"
    );
    for (name, gaps, news) in [
        ("primary machine crash", &mut crash, Some(&mut crash_new)),
        ("primary daemon SIGSTOP", &mut frozen, Some(&mut frozen_new)),
        ("switchover", &mut switch, None),
        ("PostgreSQL SIGKILL", &mut pgkill, None),
    ] {
        let (med, worst) = median_worst(gaps);
        let new = news
            .map(|n| format!("{:.2} s", median_worst(n).0))
            .unwrap_or_default();
        println!("  {name:<28} {med:>8.2} s {worst:>8.2} s {new:>18}");
    }
    println!("  rows acknowledged {}, lost {lost}", acked.len());
}
