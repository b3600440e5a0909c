//! The product binary of `embed_etcd_postgres.rs`, run as a product team would run it: two nodes on a real etcd (and
//! on Consul, the same binary with another store address) with real PostgreSQL 15. The first bootstraps and tells
//! the product it is primary, the second clones and streams; the primary's process is SIGKILLed, its fencer (the
//! same binary) fences its PostgreSQL at the lease end, the replica promotes and the product hears of it; Ctrl-C
//! stops the new primary cleanly, which the product hears as `→ stopped`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// One running product node: its process, and the lines it printed (the product's own role-change messages).
struct ProductNode {
    name: String,
    pg_port: u16,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ProductNode {
    fn start(dir: &Path, name: &str, store: &str) -> ProductNode {
        let pg_port = ha_core::testing::free_port();
        let log = std::fs::File::create(dir.join(format!("{name}.product.log"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed_etcd_postgres"));
        cmd.args([
            name,
            &dir.join(name).to_string_lossy(),
            &pg_port.to_string(),
            store,
        ])
        .env("PG_BIN", PG_BIN)
        .stdout(Stdio::piped())
        .stderr(log);
        if is_root() {
            cmd.env("PG_USER", "postgres");
        }
        let mut child = cmd.spawn().expect("start the product binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        ProductNode {
            name: name.into(),
            pg_port,
            child,
            lines,
        }
    }

    /// Waits until the product printed `line`; panics with its log after `within`.
    fn wait_for(&self, line: &str, within: Duration, dir: &Path) {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.lines.lock().unwrap().iter().any(|l| l == line) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(dir.join(format!("{}.product.log", self.name)))
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "{} did not print {line:?} within {within:?}; it printed {:?}; log tail (newest first):\n{}",
            self.name,
            self.lines.lock().unwrap(),
            tail.join("\n")
        );
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this test started.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A temp dir PostgreSQL's OS user can write (the socket, pgpass and log sit beside each data directory), whose
/// every process (nodes, fencers, postmasters: all name the dir in their command line or environment) is SIGKILLed
/// by PID when it drops, whatever happened.
struct World(tempfile::TempDir);

impl World {
    fn new() -> World {
        let dir = tempfile::Builder::new()
            .prefix("shop-")
            .tempdir_in("/tmp")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        World(dir)
    }
    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
    fn pids(&self) -> Vec<i32> {
        let needle = self.0.path().to_string_lossy().into_owned();
        let me = std::process::id() as i32;
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| *pid != me)
            .filter(|pid| {
                ["cmdline", "environ"].iter().any(|f| {
                    std::fs::read(format!("/proc/{pid}/{f}"))
                        .is_ok_and(|b| String::from_utf8_lossy(&b).contains(&needle))
                })
            })
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill(2) on processes started for this test's directory.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

async fn sql(port: u16, query: &str) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let conn =
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=3");
    let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.query(query, &[]).await
}

async fn eventually_sql(port: u16, query: &str, within: Duration) -> Vec<tokio_postgres::Row> {
    let start = Instant::now();
    loop {
        match sql(port, query).await {
            Ok(rows) if !rows.is_empty() => return rows,
            r if start.elapsed() > within => panic!("{query} on port {port}: {r:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The whole life of a two-node product cluster on one store.
async fn failover_scenario(store: &str) {
    let world = World::new();
    let dir = world.path();
    let a = ProductNode::start(&dir, "shop1", store);
    a.wait_for(
        "shop: this node was stopped, now primary",
        Duration::from_secs(60),
        &dir,
    );
    let b = ProductNode::start(&dir, "shop2", store);
    b.wait_for(
        "shop: this node was stopped, now replica",
        Duration::from_secs(60),
        &dir,
    );

    sql(a.pg_port, "CREATE TABLE orders (id int)")
        .await
        .unwrap();
    sql(a.pg_port, "INSERT INTO orders VALUES (1)")
        .await
        .unwrap();
    eventually_sql(b.pg_port, "SELECT id FROM orders", Duration::from_secs(20)).await;

    // The primary's process dies: its fencer outlives it, fences PostgreSQL at the lease end; shop2 takes over.
    let killed = Instant::now();
    a.signal(libc::SIGKILL);
    b.wait_for(
        "shop: this node was replica, now primary",
        Duration::from_secs(40),
        &dir,
    );
    println!(
        "{store}: shop2 primary {:.1} s after shop1's process was killed (ttl 10 s)",
        killed.elapsed().as_secs_f64()
    );
    assert!(
        sql(a.pg_port, "SELECT 1").await.is_err(),
        "shop1's PostgreSQL still answers: not fenced"
    );
    sql(b.pg_port, "INSERT INTO orders VALUES (2)")
        .await
        .unwrap();
    let rows = sql(b.pg_port, "SELECT count(*) FROM orders").await.unwrap();
    assert_eq!(
        rows[0].get::<_, i64>(0),
        2,
        "the row written before the failover is on the new primary"
    );

    // Ctrl-C: PostgreSQL stopped, the lock released, the product told.
    b.signal(libc::SIGINT);
    b.wait_for(
        "shop: this node was primary, now stopped",
        Duration::from_secs(30),
        &dir,
    );
    let mut b = b;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = b.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "shop2 did not exit after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "shop2 exited with {status}");
    assert!(
        sql(b.pg_port, "SELECT 1").await.is_err(),
        "shop2's PostgreSQL still runs after the stop"
    );
    drop(world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_node_fails_over_on_etcd_and_on_consul() {
    if !Path::new(PG_BIN).join("initdb").is_file() {
        assert!(
            !ci(),
            "CI=true and PostgreSQL 15 is not installed: run scripts/install.sh"
        );
        eprintln!("SKIPPED: PostgreSQL 15 is not installed");
        return;
    }
    let Some(_) = dcs_etcd::testing::etcd_or_skip("embedded_node") else {
        return;
    };
    let etcd_dir = tempfile::tempdir().unwrap();
    let etcd = dcs_etcd::testing::EtcdServer::start(etcd_dir.path()).expect("start etcd");
    failover_scenario(&etcd.endpoint()).await;
    drop(etcd);

    if !dcs_consul::testing::binary_available() {
        assert!(
            !ci(),
            "CI=true and consul is not installed: run scripts/install.sh"
        );
        eprintln!("SKIPPED (Consul half): consul is not installed");
        return;
    }
    let consul_dir = tempfile::tempdir().unwrap();
    let consul = dcs_consul::testing::ConsulServer::start(consul_dir.path()).expect("start consul");
    let agent = consul.url().trim_start_matches("http://").to_string();
    failover_scenario(&format!("consul://{agent}")).await;
}
