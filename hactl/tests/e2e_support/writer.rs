//! The client side: where a client connects, the [`Writer`] that commits through HAProxy all along, the rows it
//! lost, and the figures each scenario records.

use super::*;

/// Where a client reaches PostgreSQL: a loopback TCP port (HAProxy's frontends, a node's listen port), or a node's
/// unix socket (a client on the node itself, on its side of any network partition).
#[derive(Debug, Clone)]
pub enum Endpoint {
    Tcp(u16),
    Socket(PathBuf, u16),
}

impl Endpoint {
    fn config(&self, connect_timeout: Duration) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        match self {
            Endpoint::Tcp(port) => c.host("127.0.0.1").port(*port),
            Endpoint::Socket(dir, port) => c.host_path(dir).port(*port),
        };
        c.user("postgres")
            .password(SUPERUSER_PASSWORD)
            .dbname("postgres")
            .connect_timeout(connect_timeout);
        c
    }

    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = self
            .config(Duration::from_secs(2))
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

/// A client that commits one row every 20 ms through HAProxy's write frontend, reconnecting after every failure,
/// and keeps each acknowledged id with its time.
pub struct Writer {
    acked: Arc<Mutex<Vec<(i64, Instant)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub async fn start(port: u16) -> Writer {
        Writer::start_at(Endpoint::Tcp(port), 1).await
    }

    /// A writer on `endpoint` whose ids start at `first_id` (two writers on one table do not collide).
    pub async fn start_at(endpoint: Endpoint, first_id: i64) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut next: i64 = first_id;
            let mut client: Option<tokio_postgres::Client> = None;
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                if client.is_none() {
                    let c = endpoint
                        .config(Duration::from_secs(1))
                        .connect(tokio_postgres::NoTls)
                        .await;
                    match c {
                        Ok((cl, conn)) => {
                            tokio::spawn(async move {
                                let _ = conn.await;
                            });
                            let _ = cl.execute("CREATE TABLE IF NOT EXISTS e2e_writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())", &[]).await;
                            client = Some(cl);
                        }
                        Err(e) => {
                            if std::env::var("E2E_VERBOSE").is_ok() {
                                eprintln!(
                                    "[e2e writer] {:?} connect failed: {e}",
                                    std::time::SystemTime::now()
                                );
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                }
                let cl = client.as_ref().expect("connected");
                let r = tokio::time::timeout(
                    Duration::from_secs(2),
                    cl.execute(
                        "INSERT INTO e2e_writes (id) VALUES ($1) ON CONFLICT DO NOTHING",
                        &[&next],
                    ),
                )
                .await;
                match r {
                    // Acknowledged: this transaction inserted the row and its COMMIT returned. A retry that finds
                    // the row already there (an earlier attempt committed locally, then timed out waiting for a
                    // synchronous standby) inserts nothing and commits at once: no acknowledgement of the row.
                    Ok(Ok(inserted)) => {
                        if inserted == 1 {
                            a.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push((next, Instant::now()));
                        }
                        next += 1;
                    }
                    other => {
                        if std::env::var("E2E_VERBOSE").is_ok() {
                            eprintln!(
                                "[e2e writer] {:?} write {next} failed: {other:?}",
                                std::time::SystemTime::now()
                            );
                        }
                        client = None
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Writer { acked, stop, task }
    }

    pub fn acked(&self) -> Vec<(i64, Instant)> {
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The longest gap between two acknowledged writes since `from`.
    pub fn longest_gap_since(&self, from: Instant) -> Duration {
        let acked = self.acked();
        let mut last = from;
        let mut worst = Duration::ZERO;
        let mut at = Duration::ZERO;
        let mut n = 0;
        for (_, t) in acked.iter().filter(|(_, t)| *t >= from) {
            if t.duration_since(last) > worst {
                worst = t.duration_since(last);
                at = last.duration_since(from);
            }
            last = *t;
            n += 1;
        }
        // A gap still open now counts too.
        if Instant::now().duration_since(last) > worst {
            worst = Instant::now().duration_since(last);
            at = last.duration_since(from);
        }
        eprintln!("[e2e writer] {n} writes acknowledged since the fault; longest gap {worst:?} starting {at:?} after it");
        worst
    }

    /// Waits until `n` more writes were acknowledged (writes flow again after a fault); false on timeout.
    pub async fn wait_progress(&self, n: usize, within: Duration) -> bool {
        let start = Instant::now();
        let before = self.acked().len();
        while start.elapsed() < within {
            if self.acked().len() >= before + n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub async fn stop(self) -> Vec<(i64, Instant)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.task.await;
        self.acked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Acknowledged ids missing on the server at `port`.
pub async fn lost_rows(c: &Cluster, port: u16, acked: &[(i64, Instant)]) -> Vec<i64> {
    let client = c.connect(port).await.expect("connect to count rows");
    let rows = client
        .query("SELECT id FROM e2e_writes", &[])
        .await
        .expect("select");
    let have: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    acked
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !have.contains(id))
        .collect()
}

/// One scenario's figures, appended to `target/e2e-results.jsonl`; the table of all of them is printed.
pub fn record(scenario: &str, figures: serde_json::Value) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("e2e-results.jsonl");
    let line = serde_json::json!({"scenario": scenario, "figures": figures}).to_string();
    let all = fs::read_to_string(&path).unwrap_or_default();
    let mut kept: Vec<String> = all
        .lines()
        .filter(|l| !l.contains(&format!("\"scenario\":\"{scenario}\"")))
        .map(String::from)
        .collect();
    kept.push(line);
    let _ = fs::write(&path, kept.join("\n") + "\n");
    eprintln!("\n=== e2e figures ({}) ===", path.display());
    for l in &kept {
        eprintln!("{l}");
    }
}

/// Waits until writes flow again and returns the longest gap since the fault.
pub async fn write_gap(c: &Cluster, w: &Writer, fault_at: Instant) -> Duration {
    if !w.wait_progress(25, Duration::from_secs(60)).await {
        panic!(
            "writes did not resume through HAProxy\n{}\n{}",
            c.replication_report().await,
            c.dump_logs()
        );
    }
    w.longest_gap_since(fault_at)
}

/// Stops the writer, counts acknowledged rows missing on `primary`, records the figures and checks the losses.
pub async fn finish(
    c: &Cluster,
    w: Writer,
    primary: usize,
    scenario: &str,
    mut figures: serde_json::Value,
    max_lost: usize,
) {
    let acked = w.stop().await;
    if let Some(census) = &c.census {
        census.assert_never_two_primaries(c);
        figures["census_answers"] = census.answers().into();
        assert!(
            census.answers() > 100,
            "{scenario}: the census got only {} answers",
            census.answers()
        );
    }
    let lost = lost_rows(c, c.nodes[primary].pg_port, &acked).await;
    figures["rows_acked"] = acked.len().into();
    figures["rows_lost"] = lost.len().into();
    figures["ttl_s"] = c.timing.ttl_s.into();
    figures["loop_wait_s"] = c.timing.loop_wait_s.into();
    record(scenario, figures);
    assert!(
        lost.len() <= max_lost,
        "{scenario}: {} acknowledged rows lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}
