//! Watching every node at once: the [`Census`] of primaries, and the corruption check after a scenario.

use super::*;

/// Watches every node's PostgreSQL through its unix socket (so a network cut does not blind it) and keeps, per
/// node, the times it was seen accepting writes (`NOT pg_is_in_recovery()`), sampled every 50 ms. It proves the
/// property that matters most: never two primaries at once.
pub struct Census {
    /// Per node: when it was asked, and whether it took writes (`None`: it did not answer).
    seen: Arc<Mutex<Vec<Vec<(Instant, Option<bool>)>>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Census {
    pub fn start(c: &Cluster) -> Census {
        let seen = Arc::new(Mutex::new(vec![Vec::new(); c.nodes.len()]));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = c
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (seen, stop, at) = (seen.clone(), stop.clone(), n.socket());
                tokio::spawn(async move {
                    let mut client: Option<tokio_postgres::Client> = None;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        if client.is_none() {
                            client = at.connect().await.ok();
                        }
                        let answer = match &client {
                            Some(cl) => {
                                let q = tokio::time::timeout(
                                    Duration::from_secs(1),
                                    cl.query_one("SELECT NOT pg_is_in_recovery()", &[]),
                                )
                                .await;
                                match q {
                                    Ok(Ok(row)) => Some(row.get::<_, bool>(0)),
                                    _ => None,
                                }
                            }
                            None => None,
                        };
                        if answer.is_none() {
                            client = None;
                        }
                        seen.lock().unwrap_or_else(|p| p.into_inner())[i]
                            .push((Instant::now(), answer));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                })
            })
            .collect();
        Census { seen, stop, tasks }
    }

    /// Each node's spans of consecutive samples as primary: (first, last) sample time.
    pub fn primary_spans(&self) -> Vec<Vec<(Instant, Instant)>> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .map(|samples| {
                let mut spans = Vec::new();
                let mut open: Option<(Instant, Instant)> = None;
                for (t, primary) in samples {
                    match (*primary == Some(true), open) {
                        (true, None) => open = Some((*t, *t)),
                        (true, Some((a, _))) => open = Some((a, *t)),
                        (false, Some(span)) => {
                            spans.push(span);
                            open = None
                        }
                        (false, None) => {}
                    }
                }
                spans.extend(open);
                spans
            })
            .collect()
    }

    /// The first time node `i` was seen primary at or after `from`.
    pub fn first_primary_since(&self, i: usize, from: Instant) -> Option<Instant> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen[i]
            .iter()
            .find(|(t, p)| *p == Some(true) && *t >= from)
            .map(|(t, _)| *t)
    }

    /// The last time node `i` was seen primary.
    pub fn last_primary(&self, i: usize) -> Option<Instant> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen[i]
            .iter()
            .rev()
            .find(|(_, p)| *p == Some(true))
            .map(|(t, _)| *t)
    }

    /// True when no node is accepting writes now: each one was asked after `since`, and its latest answer is
    /// "read-only" or no answer at all.
    pub fn nobody_writable_since(&self, since: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().all(|s| match s.last() {
            Some((t, primary)) => *t >= since && *primary != Some(true),
            None => false,
        })
    }

    /// Panics with both spans if two nodes were ever seen primary at overlapping times.
    pub fn assert_never_two_primaries(&self, c: &Cluster) {
        let spans = self.primary_spans();
        for a in 0..spans.len() {
            for b in a + 1..spans.len() {
                for sa in &spans[a] {
                    for sb in &spans[b] {
                        assert!(
                            sa.1 < sb.0 || sb.1 < sa.0,
                            "two primaries: {} and {} both accepted writes at the same time\n{}",
                            c.nodes[a].name,
                            c.nodes[b].name,
                            c.dump_logs()
                        );
                    }
                }
            }
        }
    }

    /// How many answers (primary or not) the census got, all nodes together: a census that could not ask proves
    /// nothing.
    pub fn answers(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().flatten().filter(|(_, a)| a.is_some()).count()
    }

    pub async fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Census {
    /// A census dropped without `stop` (its cluster's scenario ended or failed) stops asking.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// No corruption on any node: `pg_amcheck` (heap and B-tree checks of every database) passes on every running
/// node, and no data-checksum failure was counted (the clusters are initialised with `--data-checksums`).
/// amcheck is installed on the primary and reaches the replicas by replication.
pub async fn assert_no_corruption(c: &Cluster, primary: usize) {
    let run = |port: u16, install: bool| {
        let mut cmd = Command::new(format!("{PG_BIN}/pg_amcheck"));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "--all",
        ])
        .env("PGPASSWORD", SUPERUSER_PASSWORD);
        if install {
            cmd.arg("--install-missing");
        }
        let out = cmd.output().expect("pg_amcheck");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(c.nodes[primary].pg_port, true);
    assert_eq!(
        code,
        Some(0),
        "pg_amcheck on the primary {}: {out}",
        c.nodes[primary].name
    );
    let primary_client = c.connect(c.nodes[primary].pg_port).await.expect("primary");
    let lsn: String = primary_client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    for (i, n) in c.nodes.iter().enumerate() {
        let client = c.connect(n.pg_port).await.unwrap_or_else(|e| {
            panic!(
                "{} is not running after the scenario: {e}\n{}",
                n.name,
                c.dump_logs()
            )
        });
        if i != primary {
            // The replica must have replayed the amcheck extension before it is checked.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let caught_up: bool = client
                    .query_one(
                        "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                        &[&lsn],
                    )
                    .await
                    .expect("replay lsn")
                    .get(0);
                if caught_up {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} does not replay to {lsn}",
                    n.name
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (code, out) = run(n.pg_port, false);
            assert_eq!(code, Some(0), "pg_amcheck on {}: {out}", n.name);
        }
        let failures: i64 = client
            .query_one(
                "SELECT coalesce(sum(checksum_failures), 0)::bigint FROM pg_stat_database",
                &[],
            )
            .await
            .expect("checksum failures")
            .get(0);
        assert_eq!(
            failures, 0,
            "{} counted {failures} data checksum failures",
            n.name
        );
    }
}
