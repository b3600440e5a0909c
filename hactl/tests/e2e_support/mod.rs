//! End-to-end test support: a real cluster on loopback — etcd, N `hactl run` daemons each with its PostgreSQL 15,
//! HAProxy in front (writes and reads frontends checking `/primary` and `/replica`) — plus a writer that commits
//! through HAProxy every 20 ms and records every acknowledged row.
//!
//! Every process is started here and killed by its PID on drop (daemons, HAProxy, and each node's postmaster from
//! its `postmaster.pid`), so a failing scenario leaves nothing running. The daemons run as the unprivileged
//! `postgres` OS user, like Patroni: PostgreSQL refuses root.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcs_etcd::testing::{free_port, EtcdCluster, EtcdServer};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const SUPERUSER_PASSWORD: &str = "super-pass";

/// Scenarios run one at a time: each starts a whole cluster and the machine has two cores.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// True when the servers an e2e test needs are here; under CI a missing one is a failure.
pub fn prerequisites_or_skip(test: &str) -> bool {
    let missing: Vec<&str> = [
        (format!("{PG_BIN}/postgres"), "postgresql-15"),
        ("/usr/sbin/haproxy".into(), "haproxy"),
    ]
    .iter()
    .filter(|(p, _)| !Path::new(p).exists())
    .map(|(_, n)| *n)
    .chain(
        dcs_etcd::testing::etcd_binary()
            .is_none()
            .then_some("etcd-server"),
    )
    .chain(
        uid_gid("postgres")
            .is_none()
            .then_some("the postgres OS user"),
    )
    .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").map_or(false, |v| v == "true") {
        panic!("{test}: missing {missing:?} under CI (run scripts/install.sh)");
    }
    eprintln!("{test}: skipped, missing {missing:?} (run scripts/install.sh)");
    false
}

pub fn uid_gid(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn chown_postgres(p: &Path) {
    if let Some((u, g)) = uid_gid("postgres") {
        let _ = std::os::unix::fs::chown(p, Some(u), Some(g));
    }
}

/// Timings of one cluster.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttl_s: u64,
    pub loop_wait_s: u64,
    pub retry_timeout_s: u64,
}

pub const FAST: Timing = Timing {
    ttl_s: 10,
    loop_wait_s: 2,
    retry_timeout_s: 3,
};

pub struct Node {
    pub name: String,
    pub api_port: u16,
    pub pg_port: u16,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Node {
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }
    pub fn postmaster_pid(&self) -> Option<i32> {
        fs::read_to_string(self.data_dir.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    pub fn log_tail(&self, lines: usize) -> String {
        let s = fs::read_to_string(&self.log).unwrap_or_default();
        let v: Vec<&str> = s.lines().collect();
        v[v.len().saturating_sub(lines)..].join("\n")
    }
}

/// The DCS of a test cluster: one etcd, or a cluster of them (for the loss of one member).
pub enum Etcd {
    Single(EtcdServer),
    Members(EtcdCluster),
}

impl Etcd {
    /// `host:port` of every member, for the `etcd3.hosts` list.
    pub fn hosts(&self) -> String {
        let all = match self {
            Etcd::Single(s) => vec![s.endpoint()],
            Etcd::Members(c) => c.endpoints(),
        };
        all.iter()
            .map(|e| e.trim_start_matches("http://").to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub scope: String,
    pub etcd: Etcd,
    pub nodes: Vec<Node>,
    pub haproxy: Option<Child>,
    pub write_port: u16,
    pub read_port: u16,
    pub timing: Timing,
    hactl: PathBuf,
}

pub fn signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

impl Cluster {
    /// Starts etcd, `n` daemons and HAProxy; returns once one node is primary and the others stream from it.
    pub async fn start(test: &str, n: usize, timing: Timing) -> Cluster {
        Cluster::start_with_etcd(test, n, timing, 1).await
    }

    /// Like [`Cluster::start`], with `etcd_members` etcd servers (1: a single one).
    pub async fn start_with_etcd(
        test: &str,
        n: usize,
        timing: Timing,
        etcd_members: usize,
    ) -> Cluster {
        Cluster::start_some(test, n, n, timing, etcd_members).await
    }

    /// `n` nodes configured (and behind HAProxy), the first `running` of them started.
    pub async fn start_some(
        test: &str,
        n: usize,
        running: usize,
        timing: Timing,
        etcd_members: usize,
    ) -> Cluster {
        let dir = PathBuf::from(format!("/tmp/hactl-e2e-{}-{}", test, std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("e2e dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let etcd = if etcd_members > 1 {
            Etcd::Members(EtcdCluster::start(&dir, etcd_members).expect("etcd cluster"))
        } else {
            Etcd::Single(EtcdServer::start(&dir).expect("etcd"))
        };
        let mut c = Cluster {
            scope: format!("e2e-{test}"),
            etcd,
            nodes: Vec::new(),
            haproxy: None,
            write_port: free_port(),
            read_port: free_port(),
            timing,
            hactl: PathBuf::from(env!("CARGO_BIN_EXE_hactl")),
            dir,
        };
        for i in 1..=n {
            c.add_node(i);
        }
        for i in 0..running {
            c.start_daemon(i);
        }
        c.start_haproxy();
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(p) = c.primary().await {
                let replicas = c.streaming_replicas().await;
                if replicas + 1 >= running {
                    eprintln!("[e2e {test}] cluster up: primary {}", c.nodes[p].name);
                    break;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = c
                    .nodes
                    .iter()
                    .map(|n| format!("--- {}:\n{}", n.name, n.log_tail(30)))
                    .collect();
                panic!(
                    "[e2e {test}] cluster not up within 120 s\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        c
    }

    fn add_node(&mut self, i: usize) {
        let name = format!("node{i}");
        let home = self.dir.join(&name);
        fs::create_dir_all(&home).expect("node dir");
        chown_postgres(&home);
        let (api_port, pg_port) = (free_port(), free_port());
        let data_dir = home.join("data");
        let config = home.join("hactl.yml");
        let t = self.timing;
        let yaml = format!(
            r#"scope: {scope}
namespace: /service
name: {name}
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
etcd3:
  hosts: [{etcd}]
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {lw}
    retry_timeout: {rt}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        wal_keep_size: 256MB
        max_wal_senders: 10
        max_replication_slots: 10
        shared_buffers: 16MB
  initdb:
    - encoding: UTF8
    - data-checksums
  pg_hba:
    - host replication replicator 127.0.0.1/32 md5
    - host all all 127.0.0.1/32 md5
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data}
  bin_dir: {PG_BIN}
  pgpass: {home}/pgpass
  authentication:
    replication: {{username: replicator, password: rep-pass}}
    superuser: {{username: postgres, password: {SUPERUSER_PASSWORD}}}
    rewind: {{username: rewind_user, password: rewind-pass}}
  parameters:
    unix_socket_directories: {home}
    fsync: "off"
tags: {{}}
"#,
            scope = self.scope,
            etcd = self.etcd.hosts(),
            ttl = t.ttl_s,
            lw = t.loop_wait_s,
            rt = t.retry_timeout_s,
            data = data_dir.display(),
            home = home.display(),
        );
        fs::write(&config, yaml).expect("config");
        chown_postgres(&config);
        let log = home.join("hactl.log");
        self.nodes.push(Node {
            name,
            api_port,
            pg_port,
            config,
            data_dir,
            log,
            child: None,
        });
    }

    /// Starts (or restarts) node `i`'s daemon as the postgres OS user.
    pub fn start_daemon(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log");
        let mut cmd = Command::new(&self.hactl);
        cmd.arg("run")
            .arg(&node.config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null());
        cmd.env("RUST_LOG", "info");
        if let Some((u, g)) = uid_gid("postgres") {
            cmd.uid(u).gid(g);
        }
        node.child = Some(cmd.spawn().expect("spawn hactl"));
    }

    /// SIGTERM to the daemon and wait for it to exit (graceful stop).
    pub async fn stop_daemon(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            signal(child.id() as i32, "TERM");
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL the daemon (PostgreSQL keeps running).
    pub fn kill_daemon(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The machine dies: daemon, fencer, postmaster and backends SIGKILLed at once.
    pub fn crash_node(&mut self, i: usize) {
        let data = self.nodes[i].data_dir.display().to_string();
        let pm = self.nodes[i].postmaster_pid();
        self.kill_daemon(i);
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &format!("hactl fencer {data}")])
            .status();
        if let Some(pid) = pm {
            let _ = Command::new("pkill")
                .args(["-KILL", "-P", &pid.to_string()])
                .status();
            signal(pid, "KILL");
        }
    }

    pub fn signal_daemon(&self, i: usize, sig: &str) {
        if let Some(pid) = self.nodes[i].daemon_pid() {
            signal(pid as i32, sig);
        }
    }

    pub fn signal_postmaster(&self, i: usize, sig: &str) {
        if let Some(pid) = self.nodes[i].postmaster_pid() {
            signal(pid, sig);
        }
    }

    fn start_haproxy(&mut self) {
        let servers = |check: &str| {
            self.nodes
                .iter()
                .map(|n| {
                    format!(
                        "    server {} 127.0.0.1:{} check port {}\n",
                        n.name, n.pg_port, n.api_port
                    )
                })
                .collect::<String>()
                + &format!("    option httpchk GET {check}\n    http-check expect status 200\n")
        };
        let cfg = format!(
            "global\n    maxconn 100\ndefaults\n    mode tcp\n    timeout connect 2s\n    timeout client 5m\n    timeout server 5m\n    timeout check 2s\n    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions\nlisten primary\n    bind 127.0.0.1:{w}\n{p}listen replicas\n    bind 127.0.0.1:{r}\n    balance roundrobin\n{rp}",
            w = self.write_port,
            r = self.read_port,
            p = servers("/primary"),
            rp = servers("/replica"),
        );
        let path = self.dir.join("haproxy.cfg");
        fs::write(&path, cfg).expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.dir.join("haproxy.log")).expect("haproxy log"))
            .spawn()
            .expect("haproxy");
        self.haproxy = Some(child);
    }

    async fn get(url: &str) -> Option<(u16, serde_json::Value)> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .ok()?;
        let r = client.get(url).send().await.ok()?;
        let code = r.status().as_u16();
        Some((code, r.json().await.unwrap_or(serde_json::Value::Null)))
    }

    /// The index of the node whose `/primary` answers 200.
    pub async fn primary(&self) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.child.is_none() {
                continue;
            }
            if let Some((200, _)) = Self::get(&format!("{}/primary", n.api())).await {
                return Some(i);
            }
        }
        None
    }

    pub async fn streaming_replicas(&self) -> usize {
        let mut k = 0;
        for n in &self.nodes {
            if let Some((200, body)) = Self::get(&format!("{}/replica", n.api())).await {
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
            if let Some((200, _)) = Self::get(&format!("{}/replica", self.nodes[i].api())).await {
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
        let (client, conn) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(port)
            .user("postgres")
            .password(SUPERUSER_PASSWORD)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2))
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    pub fn dump_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {}:\n{}", n.name, n.log_tail(40)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(pid) = n.daemon_pid() {
                signal(pid as i32, "CONT");
            }
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut h) = self.haproxy.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        // PostgreSQL outlives a SIGKILLed daemon: kill every postmaster (and its backends) by PID.
        for n in &self.nodes {
            if let Some(pid) = n.postmaster_pid() {
                signal(pid, "CONT");
                signal(pid, "QUIT");
                std::thread::sleep(Duration::from_millis(200));
                signal(pid, "KILL");
            }
        }
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &self.dir.display().to_string()])
            .status();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
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
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, s) = (acked.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut next: i64 = 1;
            let mut client: Option<tokio_postgres::Client> = None;
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                if client.is_none() {
                    let c = tokio_postgres::Config::new()
                        .host("127.0.0.1")
                        .port(port)
                        .user("postgres")
                        .password(SUPERUSER_PASSWORD)
                        .dbname("postgres")
                        .connect_timeout(Duration::from_secs(1))
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
                    Ok(Ok(_)) => {
                        a.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((next, Instant::now()));
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
