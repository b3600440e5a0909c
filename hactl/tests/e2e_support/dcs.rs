//! The DCS servers of a test cluster: one etcd (a client port per node, for partitions), a cluster of them, a
//! Consul or ZooKeeper server; and etcd secured for the TLS scenarios.

use super::*;
use ha_core::testing::Restartable;

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
    pub(super) fn start(
        backend: Backend,
        dir: &Path,
        nodes: usize,
        etcd_members: usize,
    ) -> DcsServer {
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
    pub(super) fn yaml(&self, i: usize) -> String {
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
    pub(super) fn client_port(&self) -> Option<u16> {
        match self {
            DcsServer::Etcd(_) => None,
            #[cfg(feature = "consul")]
            DcsServer::Consul(s) => Some(s.http_port()),
            #[cfg(feature = "zookeeper")]
            DcsServer::Zookeeper(s) => s.hosts().rsplit(':').next()?.parse().ok(),
        }
    }

    /// A Consul or ZooKeeper section reaching the server through `port` (a forwarder).
    pub(super) fn yaml_at(&self, port: u16) -> String {
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
/// The ZooKeeper digest user and password of a TLS cluster's nodes.
pub const ZK_DIGEST: &str = "hactl:zk-secret";

/// etcd's root password in a TLS cluster.
pub const ETCD_ROOT_PASSWORD: &str = "etcd-root-pass";

/// The test PKI's client files, for `etcdctl`.
pub fn etcdctl_files(pki: &certs::TestPki) -> dcs_etcd::testing::ClientTlsFiles {
    dcs_etcd::testing::ClientTlsFiles {
        ca: pki.ca.clone(),
        cert: pki.client_cert.clone(),
        key: pki.client_key.clone(),
    }
}

/// etcd speaking only HTTPS, requiring a client certificate of the test CA, with user authentication on (a root
/// user whose password the nodes' configs carry), enabled with `etcdctl` as an operator would.
pub(super) fn secure_etcd(dir: &Path, pki: &certs::TestPki) -> EtcdServer {
    let server = EtcdServer::start_tls(
        dir,
        dcs_etcd::testing::ServerTlsFiles {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: pki.ca.clone(),
        },
    )
    .expect("etcd over TLS");
    server
        .enable_root_auth(Some(&etcdctl_files(pki)), ETCD_ROOT_PASSWORD)
        .expect("etcd's authentication on");
    server
}
