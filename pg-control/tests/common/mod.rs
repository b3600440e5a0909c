//! Shared harness for the tests against real PostgreSQL 15: temp dirs the `postgres` user can use, free loopback
//! ports, settings for a node, SQL helpers, and a guard that SIGKILLs every server a test started, even on panic.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ha_core::pg::Upstream;
use pg_control::{Credentials, InitdbOption, PgCtl, PgSettings, Timeouts};

pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// PostgreSQL's binaries, or `None` (skip) when they are missing. Under CI=true a missing PostgreSQL fails.
pub fn pg_bin() -> Option<PathBuf> {
    let bin = PathBuf::from(BIN_DIR);
    if bin.join("initdb").is_file() {
        return Some(bin);
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("CI=true and PostgreSQL 15 is not installed at {BIN_DIR}: run scripts/install.sh");
    }
    eprintln!(
        "SKIPPED: PostgreSQL 15 is not installed at {BIN_DIR} (set CI=true to make this a failure)"
    );
    None
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The OS user the servers run as: `postgres` when the tests run as root, ourselves otherwise.
pub fn os_user() -> Option<String> {
    if is_root() {
        Some("postgres".into())
    } else {
        None
    }
}

/// One test's world: a temp dir under /tmp owned by the PostgreSQL user, and the servers started in it, which
/// are SIGKILLed (postmaster and children) when it drops, whatever happened.
pub struct World {
    pub dir: tempfile::TempDir,
    data_dirs: Vec<PathBuf>,
    pub bin: PathBuf,
}

impl World {
    pub fn new(bin: PathBuf) -> World {
        let dir = tempfile::Builder::new()
            .prefix("pgctl-test-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if is_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        World {
            dir,
            data_dirs: Vec::new(),
            bin,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Settings for node `name` on a free port: scram passwords over TCP (so pgpass is exercised), trust on the
    /// local socket, short timeouts.
    pub fn settings(&mut self, name: &str) -> PgSettings {
        let port = free_port();
        let data_dir = self.path().join(name);
        self.data_dirs.push(data_dir.clone());
        let mut s = PgSettings::new(name, &self.bin, &data_dir, port);
        s.os_user = os_user();
        s.socket_dir = self.path().to_path_buf();
        s.superuser = Credentials::new("postgres", Some("su-secret"));
        s.replication = Credentials::new("replicator", Some("rep-secret"));
        s.rewind = Some(Credentials::new("rewinder", Some("rw-secret")));
        s.pg_hba = vec![
            "local all all trust".into(),
            "host all all 127.0.0.1/32 scram-sha-256".into(),
            "host replication replicator 127.0.0.1/32 scram-sha-256".into(),
        ];
        s.initdb = vec![
            InitdbOption::flag("no-sync"),
            InitdbOption::value("encoding", "UTF8"),
            InitdbOption::value("locale", "C"),
        ];
        // Durability is not under test here; speed is.
        s.parameters.insert("fsync".into(), "off".into());
        s.parameters.insert("shared_buffers".into(), "16MB".into());
        s.timeouts = Timeouts {
            query: Duration::from_secs(2),
            start: Duration::from_secs(30),
            primary_start_wait: Duration::from_secs(30),
            stop: Duration::from_secs(30),
            promote: Duration::from_secs(30),
            initdb: Duration::from_secs(60),
            clone: Duration::from_secs(60),
            rewind: Duration::from_secs(60),
            command: Duration::from_secs(10),
        };
        s
    }

    pub async fn node(&mut self, name: &str) -> PgCtl {
        let s = self.settings(name);
        PgCtl::new(s).await.expect("valid settings")
    }

    /// A bootstrapped primary `n1`, running.
    pub async fn primary(&mut self) -> PgCtl {
        let n1 = self.node("n1").await;
        n1.bootstrap().await.expect("bootstrap");
        n1
    }

    /// A primary `n1` and a replica `n2` streaming from it, with a table `t(v text)` whose one row, `first_row`,
    /// `n2` has replayed: where the failover and rewind tests start.
    pub async fn primary_and_replica(&mut self, first_row: &str) -> (PgCtl, PgCtl) {
        let n1 = self.primary().await;
        let n2 = self.node("n2").await;
        n2.clone_from(&upstream(&n1)).await.expect("clone");
        n2.start_replica(Some(&upstream(&n1)))
            .await
            .expect("start replica");
        let create = format!("CREATE TABLE t(v text); INSERT INTO t VALUES ('{first_row}')");
        sql(&n1, &create).await;
        wait_rows(&n2, 1).await;
        (n1, n2)
    }

    /// Registers another data dir whose server must be killed at the end.
    pub fn track(&mut self, data_dir: PathBuf) {
        self.data_dirs.push(data_dir);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for dd in &self.data_dirs {
            if let Some(pid) = postmaster_pid(dd) {
                kill_tree(pid);
            }
        }
    }
}

pub fn postgres_ids() -> (u32, u32) {
    let out = std::process::Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .expect("id");
    let uid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("postgres user");
    let out = std::process::Command::new("id")
        .args(["-g", "postgres"])
        .output()
        .expect("id");
    let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

pub use ha_core::testing::free_port;

pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn children(pid: i32) -> Vec<i32> {
    let Ok(d) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// SIGKILL a postmaster and its children (the guard's last resort).
pub fn kill_tree(pid: i32) {
    if pid <= 1 {
        return;
    }
    let kids = children(pid);
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        for k in kids {
            libc::kill(k, libc::SIGKILL);
        }
    }
}

pub fn signal(pid: i32, sig: libc::c_int) {
    assert!(pid > 1);
    unsafe {
        libc::kill(pid, sig);
    }
}

pub fn upstream(ctl: &PgCtl) -> Upstream {
    Upstream::member(ctl.settings().name.clone(), ctl.settings().conn_url())
}

/// Runs SQL on a node (local socket, superuser) and returns the first column of every row as text.
pub async fn sql(ctl: &PgCtl, q: &str) -> Vec<String> {
    let (client, conn) = ctl
        .local_config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", ctl.settings().name));
    let h = tokio::spawn(conn);
    let msgs = tokio::time::timeout(Duration::from_secs(10), client.simple_query(q))
        .await
        .expect("query timed out")
        .unwrap_or_else(|e| panic!("{q} on {}: {e}", ctl.settings().name));
    h.abort();
    msgs.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .collect()
}

/// Polls `f` every 50 ms until it returns true, panicking with `what` after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILLs `ctl`'s postmaster: a crash, as a machine or the OOM killer leaves it.
pub fn kill_postmaster(ctl: &PgCtl) {
    signal(
        postmaster_pid(&ctl.settings().data_dir).expect("a running postmaster"),
        libc::SIGKILL,
    );
}

/// Waits until `ctl` has replayed table `t` with `rows` rows (a standby catching up with its primary).
pub async fn wait_rows(ctl: &PgCtl, rows: u64) {
    let want = [rows.to_string()];
    wait_for(
        Duration::from_secs(20),
        "the standby to replay t",
        || async {
            sql(ctl, "SELECT count(*) FROM pg_class WHERE relname = 't'").await == ["1"]
                && sql(ctl, "SELECT count(*) FROM t").await == want
        },
    )
    .await;
}
