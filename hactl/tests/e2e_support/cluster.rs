//! What a test cluster is and how it starts from its [`Spec`]: each [`Node`], and the nodes' configuration files.

use super::dcs::secure_etcd;
use super::*;

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

pub struct Cluster {
    pub dir: PathBuf,
    pub scope: String,
    pub dcs: DcsServer,
    pub nodes: Vec<Node>,
    pub haproxy: Option<Child>,
    /// `hactl template` rendering HAProxy's config (see [`Spec::templated_haproxy`]).
    pub template: Option<Child>,
    pub write_port: u16,
    pub read_port: u16,
    /// The nodes' DCS section is `etcd:` (v2), see [`Spec::etcd_v2`].
    pub etcd_v2: bool,
    /// HAProxy's runtime API (`stats socket ipv4@127.0.0.1:PORT level admin`), which every node's
    /// `haproxy.runtime_api` names: a promotion is routed to at once, not at the next health check.
    pub haproxy_api_port: u16,
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
    pub(super) hactl: PathBuf,
    /// Watches every node from the writer's start (see [`super::scenario::cluster_with_writer_as`]); `finish`
    /// asserts it never saw two primaries at once.
    pub census: Option<Census>,
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
            template: None,
            write_port: free_port(),
            read_port: free_port(),
            haproxy_api_port: free_port(),
            etcd_v2: spec.etcd_v2,
            timing,
            hactl: PathBuf::from(env!("CARGO_BIN_EXE_hactl")),
            census: None,
            dir,
        };
        for i in 1..=n {
            c.add_node(i);
        }
        for i in 0..running {
            c.start_daemon(i);
        }
        if spec.templated_haproxy {
            c.start_templated_haproxy().await;
        } else {
            c.start_haproxy();
        }
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
        let dcs = if self.etcd_v2 {
            dcs.replacen("etcd3:", "etcd:", 1)
        } else {
            dcs
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
  proxy_address: 127.0.0.1:{write_port}
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
            write_port = self.write_port,
            lw = t.loop_wait_s,
            rt = t.retry_timeout_s,
            data = data_dir.display(),
            home = home.display(),
        );
        let yaml = format!(
            "{yaml}haproxy:\n  runtime_api: 127.0.0.1:{}\n",
            self.haproxy_api_port
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
