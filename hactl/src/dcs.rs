//! Builds the DCS client the config names. The daemon gets a node client (it owns a lease for its leader and member
//! keys); the CLI and the REST API's writes get a lease-less ctl client, as patronictl does. etcd3 (and `etcd`,
//! spoken as v3), Consul and ZooKeeper are built in.

use std::sync::Arc;
use std::time::Duration;

use ha_core::dcs::{Dcs, DcsClient};

use crate::config::{Config, DcsConfig, EtcdConfig};

/// Why no DCS client could be built.
#[derive(Debug, thiserror::Error)]
pub enum DcsBuildError {
    #[error("no DCS configured: add one of `etcd3`, `etcd`, `consul`, `zookeeper`")]
    NotConfigured,
    #[error("`{0}` support is not built into this hactl (cargo feature `{0}`)")]
    NotBuiltIn(&'static str),
    /// A TLS file named by the DCS section cannot be read or used (the error names the key).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("`{section}`: {message}")]
    Invalid {
        section: &'static str,
        message: String,
    },
}

/// A node's client (with a lease) or a ctl client (without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DcsMode {
    Node,
    Ctl,
}

/// A private key as PEM text, for clients that take PEM (tonic's `Identity`).
fn key_pem(key: &rustls::pki_types::PrivateKeyDer<'_>) -> Vec<u8> {
    use rustls::pki_types::PrivateKeyDer as K;
    let label = match key {
        K::Pkcs1(_) => "RSA PRIVATE KEY",
        K::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem(label, key.secret_der())
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

/// Every certificate of a PEM file, checked and re-encoded (so a file holding a key too passes only certificates).
fn certs_pem(path: &str, key: &str) -> Result<Vec<u8>, crate::tls::TlsError> {
    let certs = crate::tls::read_certs(std::path::Path::new(path), key)?;
    Ok(certs.iter().flat_map(|c| pem("CERTIFICATE", c)).collect())
}

/// `etcd3.cacert`, `cert`, `key`, `key_password`, read now, so a file that cannot be used refuses the start naming
/// its key. Patroni allows the key inside the `cert` file.
fn etcd_tls(section: &str, e: &EtcdConfig) -> Result<Option<dcs_etcd::EtcdTls>, DcsBuildError> {
    if e.protocol != "https" {
        return Ok(None);
    }
    let k = |name: &str| format!("{section}.{name}");
    let ca_pem = e
        .cacert
        .as_deref()
        .map(|p| certs_pem(p, &k("cacert")))
        .transpose()?;
    let identity = match &e.cert {
        Some(cert) => {
            let chain = certs_pem(cert, &k("cert"))?;
            let (key_path, key_name) = match &e.key {
                Some(p) => (p.as_str(), k("key")),
                None => (cert.as_str(), k("cert")),
            };
            let key = crate::tls::read_key(
                std::path::Path::new(key_path),
                e.key_password.as_deref(),
                &key_name,
                &k("key_password"),
            )?;
            Some((chain, key_pem(&key)))
        }
        None => None,
    };
    Ok(Some(dcs_etcd::EtcdTls { ca_pem, identity }))
}

fn etcd_settings(
    config: &Config,
    section: &str,
    e: &EtcdConfig,
) -> Result<dcs_etcd::EtcdSettings, DcsBuildError> {
    let mut s = dcs_etcd::EtcdSettings::new(
        e.hosts.iter().map(|h| format!("{}://{}", e.protocol, h)),
        config.scope.clone(),
        config.name.clone().unwrap_or_default(),
    );
    s.namespace = config.namespace.clone();
    s.username = e.username.clone();
    s.password = e.password.clone();
    s.tls = etcd_tls(section, e)?;
    // Every DCS call must finish within retry_timeout, so a hung etcd never stalls the loop longer.
    let retry_ms = config.bootstrap.dcs.timing().retry_timeout_ms;
    s.request_timeout = Duration::from_millis(retry_ms);
    Ok(s)
}

/// The DCS client for `config`. Call it inside a tokio runtime (the ZooKeeper client spawns its lease reaper).
pub fn connect_node(config: &Config) -> Result<Arc<dyn Dcs>, DcsBuildError> {
    connect(config, DcsMode::Node)
}

/// A lease-less client for `config`'s cluster, as the CLI and the REST API's writes use (patronictl's): it reads
/// and compare-and-sets the shared keys, and its type offers nothing that takes the lock or writes a member key.
pub fn connect_ctl(config: &Config) -> Result<Arc<dyn DcsClient>, DcsBuildError> {
    Ok(connect(config, DcsMode::Ctl)?)
}

fn connect(config: &Config, mode: DcsMode) -> Result<Arc<dyn Dcs>, DcsBuildError> {
    let dcs = config.dcs.as_ref().ok_or(DcsBuildError::NotConfigured)?;
    #[cfg_attr(
        not(any(feature = "consul", feature = "zookeeper")),
        allow(unused_variables)
    )]
    let timing = config.bootstrap.dcs.timing();
    match dcs {
        DcsConfig::Etcd3(e) | DcsConfig::Etcd(e) => {
            let section = dcs.kind();
            let settings = etcd_settings(config, section, e)?;
            let v2 = matches!(dcs, DcsConfig::Etcd(_));
            let built = match (mode, v2) {
                (DcsMode::Node, false) => {
                    dcs_etcd::EtcdDcs::new(settings).map(|d| Arc::new(d) as Arc<dyn Dcs>)
                }
                (DcsMode::Ctl, false) => {
                    dcs_etcd::EtcdDcs::ctl(settings).map(|d| Arc::new(d) as Arc<dyn Dcs>)
                }
                // Patroni's `etcd:` is etcd's v2 API, and so is ours: the same keys Patroni and v2 tools use.
                (DcsMode::Node, true) => {
                    dcs_etcd::EtcdV2Dcs::new(settings).map(|d| Arc::new(d) as Arc<dyn Dcs>)
                }
                (DcsMode::Ctl, true) => {
                    dcs_etcd::EtcdV2Dcs::ctl(settings).map(|d| Arc::new(d) as Arc<dyn Dcs>)
                }
            };
            built.map_err(|e| DcsBuildError::Invalid {
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
                tls: dcs_consul::ConsulTls {
                    cacert: c.cacert.clone(),
                    cert: c.cert.clone(),
                    key: c.key.clone(),
                    verify: c.verify,
                },
                dc: c.dc.clone().filter(|d| !d.is_empty()),
                consistency: match c.consistency.as_deref() {
                    Some("consistent") => Some(dcs_consul::Consistency::Consistent),
                    Some("stale") => Some(dcs_consul::Consistency::Stale),
                    _ => None,
                },
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
            let mut settings = dcs_zk::ZkSettings::new(
                z.hosts.join(","),
                config.namespace.clone(),
                config.scope.clone(),
                config.name.clone().unwrap_or_default(),
                Duration::from_millis(timing.ttl_ms),
                Duration::from_millis(timing.retry_timeout_ms),
            );
            settings.auth = z.auth_data.clone();
            for (principal, perms) in &z.set_acls {
                let acl = dcs_zk::acl_from_patroni(principal, perms).map_err(|message| {
                    DcsBuildError::Invalid {
                        section: "zookeeper.set_acls",
                        message,
                    }
                })?;
                settings.acl.push(acl);
            }
            Ok(match mode {
                DcsMode::Node => Arc::new(dcs_zk::ZkDcs::new(settings)) as Arc<dyn Dcs>,
                DcsMode::Ctl => Arc::new(dcs_zk::ZkDcs::ctl(settings)) as Arc<dyn Dcs>,
            })
        }
        #[cfg(not(feature = "zookeeper"))]
        DcsConfig::Zookeeper(_) => Err(DcsBuildError::NotBuiltIn("zookeeper")),
    }
}

/// One `load` at start-up, so that credentials or TLS settings the DCS rejects refuse the start naming the key
/// (Patroni would retry forever with a node that can never join). An unreachable DCS is not refused: it may come
/// later, and the HA loop rides that out.
pub async fn check_credentials(config: &Config, dcs: &dyn DcsClient) -> Result<(), DcsBuildError> {
    let Some(section) = config.dcs.as_ref().map(DcsConfig::kind) else {
        return Ok(());
    };
    match dcs.load().await {
        Err(ha_core::dcs::DcsError::Rejected(message)) => {
            let mut message = message;
            // The backends name their own settings (`cacert`); the config key is `<section>.cacert`.
            for k in ["cacert", "cert", "key"] {
                message = message.replace(&format!("`{k}`"), &format!("`{section}.{k}`"));
            }
            let hint = match section {
                "etcd3" | "etcd" if message.contains("authentication") => {
                    format!(" (check `{section}.username` and `{section}.password`)")
                }
                "zookeeper" if message.contains("NoAuth") => {
                    " (check `zookeeper.auth_data` against `zookeeper.set_acls`)".to_string()
                }
                "consul" if message.contains("403") || message.contains("ACL") => {
                    " (check `consul.token`)".to_string()
                }
                _ => String::new(),
            };
            Err(DcsBuildError::Invalid {
                section,
                message: format!("{message}{hint}"),
            })
        }
        _ => Ok(()),
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
        // https with the system's CAs builds; a TLS file that cannot be read refuses, naming its key.
        let c = config("etcd3: {hosts: ['127.0.0.1:2379'], protocol: https}");
        assert!(connect(&c, DcsMode::Ctl).is_ok());
        let c = config(
            "etcd3: {hosts: ['127.0.0.1:2379'], protocol: https, cacert: /nonexistent/ca.pem}",
        );
        match connect(&c, DcsMode::Ctl) {
            Err(DcsBuildError::Tls(e)) => assert_eq!(e.key, "etcd3.cacert"),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let c = config("etcd3: {hosts: ['127.0.0.1:2379'], protocol: http, username: u}");
        assert!(
            connect(&c, DcsMode::Ctl).is_ok(),
            "etcd auth over http is the server's choice"
        );
    }
}
