//! How to reach etcd and where the cluster lives in it.

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
    pub password: Option<String>,
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
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Checks what can be checked without a network; `node` says whether a member name is needed.
    pub(crate) fn validate(&self, node: bool) -> Result<(), EtcdDcsError> {
        if self.endpoints.is_empty() {
            return Err(EtcdDcsError::NoEndpoints);
        }
        for e in &self.endpoints {
            endpoint_url(e)?;
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

/// `host:port` → `http://host:port`. TLS is not built in (etcd-client's `tls` feature is off), so `https://` is
/// refused here rather than failing on the first call.
pub(crate) fn endpoint_url(raw: &str) -> Result<String, EtcdDcsError> {
    let raw = raw.trim();
    let url = if raw.starts_with("https://") {
        return Err(EtcdDcsError::TlsUnsupported(raw.to_string()));
    } else if raw.starts_with("http://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
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
        assert!(matches!(
            endpoint_url("https://e1:2379"),
            Err(EtcdDcsError::TlsUnsupported(_))
        ));
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
        let mut s = ok;
        s.scope = "/".into();
        assert_eq!(s.validate(true), Err(EtcdDcsError::EmptyScope));
    }
}
