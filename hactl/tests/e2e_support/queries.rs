//! What a test asks a running cluster: REST answers, who leads, who streams, connections, the CLI, the logs.

use super::*;

impl Cluster {
    async fn get(&self, url: &str) -> Option<(u16, serde_json::Value)> {
        let r = self.http.get(url).send().await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// The index of the first running node whose `path` answers 200.
    async fn answering(&self, path: &str) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.child.is_none() {
                continue;
            }
            if let Some((200, _)) = self.get(&format!("{}{path}", n.api())).await {
                return Some(i);
            }
        }
        None
    }

    /// The index of the node whose `/leader` answers 200 (the primary, or a standby cluster's standby leader).
    pub async fn leader(&self) -> Option<usize> {
        self.answering("/leader").await
    }

    /// The index of the node whose `/primary` answers 200.
    pub async fn primary(&self) -> Option<usize> {
        self.answering("/primary").await
    }

    pub async fn streaming_replicas(&self) -> usize {
        let mut k = 0;
        for n in &self.nodes {
            if let Some((200, body)) = self.get(&format!("{}/replica", n.api())).await {
                if body["replication_state"] == "streaming" || body["role"] == "replica" {
                    k += 1;
                }
            }
        }
        k
    }

    /// Waits until a node other than `not` is primary; returns it and how long it took.
    pub async fn wait_new_primary(
        &self,
        not: usize,
        within: Duration,
    ) -> Option<(usize, Duration)> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(p) = self.primary().await {
                if p != not {
                    return Some((p, start.elapsed()));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    /// Waits until node `i` reports itself a replica (streaming).
    pub async fn wait_replica(&self, i: usize, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some((200, _)) = self.get(&format!("{}/replica", self.nodes[i].api())).await {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub async fn connect(
        &self,
        port: u16,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        Endpoint::Tcp(port).connect().await
    }

    pub fn dump_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {}:\n{}", n.name, n.log_tail(40)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Cluster {
    /// Runs the hactl CLI with node `i`'s config (`hactl -c CONFIG args…`); returns its exit success and output.
    pub fn ctl(&self, i: usize, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.hactl)
            .arg("-c")
            .arg(&self.nodes[i].config)
            .args(args)
            .output()
            .expect("run hactl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// Whether node `i`'s fencer process runs.
    pub fn fencer_running(&self, i: usize) -> bool {
        // `hactl-fencer DATA_DIR` beside the binary, or the full binary's `hactl fencer DATA_DIR`.
        let pattern = format!("hactl[- ]fencer {}", self.nodes[i].data_dir.display());
        Command::new("pgrep")
            .args(["-f", &pattern])
            .stdout(Stdio::null())
            .status()
            .map_or(false, |s| s.success())
    }

    /// The DCS endpoint the nodes use (etcd only).
    pub fn dcs_endpoint(&self) -> String {
        match &self.dcs {
            DcsServer::Etcd(Etcd::Single(s)) => s.endpoint(),
            DcsServer::Etcd(Etcd::Members(m)) => m.endpoint(0),
            #[allow(unreachable_patterns)]
            _ => String::new(),
        }
    }

    /// GET `path` on node `i`'s REST API.
    pub async fn rest(&self, i: usize, path: &str) -> Option<(u16, serde_json::Value)> {
        self.get(&format!("{}{path}", self.nodes[i].api())).await
    }

    /// Each node's `/primary` answer, role and replication as its REST API shows them, and on each primary what
    /// PostgreSQL says about its standbys: what a scenario prints when writes stall.
    pub async fn replication_report(&self) -> String {
        let mut out = String::from("--- replication:");
        for (i, n) in self.nodes.iter().enumerate() {
            let primary = self.rest(i, "/primary").await.map(|(code, _)| code);
            let status = self.rest(i, "/patroni").await.map(|(_, v)| v);
            let field = |k: &str| {
                status
                    .as_ref()
                    .map(|v| v[k].to_string())
                    .unwrap_or_default()
            };
            out.push_str(&format!(
                "\n{}: /primary {primary:?} role {} state {} xlog {} replication {}",
                n.name,
                field("role"),
                field("state"),
                field("xlog"),
                field("replication")
            ));
            if let Ok(cl) = self.connect(n.pg_port).await {
                if let Ok(rows) = cl
                    .query(
                        "SELECT current_setting('synchronous_standby_names'), application_name, state, \
                         sync_state, flush_lsn::text FROM pg_stat_replication",
                        &[],
                    )
                    .await
                {
                    for r in rows {
                        let col = |j: usize| r.get::<_, Option<String>>(j).unwrap_or_default();
                        out.push_str(&format!(
                            "\n  ssn {:?}: {} {} {} flush {}",
                            col(0),
                            col(1),
                            col(2),
                            col(3),
                            col(4)
                        ));
                    }
                }
            }
        }
        out
    }
}
