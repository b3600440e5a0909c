//! How long the role changes take on this machine against real PostgreSQL 15: bootstrap (initdb, start, roles),
//! clone (pg_basebackup of a 10,000-row table), promote, demote (fast stop of the primary + start as a replica
//! of the new one until it streams) and rewind (CHECKPOINT on the source, pg_rewind, start until it streams).
//! The nodes use the test settings: `initdb --no-sync` and `fsync = off`, so disk flushes are not measured.
//!
//! `cargo bench -p pg-control --bench lifecycle [-- ROUNDS]` (default 3 rounds); prints each round and the median.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{sql, upstream, wait_for, World};
use ha_core::pg::StopMode;

const STEPS: [&str; 6] = [
    "bootstrap",
    "clone",
    "start replica",
    "promote",
    "demote",
    "rewind",
];

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let Some(bin) = common::pg_bin() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut all: Vec<[Duration; 6]> = Vec::new();
    for round in 1..=rounds {
        let t = rt.block_on(one_round(bin.clone()));
        println!(
            "round {round}: {}",
            STEPS
                .iter()
                .zip(t.iter())
                .map(|(s, d)| format!("{s} {:.0} ms", d.as_secs_f64() * 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        all.push(t);
    }
    println!("median over {rounds} rounds:");
    for (i, s) in STEPS.iter().enumerate() {
        let mut v: Vec<Duration> = all.iter().map(|r| r[i]).collect();
        v.sort();
        println!(
            "  {s:<14} {:>7.0} ms",
            v[v.len() / 2].as_secs_f64() * 1000.0
        );
    }
}

async fn one_round(bin: std::path::PathBuf) -> [Duration; 6] {
    let mut w = World::new(bin);
    let n1 = w.node("n1").await;
    let n2 = w.node("n2").await;

    let t = Instant::now();
    n1.bootstrap().await.expect("bootstrap");
    let bootstrap = t.elapsed();
    sql(
        &n1,
        "CREATE TABLE t AS SELECT generate_series(1, 10000) AS v",
    )
    .await;

    let t = Instant::now();
    n2.clone_from(&upstream(&n1)).await.expect("clone");
    let clone = t.elapsed();

    let t = Instant::now();
    n2.start_replica(Some(&upstream(&n1)))
        .await
        .expect("start replica");
    let start_replica = t.elapsed();

    // Switchover: the primary stops first (part of its demotion), then the replica is promoted.
    let t = Instant::now();
    n1.stop(StopMode::Fast).await.unwrap();
    let demote_stop = t.elapsed();
    let t = Instant::now();
    n2.promote().await.expect("promote");
    let promote = t.elapsed();
    n2.apply_slots(&slot_for("n1")).await.unwrap();

    // Demote, second half: the old primary starts as a replica of the new one, until it streams.
    let t = Instant::now();
    n1.start_replica(Some(&upstream(&n2)))
        .await
        .expect("demote");
    wait_for(Duration::from_secs(30), "n1 streaming", || async {
        n1.observe().await.streaming
    })
    .await;
    let demote = demote_stop + t.elapsed();

    // Diverge, then rewind the loser until it streams again.
    n1.promote().await.unwrap();
    sql(&n1, "INSERT INTO t VALUES (-1); CHECKPOINT").await;
    n1.stop(StopMode::Fast).await.unwrap();
    let t = Instant::now();
    n1.rewind(&upstream(&n2)).await.expect("rewind");
    n1.start_replica(Some(&upstream(&n2))).await.unwrap();
    wait_for(
        Duration::from_secs(30),
        "n1 streaming after rewind",
        || async { n1.observe().await.streaming },
    )
    .await;
    let rewind = t.elapsed();

    n1.stop(StopMode::Fast).await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();
    [bootstrap, clone, start_replica, promote, demote, rewind]
}

/// A plan that makes the physical slot of member `m` (as the decision plans it for a member that streams).
fn slot_for(m: &str) -> ha_core::pg::SlotPlan {
    ha_core::pg::SlotPlan {
        create_physical: vec![m.to_string()],
        ..Default::default()
    }
}
