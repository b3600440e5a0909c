//! What synchronous replication costs a client: commit latency with `synchronous_mode` off, `on` and `quorum`
//! (both strict), on a real 3-node cluster (etcd, PostgreSQL 15 with fsync off, loopback), one client committing
//! one-row transactions straight to the primary.
//!
//! `cargo bench -p hactl --bench commit_latency` (HACTL_COMMITS sets the commits per mode, 2000 by default).
//! Run as root (the nodes run as the `postgres` OS user), with the servers `scripts/install.sh` installs.

#[path = "../tests/e2e_support/mod.rs"]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{prerequisites_or_skip, Cluster, Spec};

/// Waits until every replica answers `path` (`/sync` or `/quorum`) with 200.
async fn standbys_ready(c: &Cluster, primary: usize, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ready = 0;
        for i in (0..c.nodes.len()).filter(|i| *i != primary) {
            if c.rest(i, path).await.map(|(code, _)| code) == Some(200) {
                ready += 1;
            }
        }
        // `on` names synchronous_node_count (1) standbys; `quorum` makes every streaming replica a voter.
        let wanted = if path == "/quorum" {
            c.nodes.len() - 1
        } else {
            1
        };
        if ready >= wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "standbys not ready for {path}\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Commit latencies in microseconds, sorted.
async fn commits(c: &Cluster, primary: usize, n: usize) -> Vec<u64> {
    let client = c.connect(c.nodes[primary].pg_port).await.expect("connect");
    client
        .execute(
            "CREATE TABLE IF NOT EXISTS bench_commits (id bigint PRIMARY KEY)",
            &[],
        )
        .await
        .expect("table");
    let mut lat = Vec::with_capacity(n);
    for id in 0..n as i64 {
        let t = Instant::now();
        client
            .execute("INSERT INTO bench_commits (id) VALUES ($1)", &[&id])
            .await
            .expect("insert");
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat.sort_unstable();
    lat
}

fn main() {
    if !prerequisites_or_skip("commit_latency") {
        return;
    }
    let n: usize = std::env::var("HACTL_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("| synchronous_mode | commits | median µs | p99 µs | commits/s (one client) |");
    println!("|---|---:|---:|---:|---:|");
    for (mode, spec, ready) in [
        ("off", Spec::new("bench_async"), None),
        (
            "on (strict)",
            Spec::new("bench_sync").synchronous(),
            Some("/sync"),
        ),
        (
            "quorum (strict)",
            Spec::new("bench_quorum").quorum(),
            Some("/quorum"),
        ),
    ] {
        rt.block_on(async {
            let c = Cluster::start_spec(spec).await;
            let p = c.primary().await.expect("a primary");
            if let Some(path) = ready {
                standbys_ready(&c, p, path).await;
            }
            let started = Instant::now();
            let lat = commits(&c, p, n).await;
            let rate = n as f64 / started.elapsed().as_secs_f64();
            println!(
                "| {mode} | {n} | {} | {} | {rate:.0} |",
                lat[lat.len() / 2],
                lat[lat.len() * 99 / 100]
            );
        });
    }
}
