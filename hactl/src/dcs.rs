//! Builds the DCS client the config names. The daemon gets a node client (it owns a lease for its leader and member
//! keys); the CLI and the REST API's writes get a lease-less ctl client, as patronictl does.

use std::sync::Arc;
use std::time::Duration;

use ha_core::dcs::Dcs;

use crate::config::{Config, DcsConfig, EtcdConfig};

/// Why no DCS client could be built.
#[derive(Debug, thiserror::Error)]
pub enum DcsBuildError {
    #[error("no DCS configured: add one of `etcd3`, `etcd`, `consul`, `zookeeper`")]
    NotConfigured,
    #[error("`{0}` is not available in this build of hactl yet; use etcd3")]
    Unsupported(&'static str),
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
    let retry_ms = config
        .bootstrap
        .dcs
        .timing()
        .map(|t| t.retry_timeout_ms)
        .unwrap_or(10_000);
    s.request_timeout = Duration::from_millis(retry_ms);
    s
}

/// The DCS client for `config`.
pub fn connect(config: &Config, mode: DcsMode) -> Result<Arc<dyn Dcs>, DcsBuildError> {
    let dcs = config.dcs.as_ref().ok_or(DcsBuildError::NotConfigured)?;
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
        DcsConfig::Consul(_) => Err(DcsBuildError::Unsupported("consul")),
        DcsConfig::Zookeeper(_) => Err(DcsBuildError::Unsupported("zookeeper")),
    }
}
