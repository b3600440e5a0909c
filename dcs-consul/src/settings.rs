//! Where and who: [`ConsulSettings`], and the client built from them ([`ConsulDcs::new`] for a node,
//! [`ConsulDcs::ctl`] for tools).
//!
//! TLS (CA, client certificate, verification) comes from [`ConsulTls`] (Patroni's `consul.cacert`, `cert`, `key`,
//! `verify`); what it leaves unset falls back to the `CONSUL_*` environment variables, as with the `consul` CLI
//! itself. One reqwest client, with a connect timeout consulrs would not set,
//! serves both consulrs and the raw blocking watch.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use consulrs::client::{ConsulClient, ConsulClientSettingsBuilder};
use ha_core::dcs::DcsError;
use ha_core::model::KeyPath;

use crate::dcs::State;
use crate::session::session_ttl_for;
use crate::ConsulDcs;

/// Where and who.
#[derive(Debug, Clone)]
pub struct ConsulSettings {
    /// `http://host:port` of a Consul agent.
    pub url: String,
    /// Patroni's `namespace` (default `service`).
    pub namespace: String,
    /// Patroni's `scope`: the cluster name; its keys live under `<namespace>/<scope>/`.
    pub scope: String,
    /// This node's name (the session is `<scope>-<name>`).
    pub name: String,
    /// hactl's ttl; the session TTL is `max(10 s, ttl / 2)` (see the crate doc).
    pub ttl: Duration,
    /// Deadline of every non-blocking call.
    pub retry_timeout: Duration,
    /// ACL token (`X-Consul-Token`), if the agent needs one.
    pub token: Option<String>,
    /// TLS settings for an `https://` url.
    pub tls: ConsulTls,
    /// Patroni's `consul.dc`: the datacenter every call goes to (`?dc=`); `None`: the agent's own.
    pub dc: Option<String>,
    /// Patroni's `consul.consistency` for reads: `None` (`default`), or [`Consistency::Consistent`] /
    /// [`Consistency::Stale`].
    pub consistency: Option<Consistency>,
}

impl ConsulSettings {
    /// Settings with Patroni's defaults for everything but the agent's URL, the scope and the node name (namespace
    /// `service`, ttl 30 s, retry_timeout 10 s; the driver sets both from the cluster's configuration at its
    /// first loop).
    pub fn new(
        url: impl Into<String>,
        scope: impl Into<String>,
        name: impl Into<String>,
    ) -> ConsulSettings {
        ConsulSettings {
            url: url.into(),
            namespace: "service".to_string(),
            scope: scope.into(),
            name: name.into(),
            ttl: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(10),
            token: None,
            tls: ConsulTls::default(),
            dc: None,
            consistency: None,
        }
    }
}

/// Consul's read consistency modes besides the default (<https://developer.hashicorp.com/consul/api-docs/features/consistency>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every read goes through the leader, which first confirms it still leads.
    Consistent,
    /// Any server answers, possibly behind the leader.
    Stale,
}

/// Patroni's `consul.cacert`, `cert`, `key` and `verify`: paths to PEM files, read when the client is built (an
/// unreadable or unusable file fails [`ConsulDcs::new`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsulTls {
    /// The CA that signs the agent's certificate (`CONSUL_CACERT` when unset).
    pub cacert: Option<String>,
    /// The client certificate and its key (`CONSUL_CLIENT_CERT`/`KEY` when unset); the key may sit in `cert`.
    pub cert: Option<String>,
    /// The client certificate's private key (Patroni's `consul.key`); `None` with `cert` set: the key is read from
    /// the `cert` file. Used only with `cert`.
    pub key: Option<String>,
    /// `false` accepts any server certificate (`CONSUL_HTTP_SSL_VERIFY` when unset).
    pub verify: Option<bool>,
}

impl ConsulDcs {
    /// A node's client. No request is sent yet; the session is created by the first call that needs it.
    pub fn new(settings: ConsulSettings) -> Result<ConsulDcs, DcsError> {
        let name = Some(settings.name.clone());
        Self::build(settings, name)
    }

    /// A session-less client for tools (`hactl list`, `edit-config`, `remove`): reads and versioned writes only.
    /// `acquire_leader`, `renew_leader` and `touch_member` return [`DcsError::Rejected`].
    pub fn ctl(settings: ConsulSettings) -> Result<ConsulDcs, DcsError> {
        Self::build(settings, None)
    }

    fn build(settings: ConsulSettings, name: Option<String>) -> Result<ConsulDcs, DcsError> {
        let mut b = ConsulClientSettingsBuilder::default();
        b.address(settings.url.trim_end_matches('/'));
        if let Some(t) = &settings.token {
            b.token(t.clone());
        }
        // What the settings leave unset comes from CONSUL_* variables, as with `consul` itself.
        let tls = &settings.tls;
        if let Some(ca) = &tls.cacert {
            b.ca_certs(vec![ca.clone()]);
        }
        if let Some(cert) = &tls.cert {
            b.client_cert(cert.clone());
            b.client_key(tls.key.clone().unwrap_or_else(|| cert.clone()));
        }
        if let Some(verify) = tls.verify {
            b.verify(verify);
        }
        let cs = b
            .build()
            .map_err(|e| DcsError::Rejected(format!("Consul client settings: {e}")))?;
        // consulrs builds its reqwest client without any timeout: build ours, with a connect timeout and the same TLS
        // settings, and put it in.
        // rustls explicitly: the client identity below is a rustls one, whatever backend feature unification
        // makes the default.
        let mut hb = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(settings.retry_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .danger_accept_invalid_certs(!cs.verify);
        for path in &cs.ca_certs {
            let pem = std::fs::read(path)
                .map_err(|e| DcsError::Rejected(format!("reading CA certificate {path}: {e}")))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| DcsError::Rejected(format!("CA certificate {path}: {e}")))?;
            hb = hb.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&cs.client_cert, &cs.client_key) {
            let mut pem = std::fs::read(cert).map_err(|e| {
                DcsError::Rejected(format!("reading client certificate {cert}: {e}"))
            })?;
            // Patroni allows the key inside the certificate file: then it is read once.
            if key != cert {
                pem.extend(
                    std::fs::read(key).map_err(|e| {
                        DcsError::Rejected(format!("reading client key {key}: {e}"))
                    })?,
                );
            }
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| DcsError::Rejected(format!("client certificate {cert}: {e}")))?;
            hb = hb.identity(id);
        }
        let http = hb
            .build()
            .map_err(|e| DcsError::Rejected(format!("building the HTTP client: {e}")))?;
        let mut client =
            ConsulClient::new(cs).map_err(|e| DcsError::Rejected(format!("Consul client: {e}")))?;
        let base_url = settings.url.trim_end_matches('/').to_string();
        client.http = rustify::clients::reqwest::Client::new(&base_url, http.clone());
        Ok(ConsulDcs {
            client,
            http,
            base_url,
            path: KeyPath::new(&settings.namespace, &settings.scope),
            scope: settings.scope,
            name,
            retry_timeout_ms: std::sync::atomic::AtomicU64::new(
                settings.retry_timeout.as_millis().max(1) as u64,
            ),
            dc: settings.dc.clone(),
            consistency: settings.consistency,
            state: Mutex::new(State {
                session_ttl: session_ttl_for(settings.ttl),
                ..Default::default()
            }),
            requests: AtomicU64::new(0),
        })
    }
}
