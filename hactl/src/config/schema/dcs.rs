//! The DCS sections: `etcd3`/`etcd`, `consul`, `zookeeper`, and the one a node uses.

#[allow(unused_imports)]
use super::*;

/// `etcd3` or `etcd`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdConfig {
    /// `host:port` of every endpoint (from `host`, `hosts` or `url`).
    pub hosts: Vec<String>,
    /// `http` or `https`.
    pub protocol: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The CA that signs the servers' certificates (https); the system's CAs when unset.
    pub cacert: Option<String>,
    /// The client certificate; its key is `key`, or inside this file when `key` is unset.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// The password of an encrypted (PKCS#8) `key`.
    pub key_password: Option<String>,
}

impl EtcdConfig {
    /// `http://h:p` for each host.
    pub fn endpoints(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| format!("{}://{}", self.protocol, h))
            .collect()
    }
}

/// `consul`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsulConfig {
    /// `host:port`, default `127.0.0.1:8500`.
    pub host: String,
    pub scheme: String,
    pub token: Option<String>,
    pub dc: Option<String>,
    pub consistency: Option<String>,
    pub checks: Option<Vec<String>>,
    pub register_service: bool,
    pub verify: Option<bool>,
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `zookeeper`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZookeeperConfig {
    pub hosts: Vec<String>,
    pub use_ssl: bool,
    /// `auth_data`: `(scheme, credential)` pairs sent on every connection, e.g. `("digest", "user:password")`.
    pub auth_data: Vec<(String, String)>,
    /// `set_acls`: `(principal, permissions)`; the principal is `scheme:id` (a bare x509 name is refused at load).
    pub set_acls: Vec<(String, Vec<String>)>,
}

/// The DCS section: Patroni uses the first one it finds in this order.
#[derive(Debug, Clone, PartialEq)]
pub enum DcsConfig {
    Etcd3(EtcdConfig),
    /// etcd's v2 API (`dcs_etcd::EtcdV2Dcs`), as Patroni's `etcd:` section: the v2 key space, apart from v3's.
    Etcd(EtcdConfig),
    Consul(ConsulConfig),
    Zookeeper(ZookeeperConfig),
}

impl DcsConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            DcsConfig::Etcd3(_) => "etcd3",
            DcsConfig::Etcd(_) => "etcd",
            DcsConfig::Consul(_) => "consul",
            DcsConfig::Zookeeper(_) => "zookeeper",
        }
    }
}
