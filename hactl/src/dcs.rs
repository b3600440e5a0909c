//! Builds the DCS client the config names. The daemon gets a node client (it owns a lease for its leader and member
//! keys); the CLI and the REST API's writes get a lease-less ctl client, as patronictl does. etcd3 (and `etcd`,
//! spoken as v3), Consul and ZooKeeper are built in.

use std::sync::Arc;
use std::time::Duration;

use ha_core::dcs::Dcs;

use crate::config::{Config, DcsConfig, EtcdConfig};

/// Why no DCS client could be built.
#[derive(Debug, thiserror::Error)]
pub enum DcsBuildError {
    #[error("no DCS configured: add one of `etcd3`, `etcd`, `consul`, `zookeeper`")]
    NotConfigured,
    #[error("`{0}` support is not built into this hactl (cargo feature `{0}`)")]
    NotBuiltIn(&'static str),
    #[error("`{section}`: {message}")]
    Invalid {
        section: &'static str,
        message: String,
    },
}

/// A node's client (with a lease) or a ctl client (without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DcsMode {
    Node,
    Ctl,
}

fn etcd_settings(config: &Config, e: &EtcdConfig) -> dcs_etcd::EtcdSettings {
    let mut s = dcs_etcd::EtcdSettings::new(
        e.hosts.iter().map(|h| format!("{}://{}", e.protocol, h)),
        config.scope.clone(),
        config.name.clone().unwrap_or_default(),
    );
    s.namespace = config.namespace.clone();
    s.username = e.username.clone();
    s.password = e.password.clone();
    // Every DCS call must finish within retry_timeout, so a hung etcd never stalls the loop longer.
    let retry_ms = config.bootstrap.dcs.timing().retry_timeout_ms;
    s.request_timeout = Duration::from_millis(retry_ms);
    s
}

/// The DCS client for `config`. Call it inside a tokio runtime (the ZooKeeper client spawns its lease reaper).
pub fn connect(config: &Config, mode: DcsMode) -> Result<Arc<dyn Dcs>, DcsBuildError> {
    let dcs = config.dcs.as_ref().ok_or(DcsBuildError::NotConfigured)?;
    #[cfg_attr(
        not(any(feature = "consul", feature = "zookeeper")),
        allow(unused_variables)
    )]
    let timing = config.bootstrap.dcs.timing();
    match dcs {
        DcsConfig::Etcd3(e) | DcsConfig::Etcd(e) => {
            let section = dcs.kind();
            let settings = etcd_settings(config, e);
            let built = match mode {
                DcsMode::Node => dcs_etcd::EtcdDcs::new(settings),
                DcsMode::Ctl => dcs_etcd::EtcdDcs::ctl(settings),
            };
            built
                .map(|d| Arc::new(d) as Arc<dyn Dcs>)
                .map_err(|e| DcsBuildError::Invalid {
                    section,
                    message: e.to_string(),
                })
        }
        #[cfg(feature = "consul")]
        DcsConfig::Consul(c) => {
            let settings = dcs_consul::ConsulSettings {
                url: format!("{}://{}", c.scheme, c.host),
                namespace: config.namespace.clone(),
                scope: config.scope.clone(),
                name: config.name.clone().unwrap_or_default(),
                ttl: Duration::from_millis(timing.ttl_ms),
                retry_timeout: Duration::from_millis(timing.retry_timeout_ms),
                token: c.token.clone(),
            };
            let built = match mode {
                DcsMode::Node => dcs_consul::ConsulDcs::new(settings),
                DcsMode::Ctl => dcs_consul::ConsulDcs::ctl(settings),
            };
            built
                .map(|d| Arc::new(d) as Arc<dyn Dcs>)
                .map_err(|e| DcsBuildError::Invalid {
                    section: "consul",
                    message: e.to_string(),
                })
        }
        #[cfg(not(feature = "consul"))]
        DcsConfig::Consul(_) => Err(DcsBuildError::NotBuiltIn("consul")),
        #[cfg(feature = "zookeeper")]
        DcsConfig::Zookeeper(z) => {
            let settings = dcs_zk::ZkSettings {
                hosts: z.hosts.join(","),
                namespace: config.namespace.clone(),
                scope: config.scope.clone(),
                name: config.name.clone().unwrap_or_default(),
                ttl: Duration::from_millis(timing.ttl_ms),
                retry_timeout: Duration::from_millis(timing.retry_timeout_ms),
            };
            Ok(match mode {
                DcsMode::Node => Arc::new(dcs_zk::ZkDcs::new(settings)) as Arc<dyn Dcs>,
                DcsMode::Ctl => Arc::new(dcs_zk::ZkDcs::ctl(settings)) as Arc<dyn Dcs>,
            })
        }
        #[cfg(not(feature = "zookeeper"))]
        DcsConfig::Zookeeper(_) => Err(DcsBuildError::NotBuiltIn("zookeeper")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dcs: &str) -> Config {
        Config::from_yaml_str(&format!("scope: batman\nname: node1\n{dcs}\n")).unwrap()
    }

    #[tokio::test]
    async fn every_backend_builds_without_network() {
        for dcs in [
            "etcd3: {hosts: ['127.0.0.1:2379']}",
            "etcd: {host: '127.0.0.1:2379'}",
            #[cfg(feature = "consul")]
            "consul: {host: '127.0.0.1:8500'}",
            #[cfg(feature = "zookeeper")]
            "zookeeper: {hosts: ['127.0.0.1:2181']}",
        ] {
            let c = config(dcs);
            for mode in [DcsMode::Node, DcsMode::Ctl] {
                assert!(connect(&c, mode).is_ok(), "{dcs} {mode:?}");
            }
        }
    }

    #[test]
    fn missing_or_unusable_dcs_is_a_typed_error() {
        let c = config("");
        assert!(matches!(
            connect(&c, DcsMode::Ctl),
            Err(DcsBuildError::NotConfigured)
        ));
        let c = config("etcd3: {hosts: ['127.0.0.1:2379'], protocol: https}");
        match connect(&c, DcsMode::Ctl) {
            Err(DcsBuildError::Invalid { section, .. }) => assert_eq!(section, "etcd3"),
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}
