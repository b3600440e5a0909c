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

#[path = "../common/certs.rs"]
pub mod certs;
pub mod forward;
pub mod scenario;
pub mod slots;

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

pub struct Node {
    /// The REST API serves HTTPS.
    pub https: bool,
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
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.api_port)
    }
    /// The node's directory: config, log, and PostgreSQL's unix socket.
    pub fn home(&self) -> PathBuf {
        self.data_dir
            .parent()
            .expect("data dir in the node dir")
            .to_path_buf()
    }
    /// Its PostgreSQL through the unix socket: reachable whatever happens to the network.
    pub fn socket(&self) -> Endpoint {
        Endpoint::Socket(self.home(), self.pg_port)
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

/// The DCS server(s) of a test cluster.
pub enum DcsServer {
    Etcd(Etcd),
    #[cfg(feature = "consul")]
    Consul(dcs_consul::testing::ConsulServer),
    #[cfg(feature = "zookeeper")]
    Zookeeper(dcs_zk::testing::ZkServer),
}

impl DcsServer {
    fn start(backend: Backend, dir: &Path, nodes: usize, etcd_members: usize) -> DcsServer {
        match backend {
            Backend::Etcd if etcd_members > 1 => DcsServer::Etcd(Etcd::Members(
                EtcdCluster::start(dir, etcd_members).expect("etcd cluster"),
            )),
            // One client port per node, so one node's link to etcd can be cut alone (a partition).
            Backend::Etcd => DcsServer::Etcd(Etcd::Single(
                EtcdServer::start_with_client_ports(dir, nodes).expect("etcd"),
            )),
            #[cfg(feature = "consul")]
            Backend::Consul => DcsServer::Consul(
                dcs_consul::testing::ConsulServer::start(&dir.join("consul")).expect("consul"),
            ),
            #[cfg(feature = "zookeeper")]
            Backend::Zookeeper => DcsServer::Zookeeper(
                dcs_zk::testing::ZkServer::start(&dir.join("zookeeper")).expect("zookeeper"),
            ),
        }
    }

    /// Node `i`'s DCS section of its config file.
    fn yaml(&self, i: usize) -> String {
        match self {
            DcsServer::Etcd(Etcd::Single(s)) => format!(
                "etcd3:\n  hosts: [{}]\n",
                s.extra_endpoint(i)
                    .unwrap_or_else(|| s.endpoint())
                    .trim_start_matches("http://")
            ),
            DcsServer::Etcd(e) => format!("etcd3:\n  hosts: [{}]\n", e.hosts()),
            #[cfg(feature = "consul")]
            DcsServer::Consul(s) => format!("consul:\n  host: 127.0.0.1:{}\n", s.http_port()),
            #[cfg(feature = "zookeeper")]
            DcsServer::Zookeeper(s) => format!("zookeeper:\n  hosts: ['{}']\n", s.hosts()),
        }
    }

    /// The whole DCS goes away (every server SIGKILLed; the data stays).
    pub fn stop(&mut self) {
        match self {
            DcsServer::Etcd(Etcd::Single(s)) => s.stop(),
            DcsServer::Etcd(Etcd::Members(m)) => m.stop_all(),
            #[cfg(feature = "consul")]
            DcsServer::Consul(s) => s.stop(),
            #[cfg(feature = "zookeeper")]
            DcsServer::Zookeeper(s) => s.stop(),
        }
    }

    /// The DCS comes back with its data.
    pub fn start_again(&mut self) {
        match self {
            DcsServer::Etcd(Etcd::Single(s)) => s.start_again().expect("etcd again"),
            DcsServer::Etcd(Etcd::Members(m)) => m.start_all().expect("etcd cluster again"),
            #[cfg(feature = "consul")]
            DcsServer::Consul(s) => s.start_again().expect("consul again"),
            #[cfg(feature = "zookeeper")]
            DcsServer::Zookeeper(s) => s.start_again().expect("zookeeper again"),
        }
    }

    /// The one client port of a Consul or ZooKeeper server (`None` for etcd, which has one per node).
    fn client_port(&self) -> Option<u16> {
        match self {
            DcsServer::Etcd(_) => None,
            #[cfg(feature = "consul")]
            DcsServer::Consul(s) => Some(s.http_port()),
            #[cfg(feature = "zookeeper")]
            DcsServer::Zookeeper(s) => s.hosts().rsplit(':').next()?.parse().ok(),
        }
    }

    /// A Consul or ZooKeeper section reaching the server through `port` (a forwarder).
    fn yaml_at(&self, port: u16) -> String {
        match self {
            #[cfg(feature = "consul")]
            DcsServer::Consul(_) => format!("consul:\n  host: 127.0.0.1:{port}\n"),
            #[cfg(feature = "zookeeper")]
            DcsServer::Zookeeper(_) => format!("zookeeper:\n  hosts: ['127.0.0.1:{port}']\n"),
            _ => self.yaml(0),
        }
    }

    /// The TCP port node `i` reaches the DCS on, when it has one of its own (single etcd).
    pub fn own_port_of(&self, i: usize) -> Option<u16> {
        match self {
            DcsServer::Etcd(Etcd::Single(s)) => s
                .extra_endpoint(i)
                .and_then(|e| e.rsplit(':').next()?.parse().ok()),
            _ => None,
        }
    }
}

/// What to start: the defaults are 3 nodes, all running, on one etcd, with [`FAST`] timings and failsafe off.
#[derive(Debug, Clone)]
pub struct Spec {
    pub test: String,
    pub nodes: usize,
    pub running: usize,
    pub timing: Timing,
    pub backend: Backend,
    pub etcd_members: usize,
    pub failsafe_mode: bool,
    /// `synchronous_mode` and `synchronous_mode_strict` on.
    pub synchronous: bool,
    /// `synchronous_mode: quorum` (with `synchronous_mode_strict`), instead of `on`.
    pub quorum: bool,
    /// Consul and ZooKeeper reached through a forwarder per node, so that [`Partition::cut`] can cut one node.
    pub partitionable: bool,
    /// TLS on the REST API (client certificates required), for the CLI, HAProxy's checks and Prometheus.
    pub tls: bool,
    /// Permanent slots in the configuration (`keep_me` physical, `cdc` logical with test_decoding) and
    /// `wal_level: logical`.
    pub slots: bool,
    /// A standby cluster of the PostgreSQL listening on this port (127.0.0.1): `standby_cluster` in bootstrap.dcs.
    pub standby_of: Option<u16>,
}

impl Spec {
    pub fn new(test: &str) -> Spec {
        Spec {
            test: test.to_string(),
            nodes: 3,
            running: 3,
            timing: FAST,
            backend: Backend::Etcd,
            etcd_members: 1,
            failsafe_mode: false,
            synchronous: false,
            quorum: false,
            partitionable: false,
            tls: false,
            slots: false,
            standby_of: None,
        }
    }
    /// A standby cluster following the PostgreSQL on `port` (another cluster's HAProxy write port, so that a
    /// switchover there needs nothing from this one).
    pub fn standby_of(mut self, port: u16) -> Spec {
        self.standby_of = Some(port);
        self
    }
    /// Permanent slots: `keep_me` (physical) and `cdc` (logical, test_decoding), with `wal_level: logical`.
    pub fn slots(mut self) -> Spec {
        self.slots = true;
        self
    }
    /// Strict synchronous replication: every acknowledged commit is on the synchronous standby.
    pub fn synchronous(mut self) -> Spec {
        self.synchronous = true;
        self
    }
    /// Strict quorum commit: every acknowledged commit is on any `synchronous_node_count` of the standbys, and a
    /// node is elected only with a quorum's votes.
    pub fn quorum(mut self) -> Spec {
        self.synchronous = true;
        self.quorum = true;
        self
    }
    /// One node's link to the DCS can be cut alone (on every backend).
    pub fn partitionable(mut self) -> Spec {
        self.partitionable = true;
        self
    }
    pub fn tls(mut self) -> Spec {
        self.tls = true;
        self
    }
    pub fn on(mut self, backend: Backend) -> Spec {
        self.backend = backend;
        self
    }
    pub fn timing(mut self, timing: Timing) -> Spec {
        self.timing = timing;
        self
    }
    pub fn failsafe(mut self) -> Spec {
        self.failsafe_mode = true;
        self
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub scope: String,
    pub dcs: DcsServer,
    pub nodes: Vec<Node>,
    pub haproxy: Option<Child>,
    pub write_port: u16,
    pub read_port: u16,
    pub timing: Timing,
    pub failsafe_mode: bool,
    pub synchronous: bool,
    pub quorum: bool,
    /// Per-node forwarders to a Consul or ZooKeeper server (see [`Spec::partitionable`]).
    pub dcs_forwarders: Vec<forward::Forwarder>,
    /// Permanent slots (see [`Spec::slots`]).
    pub slots: bool,
    /// See [`Spec::standby_of`].
    pub standby_of: Option<u16>,
    /// The test PKI when the REST API serves HTTPS; `http` trusts its CA and shows its client certificate.
    pub tls: Option<certs::TestPki>,
    pub http: reqwest::Client,
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
        Cluster::start_spec(Spec {
            nodes: n,
            running,
            timing,
            etcd_members,
            ..Spec::new(test)
        })
        .await
    }

    /// Starts what `spec` says; returns once one node is primary and the other running ones stream from it.
    pub async fn start_spec(spec: Spec) -> Cluster {
        let (test, n, running, timing) =
            (spec.test.as_str(), spec.nodes, spec.running, spec.timing);
        let dir = PathBuf::from(format!("/tmp/hactl-e2e-{}-{}", test, std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("e2e dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        let tls = spec.tls.then(|| certs::make_pki(&dir, "e2e"));
        let dcs = match (&tls, spec.backend) {
            (Some(pki), Backend::Etcd) => DcsServer::Etcd(Etcd::Single(secure_etcd(&dir, pki))),
            #[cfg(feature = "consul")]
            (Some(pki), Backend::Consul) => DcsServer::Consul(
                dcs_consul::testing::ConsulServer::start_tls(
                    &dir.join("consul"),
                    dcs_consul::testing::ConsulTlsFiles {
                        cert: pki.server_cert.clone(),
                        key: pki.server_key.clone(),
                        ca: pki.ca.clone(),
                    },
                )
                .expect("consul over TLS"),
            ),
            _ => DcsServer::start(spec.backend, &dir, n, spec.etcd_members),
        };
        let http = match &tls {
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
            Some(p) => reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .use_preconfigured_tls(
                    hactl::tls::client::client_config(&hactl::tls::client::ClientTlsSettings {
                        cacert: Some(p.ca.clone()),
                        certfile: Some(p.client_cert.clone()),
                        keyfile: Some(p.client_key.clone()),
                        ..Default::default()
                    })
                    .expect("client TLS"),
                )
                .build()
                .expect("client"),
        };
        let dcs_forwarders = match dcs.client_port().filter(|_| spec.partitionable) {
            Some(port) => (0..n).map(|_| forward::Forwarder::start(port)).collect(),
            None => Vec::new(),
        };
        let mut c = Cluster {
            tls,
            http,
            scope: format!("e2e-{test}"),
            dcs,
            failsafe_mode: spec.failsafe_mode,
            synchronous: spec.synchronous,
            quorum: spec.quorum,
            dcs_forwarders,
            slots: spec.slots,
            standby_of: spec.standby_of,
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
            let up = if spec.standby_of.is_some() {
                c.leader().await
            } else {
                c.primary().await
            };
            if let Some(p) = up {
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
        let pg = PgTls::for_node(self.tls.as_ref(), &home);
        let dcs = match (&self.tls, &self.dcs) {
            (Some(p), DcsServer::Etcd(Etcd::Single(s))) => format!(
                "etcd3:\n  hosts: [{}]\n  protocol: https\n  cacert: {}\n  cert: {}\n  key: {}\n  username: root\n  password: {ETCD_ROOT_PASSWORD}\n",
                s.endpoint().trim_start_matches("https://"),
                p.ca.display(),
                p.client_cert.display(),
                p.client_key.display()
            ),
            // Consul's HTTP API over HTTPS, requiring the test CA's client certificate.
            #[cfg(feature = "consul")]
            (Some(p), DcsServer::Consul(s)) => format!(
                "consul:\n  host: 127.0.0.1:{}\n  scheme: https\n  cacert: {}\n  cert: {}\n  key: {}\n",
                s.https_port(),
                p.ca.display(),
                p.client_cert.display(),
                p.client_key.display()
            ),
            // ZooKeeper has no TLS in hactl's client: the cluster's znodes are closed to everyone but the digest
            // user the nodes authenticate as (Patroni's `auth_data` and `set_acls`).
            #[cfg(feature = "zookeeper")]
            (Some(_), DcsServer::Zookeeper(s)) => format!(
                "zookeeper:\n  hosts: ['{}']\n  auth_data: {{digest: '{ZK_DIGEST}'}}\n  set_acls: {{'auth:': [ALL]}}\n",
                s.hosts()
            ),
            _ => match self.dcs_forwarders.get(i - 1) {
                Some(f) => self.dcs.yaml_at(f.port),
                None => self.dcs.yaml(i - 1),
            },
        };
        let (restapi_tls, ctl) = match &self.tls {
            None => (String::new(), String::new()),
            Some(p) => (
                format!(
                    "  certfile: {}\n  keyfile: {}\n  cafile: {}\n  verify_client: required\n",
                    p.server_cert.display(),
                    p.server_key.display(),
                    p.ca.display()
                ),
                format!(
                    "ctl:\n  certfile: {}\n  keyfile: {}\n  cacert: {}\n",
                    p.client_cert.display(),
                    p.client_key.display(),
                    p.ca.display()
                ),
            ),
        };
        let yaml = format!(
            r#"scope: {scope}
namespace: /service
name: {name}
restapi:
  listen: 127.0.0.1:{api_port}
  connect_address: 127.0.0.1:{api_port}
{restapi_tls}{ctl}{dcs}bootstrap:
  dcs:
    failsafe_mode: {failsafe}
    synchronous_mode: {sync_mode}
    synchronous_mode_strict: {sync}
    ttl: {ttl}
    loop_wait: {lw}
    retry_timeout: {rt}
    maximum_lag_on_failover: 1048576
{slots}{standby}    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: {wal_level}
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
    - local all all md5
{replication_hba}
    - host all all 127.0.0.1/32 md5
postgresql:
  listen: 127.0.0.1:{pg_port}
  connect_address: 127.0.0.1:{pg_port}
  data_dir: {data}
  bin_dir: {PG_BIN}
  pgpass: {home}/pgpass
  authentication:
    replication: {{username: replicator, password: rep-pass{ssl_options}}}
    superuser: {{username: postgres, password: {SUPERUSER_PASSWORD}{ssl_options}}}
    rewind: {{username: rewind_user, password: rewind-pass{ssl_options}}}
  parameters:
    unix_socket_directories: {home}
    fsync: "off"
{ssl_parameters}tags: {{}}
"#,
            scope = self.scope,
            replication_hba = pg.hba,
            ssl_options = pg.options,
            ssl_parameters = pg.parameters,
            failsafe = self.failsafe_mode,
            sync = self.synchronous,
            sync_mode = if self.quorum {
                "quorum".to_string()
            } else {
                self.synchronous.to_string()
            },
            slots = if self.slots {
                "    slots:\n      keep_me: {type: physical}\n      cdc: {type: logical, database: postgres, plugin: test_decoding}\n"
            } else {
                ""
            },
            wal_level = if self.slots { "logical" } else { "replica" },
            standby = match self.standby_of {
                Some(port) => format!("    standby_cluster: {{host: 127.0.0.1, port: {port}}}\n"),
                None => String::new(),
            },
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
            https: self.tls.is_some(),
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
        // E2E_RUST_LOG=debug,h2=info… gives the daemons' finer logs when looking into a scenario.
        cmd.env(
            "RUST_LOG",
            std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into()),
        );
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
        // Over HTTPS HAProxy verifies the nodes against the test CA and shows the client certificate they require.
        let ssl = match &self.tls {
            None => String::new(),
            Some(p) => {
                let pem = self.dir.join("haproxy-client.pem");
                let text = fs::read_to_string(&p.client_cert).expect("client cert")
                    + &fs::read_to_string(&p.client_key).expect("client key");
                fs::write(&pem, text).expect("haproxy client pem");
                format!(
                    " check-ssl verify required ca-file {} crt {}",
                    p.ca.display(),
                    pem.display()
                )
            }
        };
        let servers = |check: &str| {
            self.nodes
                .iter()
                .map(|n| {
                    format!(
                        "    server {} 127.0.0.1:{} check port {}{ssl}\n",
                        n.name, n.pg_port, n.api_port
                    )
                })
                .collect::<String>()
                + &format!("    option httpchk GET {check}\n    http-check expect status 200\n")
        };
        // The global and defaults sections are the shipped example's, so the figures are those of the config users get.
        let cfg = format!(
            "{shipped}listen primary\n    bind 127.0.0.1:{w}\n{p}listen replicas\n    bind 127.0.0.1:{r}\n    balance roundrobin\n{rp}",
            shipped = shipped_haproxy_defaults(),
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
        // A failed scenario keeps its directory (logs, data) for a look; E2E_KEEP=1 keeps every one.
        if !std::thread::panicking() && std::env::var_os("E2E_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

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

    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
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

/// A network partition of one node, made with iptables: every packet to or from its DCS port (its own etcd client
/// port), its PostgreSQL port and its REST port is dropped, so its links hang as a cut cable makes them hang (no
/// reset). Its unix socket still works: a client on the node itself stays on its side of the cut. Healed on drop.
pub struct Partition {
    chain: String,
}

impl Partition {
    /// True when iptables can be used here (root, and the binary installed); under CI its absence is a failure.
    pub fn available(test: &str) -> bool {
        let ok = Command::new("iptables")
            .args(["-w", "-L", "INPUT", "-n"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_or(false, |s| s.success());
        if !ok {
            if std::env::var("CI").map_or(false, |v| v == "true") {
                panic!("{test}: iptables is not usable under CI (run scripts/install.sh as root)");
            }
            eprintln!("{test}: skipped, iptables is not usable here");
        }
        ok
    }

    pub fn cut(c: &Cluster, i: usize) -> Partition {
        let chain = format!("HACTL-E2E-{}", std::process::id());
        let ipt = |args: &[&str]| {
            let st = Command::new("iptables")
                .arg("-w")
                .args(args)
                .status()
                .expect("iptables");
            assert!(st.success(), "iptables {args:?} failed");
        };
        ipt(&["-N", &chain]);
        let n = &c.nodes[i];
        let ports = [
            c.dcs_forwarders
                .get(i)
                .map(|f| f.port)
                .or_else(|| c.dcs.own_port_of(i))
                .expect("the node has a DCS port of its own (Spec::partitionable on Consul and ZooKeeper)"),
            n.pg_port,
            n.api_port,
        ];
        for port in ports {
            for dir in ["--dport", "--sport"] {
                ipt(&[
                    "-A",
                    &chain,
                    "-p",
                    "tcp",
                    dir,
                    &port.to_string(),
                    "-j",
                    "DROP",
                ]);
            }
        }
        ipt(&["-I", "INPUT", "-j", &chain]);
        Partition { chain }
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for args in [
            vec!["-D", "INPUT", "-j", &self.chain],
            vec!["-F", &self.chain],
            vec!["-X", &self.chain],
        ] {
            let _ = Command::new("iptables").arg("-w").args(&args).status();
        }
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

    /// Whether node `i`'s fencer process (`hactl fencer DATA_DIR`) runs.
    pub fn fencer_running(&self, i: usize) -> bool {
        let pattern = format!("hactl fencer {}", self.nodes[i].data_dir.display());
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
}

/// Waits until writes flow again and returns the longest gap since the fault.
pub async fn write_gap(c: &Cluster, w: &Writer, fault_at: Instant) -> Duration {
    assert!(
        w.wait_progress(25, Duration::from_secs(60)).await,
        "writes did not resume through HAProxy\n{}",
        c.dump_logs()
    );
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

/// The ZooKeeper digest user and password of a TLS cluster's nodes.
pub const ZK_DIGEST: &str = "hactl:zk-secret";

/// etcd's root password in a TLS cluster.
pub const ETCD_ROOT_PASSWORD: &str = "etcd-root-pass";

/// etcd speaking only HTTPS, requiring a client certificate of the test CA, with user authentication on (a root
/// user whose password the nodes' configs carry), enabled with `etcdctl` as an operator would.
fn secure_etcd(dir: &Path, pki: &certs::TestPki) -> EtcdServer {
    let server = EtcdServer::start_tls(
        dir,
        dcs_etcd::testing::ServerTlsFiles {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: pki.ca.clone(),
        },
    )
    .expect("etcd over TLS");
    let etcdctl = |args: &[&str]| {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", server.endpoint()))
            .arg(format!("--cacert={}", pki.ca.display()))
            .arg(format!("--cert={}", pki.client_cert.display()))
            .arg(format!("--key={}", pki.client_key.display()))
            .args(args)
            .output()
            .expect("etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    etcdctl(&["user", "add", &format!("root:{ETCD_ROOT_PASSWORD}")]);
    etcdctl(&["user", "grant-role", "root", "root"]);
    etcdctl(&["auth", "enable"]);
    server
}

/// A node's PostgreSQL TLS in a TLS cluster: `ssl = on` with the test CA's server certificate, replication only
/// over `hostssl ... clientcert=verify-ca`, and every role connecting with `sslmode: verify-ca` and a client
/// certificate. The keys are copied for the postgres OS user (PostgreSQL and libpq refuse a key others can read).
struct PgTls {
    hba: String,
    options: String,
    parameters: String,
}

impl PgTls {
    fn for_node(pki: Option<&certs::TestPki>, home: &Path) -> PgTls {
        let Some(p) = pki else {
            return PgTls {
                hba: "    - host replication replicator 127.0.0.1/32 md5".into(),
                options: String::new(),
                parameters: String::new(),
            };
        };
        let own = |src: &Path, name: &str| {
            let dst = home.join(name);
            fs::copy(src, &dst).expect("copy a key");
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o600)).expect("chmod 600");
            chown_postgres(&dst);
            dst
        };
        let server_key = own(&p.server_key, "pg-server.key");
        let client_key = own(&p.client_key, "pg-client.key");
        PgTls {
            hba: "    - hostssl replication replicator 127.0.0.1/32 md5 clientcert=verify-ca".into(),
            options: format!(
                ", sslmode: verify-ca, sslrootcert: {}, sslcert: {}, sslkey: {}",
                p.ca.display(),
                p.client_cert.display(),
                client_key.display()
            ),
            parameters: format!(
                "    ssl: \"on\"\n    ssl_cert_file: {}\n    ssl_key_file: {}\n    ssl_ca_file: {}\n",
                p.server_cert.display(),
                server_key.display(),
                p.ca.display()
            ),
        }
    }
}

/// `examples/haproxy/haproxy.cfg` up to its first `listen` section: the `global` and `defaults` users deploy.
fn shipped_haproxy_defaults() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/haproxy/haproxy.cfg");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let end = text
        .find("\nlisten ")
        .expect("a listen section in the example");
    text[..=end].to_string()
}
