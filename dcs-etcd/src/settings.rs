//! How to reach etcd and where the cluster lives in it, and how to prove who we are to it: TLS (CA, client
//! certificate) and etcd's own user authentication.

use std::time::Duration;

use crate::error::EtcdDcsError;

/// Patroni's default namespace: keys are `/service/<scope>/...` unless configured otherwise.
pub const DEFAULT_NAMESPACE: &str = "service";

/// Patroni's default `retry_timeout` (10 s): the deadline of every call when the settings do not say.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings of one [`crate::EtcdDcs`] (Patroni's `etcd3:` section plus the node's identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Client URLs of the etcd members: `host:port` or `http://host:port`. All members should be listed, so a
    /// stopped member is skipped and the next one answers.
    pub endpoints: Vec<String>,
    /// Patroni's `namespace` (`service` by default).
    pub namespace: String,
    /// Patroni's `scope`: the cluster name.
    pub scope: String,
    /// This node's member name (Patroni's `name`). Unused in ctl mode.
    pub name: String,
    /// etcd authentication, when the server has it enabled.
    pub username: Option<String>,
    /// `username`'s password (Patroni's `etcd3.password`); refused without a username. `None` with a username: the
    /// empty password.
    pub password: Option<String>,
    /// TLS material for `https://` endpoints; `None` with `https://` endpoints: the system's CA certificates and no
    /// client certificate.
    pub tls: Option<EtcdTls>,
    /// The deadline of every call, `retry_timeout` in Patroni's configuration: an unreachable etcd yields
    /// `DcsError::Unreachable` after at most this long.
    pub request_timeout: Duration,
}

impl EtcdSettings {
    /// Settings with Patroni's defaults for everything but the endpoints, the scope and the node name.
    pub fn new(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
        scope: impl Into<String>,
        name: impl Into<String>,
    ) -> EtcdSettings {
        EtcdSettings {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            scope: scope.into(),
            name: name.into(),
            username: None,
            password: None,
            tls: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Checks what can be checked without a network; `node` says whether a member name is needed.
    pub(crate) fn validate(&self, node: bool) -> Result<(), EtcdDcsError> {
        if self.endpoints.is_empty() {
            return Err(EtcdDcsError::NoEndpoints);
        }
        let mut https = 0;
        for e in &self.endpoints {
            https += usize::from(endpoint_url(e)?.starts_with("https://"));
        }
        if https != 0 && https != self.endpoints.len() {
            return Err(EtcdDcsError::MixedSchemes);
        }
        if https == 0 && self.tls.is_some() {
            return Err(EtcdDcsError::TlsWithoutHttps);
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        if self.scope.trim_matches('/').is_empty() {
            return Err(EtcdDcsError::EmptyScope);
        }
        if node && (self.name.is_empty() || self.name.contains('/')) {
            return Err(EtcdDcsError::BadName(self.name.clone()));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(EtcdDcsError::PasswordWithoutUser);
        }
        if self.request_timeout.is_zero() {
            return Err(EtcdDcsError::ZeroTimeout);
        }
        Ok(())
    }
}

/// TLS material, as PEM text (the caller reads the files, so its errors can name its own config keys).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EtcdTls {
    /// The CA certificate(s) the servers' certificates must be signed by (Patroni's `cacert`); `None`: the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate chain and its private key (Patroni's `cert` and `key`), for servers started with
    /// `--client-cert-auth`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for EtcdTls {
    /// Never prints the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl EtcdTls {
    /// Empty PEM would make rustls trust nothing, or present no certificate, without saying so: refused.
    fn validate(&self) -> Result<(), EtcdDcsError> {
        if self
            .ca_pem
            .as_ref()
            .is_some_and(|p| !is_pem(p, "CERTIFICATE"))
        {
            return Err(EtcdDcsError::BadTls(
                "cacert holds no PEM certificate".into(),
            ));
        }
        if let Some((cert, key)) = &self.identity {
            if !is_pem(cert, "CERTIFICATE") {
                return Err(EtcdDcsError::BadTls("cert holds no PEM certificate".into()));
            }
            if !is_pem(key, "PRIVATE KEY") {
                return Err(EtcdDcsError::BadTls("key holds no PEM private key".into()));
            }
        }
        Ok(())
    }

    /// tonic's TLS options for every `https://` endpoint.
    pub(crate) fn options(&self) -> etcd_client::TlsOptions {
        let mut o = etcd_client::TlsOptions::new();
        o = match &self.ca_pem {
            Some(ca) => o.ca_certificate(etcd_client::Certificate::from_pem(ca)),
            None => o.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            o = o.identity(etcd_client::Identity::from_pem(cert, key));
        }
        o
    }
}

/// Whether `pem` has a `-----BEGIN ...<label>-----` block (`PRIVATE KEY` also matches `RSA`/`EC PRIVATE KEY`).
fn is_pem(pem: &[u8], label: &str) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{label}-----")))
}

/// `host:port` → `http://host:port`; `http://` and `https://` URLs are kept.
pub(crate) fn endpoint_url(raw: &str) -> Result<String, EtcdDcsError> {
    let raw = raw.trim();
    let url = if raw.starts_with("https://") || raw.starts_with("http://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let hostport = url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let ok = match hostport.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    };
    if !ok {
        return Err(EtcdDcsError::BadEndpoint(raw.to_string()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_host_port_or_http_urls() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(endpoint_url("http://e1:2379").unwrap(), "http://e1:2379");
        assert_eq!(endpoint_url("https://e1:2379").unwrap(), "https://e1:2379");
        assert!(matches!(
            endpoint_url("e1"),
            Err(EtcdDcsError::BadEndpoint(_))
        ));
        assert!(matches!(
            endpoint_url("e1:port"),
            Err(EtcdDcsError::BadEndpoint(_))
        ));
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = EtcdSettings::new(["127.0.0.1:2379"], "batman", "node1");
        assert_eq!(ok.validate(true), Ok(()));
        let mut s = ok.clone();
        s.endpoints.clear();
        assert_eq!(s.validate(true), Err(EtcdDcsError::NoEndpoints));
        let mut s = ok.clone();
        s.name = String::new();
        assert!(matches!(s.validate(true), Err(EtcdDcsError::BadName(_))));
        assert_eq!(s.validate(false), Ok(()), "ctl mode needs no member name");
        let mut s = ok.clone();
        s.password = Some("x".into());
        assert_eq!(s.validate(true), Err(EtcdDcsError::PasswordWithoutUser));
        let mut s = ok.clone();
        s.scope = "/".into();
        assert_eq!(s.validate(true), Err(EtcdDcsError::EmptyScope));
        let mut s = ok.clone();
        s.tls = Some(EtcdTls::default());
        assert_eq!(s.validate(true), Err(EtcdDcsError::TlsWithoutHttps));
        let mut s = ok;
        s.endpoints = vec!["https://e1:2379".into(), "http://e2:2379".into()];
        assert_eq!(s.validate(true), Err(EtcdDcsError::MixedSchemes));
        s.endpoints.pop();
        assert_eq!(s.validate(true), Ok(()), "https with the system's CAs");
        s.tls = Some(EtcdTls {
            ca_pem: Some(b"not pem".to_vec()),
            identity: None,
        });
        assert!(matches!(s.validate(true), Err(EtcdDcsError::BadTls(m)) if m.contains("cacert")));
    }
}
