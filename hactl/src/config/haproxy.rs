//! `haproxy` (hactl's own section; Patroni has none): the HAProxy runtime APIs this node tells at once when it
//! becomes or stops being the primary, so HAProxy routes writes to the new primary without waiting for its next
//! health check (see [`crate::daemon::haproxy`]). The checks stay the safety net.

use std::path::PathBuf;

use super::value::Section;
use super::ConfigError;

/// Where an HAProxy runtime API listens (its `stats socket ... level admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeApi {
    /// A unix socket path (`/run/haproxy/admin.sock`).
    Unix(PathBuf),
    /// `host:port` of a TCP socket (`stats socket ipv4@127.0.0.1:9999 level admin`).
    Tcp(String),
}

impl RuntimeApi {
    fn parse(s: &str) -> RuntimeApi {
        let s = s.trim();
        match s
            .strip_prefix("unix@")
            .or_else(|| s.starts_with('/').then_some(s))
        {
            Some(path) => RuntimeApi::Unix(PathBuf::from(path)),
            None => RuntimeApi::Tcp(
                s.trim_start_matches("ipv4@")
                    .trim_start_matches("ipv6@")
                    .to_string(),
            ),
        }
    }
}

/// `haproxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaproxyConfig {
    /// `runtime_api`: one address or a list (one per HAProxy in front of the cluster); empty: none is told.
    pub runtime_api: Vec<RuntimeApi>,
    /// `primary_backend`: the listen/backend that routes writes (`primary`, as in Patroni's HAProxy examples).
    pub primary_backend: String,
    /// `replica_backend`: the one that routes reads (`replicas`).
    pub replica_backend: String,
    /// `server`: this node's server name in both (default: the member name, as the confd templates write it).
    pub server: Option<String>,
}

impl Default for HaproxyConfig {
    fn default() -> Self {
        HaproxyConfig {
            runtime_api: Vec::new(),
            primary_backend: "primary".into(),
            replica_backend: "replicas".into(),
            server: None,
        }
    }
}

pub(super) fn parse_haproxy(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<HaproxyConfig, ConfigError> {
    let mut c = HaproxyConfig::default();
    if s.map.is_none() {
        return Ok(c);
    }
    s.warn_unknown(
        &[
            "runtime_api",
            "primary_backend",
            "replica_backend",
            "server",
        ],
        warnings,
    );
    c.runtime_api = s
        .string_list("runtime_api")?
        .unwrap_or_default()
        .iter()
        .map(|a| RuntimeApi::parse(a))
        .collect();
    if let Some(b) = s.string("primary_backend")? {
        c.primary_backend = b;
    }
    if let Some(b) = s.string("replica_backend")? {
        c.replica_backend = b;
    }
    c.server = s.string("server")?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_addresses_are_unix_paths_or_tcp_host_ports() {
        let c = crate::config::Config::from_yaml_str(
            "scope: s\nname: n\nhaproxy:\n  runtime_api: [/run/haproxy/admin.sock, 'ipv4@127.0.0.1:9999', 'unix@/tmp/h.sock']\n  primary_backend: pg_rw\n",
        )
        .unwrap();
        assert_eq!(
            c.haproxy.runtime_api,
            vec![
                RuntimeApi::Unix("/run/haproxy/admin.sock".into()),
                RuntimeApi::Tcp("127.0.0.1:9999".into()),
                RuntimeApi::Unix("/tmp/h.sock".into()),
            ]
        );
        assert_eq!(c.haproxy.primary_backend, "pg_rw");
        assert_eq!(c.haproxy.replica_backend, "replicas");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = crate::config::Config::from_yaml_str("scope: s\nname: n\nhaproxy:\n  socket: /x\n")
            .unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("haproxy.socket")),
            "{:?}",
            c.warnings
        );
    }
}
