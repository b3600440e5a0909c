//! The daemon end to end: two `hactl run` processes with Patroni-format configs on a real etcd and real PostgreSQL 15.
//! A primary and a replica come up, HAProxy routes its primary and replica frontends like Patroni's health checks
//! say, the CLI lists the cluster, and SIGTERM on the primary hands the leader role over well within the ttl (the
//! lock is released, not left to expire), with the new primary's on_role_change callback run.
//!
//! Skipped (with a message) when PostgreSQL 15 or etcd are missing, unless CI=true.//!
//! Layout: here the processes and helpers; `failover` (the two-node run), `documentation_config` (Patroni's
//! documented config starts a node unchanged), `cli_depth` (patronictl's ways in against the running cluster).

mod cli_depth;
mod documentation_config;
mod failover;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

fn prerequisites() -> bool {
    let pg = Path::new(PG_BIN).join("initdb").is_file();
    let etcd = dcs_etcd::testing::etcd_binary().is_some();
    if pg && etcd {
        return true;
    }
    if ci() {
        panic!(
            "CI=true but PostgreSQL 15 ({pg}) or etcd ({etcd}) is missing: run scripts/install.sh"
        );
    }
    eprintln!("SKIPPED: PostgreSQL 15 or etcd is not installed");
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A directory the postgres user can use.
fn shared_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        let (u, g) = postgres_ids();
        std::os::unix::fs::chown(path, Some(u), Some(g)).unwrap();
    }
}

/// A running `hactl run`; SIGKILLed with its PostgreSQL on drop, whatever happened.
struct Node {
    child: Option<Child>,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Node {
    fn start(config: &Path, log: PathBuf, data_dir: PathBuf) -> Node {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hactl"))
            .arg("run")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Node {
            child: Some(child),
            data_dir,
            log,
        }
    }

    fn sigterm_and_wait(&mut self, limit: Duration) -> bool {
        let Some(c) = self.child.as_mut() else {
            return true;
        };
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        hactl::daemon::fencer::fence_data_dir(&self.data_dir);
    }
}

use ha_core::testing::free_port;

async fn status(client: &reqwest::Client, port: u16, path: &str) -> Option<u16> {
    client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn wait_for(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    limit: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if status(client, port, path).await == Some(200) {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// `psql -c "select pg_is_in_recovery()"` through `port`.
fn in_recovery_via(port: u16, pgpass: &Path) -> Option<String> {
    let out = Command::new(Path::new(PG_BIN).join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "select pg_is_in_recovery()",
        ])
        .env("PGPASSWORD", "su-pass")
        .env("PGPASSFILE", pgpass)
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
