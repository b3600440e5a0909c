//! End-to-end test support: a real cluster on loopback — etcd, N `hactl run` daemons each with its PostgreSQL 15,
//! HAProxy in front (writes and reads frontends checking `/primary` and `/replica`) — plus a writer that commits
//! through HAProxy every 20 ms and records every acknowledged row.
//!
//! Every process is started here and killed by its PID on drop (daemons, HAProxy, and each node's postmaster from
//! its `postmaster.pid`), so a failing scenario leaves nothing running. The daemons run as the unprivileged
//! `postgres` OS user, like Patroni: PostgreSQL refuses root.

#![allow(dead_code, unused_imports)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dcs_etcd::testing::{free_port, EtcdCluster, EtcdServer};

pub mod census;
#[path = "../common/certs.rs"]
pub mod certs;
pub mod cluster;
pub mod dcs;
pub mod forward;
pub mod partition;
pub mod processes;
pub mod queries;
pub mod scenario;
pub mod slots;
pub mod spec;
pub mod vip;
pub mod writer;

pub use census::{assert_no_corruption, Census};
pub use cluster::{Cluster, Node};
pub use dcs::{DcsServer, Etcd, ETCD_ROOT_PASSWORD, ZK_DIGEST};
pub use partition::Partition;
pub use spec::Spec;
pub use vip::VipSite;
pub use writer::{finish, lost_rows, record, write_gap, Endpoint, Writer};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
pub const SUPERUSER_PASSWORD: &str = "super-pass";

/// Scenarios run one at a time: each starts a whole cluster and the machine has two cores.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// Which DCS a test cluster runs on: etcd by default; the scenarios marked * in issue 6 also on Consul and ZooKeeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Etcd,
    #[cfg(feature = "consul")]
    Consul,
    #[cfg(feature = "zookeeper")]
    Zookeeper,
}

impl Backend {
    /// The suffix of a scenario's name in the figures table (none for etcd, the default).
    pub fn suffix(self) -> &'static str {
        match self {
            Backend::Etcd => "",
            #[cfg(feature = "consul")]
            Backend::Consul => "_consul",
            #[cfg(feature = "zookeeper")]
            Backend::Zookeeper => "_zookeeper",
        }
    }

    fn missing(self) -> Option<&'static str> {
        match self {
            Backend::Etcd => dcs_etcd::testing::etcd_binary()
                .is_none()
                .then_some("etcd-server"),
            #[cfg(feature = "consul")]
            Backend::Consul => (!dcs_consul::testing::binary_available()).then_some("consul"),
            #[cfg(feature = "zookeeper")]
            Backend::Zookeeper => (!dcs_zk::testing::binary_available()).then_some("zookeeper"),
        }
    }
}

/// True when the servers an e2e test on etcd needs are here; under CI a missing one is a failure.
pub fn prerequisites_or_skip(test: &str) -> bool {
    prerequisites_on(test, Backend::Etcd)
}

/// True when PostgreSQL, HAProxy, the postgres OS user and `backend`'s server are here; under CI a missing one is a
/// failure.
pub fn prerequisites_on(test: &str, backend: Backend) -> bool {
    let missing: Vec<&str> = [
        (format!("{PG_BIN}/postgres"), "postgresql-15"),
        ("/usr/sbin/haproxy".into(), "haproxy"),
    ]
    .iter()
    .filter(|(p, _)| !Path::new(p).exists())
    .map(|(_, n)| *n)
    .chain(backend.missing())
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

pub fn signal(pid: i32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}
