//! The REST API's TLS server side: a rustls [`ServerConfig`] built from [`ServerTlsSettings`], swapped in place
//! when SIGHUP re-reads the certificate files (new connections get the new certificate; open ones keep theirs).

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DistinguishedName, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::{ciphers, read_certs, read_key, ServerTlsSettings, TlsError, VerifyClient};

/// The server's TLS state: the settings it was built from and the acceptor new connections use.
pub struct ServerTls {
    settings: ServerTlsSettings,
    acceptor: RwLock<TlsAcceptor>,
}

impl ServerTls {
    /// Reads every file and checks every setting now: an error here refuses the start.
    pub fn new(settings: ServerTlsSettings) -> Result<ServerTls, TlsError> {
        let config = server_config(&settings)?;
        Ok(ServerTls {
            settings,
            acceptor: RwLock::new(TlsAcceptor::from(Arc::new(config))),
        })
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        ha_core::sync::read(&self.acceptor).clone()
    }

    /// Whether connections may lack a client certificate at the handshake but must show one to change anything.
    pub fn verify_client(&self) -> VerifyClient {
        self.settings.verify_client
    }

    /// Re-reads the certificate, key and CA files (SIGHUP): renewed certificates are served without a restart.
    /// On error the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.settings)?;
        *ha_core::sync::write(&self.acceptor) = TlsAcceptor::from(Arc::new(config));
        Ok(())
    }
}

/// The rustls configuration for `settings`.
pub fn server_config(settings: &ServerTlsSettings) -> Result<ServerConfig, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(c) = &settings.ciphers {
        provider.cipher_suites = ciphers::select(c, "restapi.ciphers")?;
    }
    let provider = Arc::new(provider);
    let certs = read_certs(&settings.certfile, "restapi.certfile")?;
    let key_path = settings.keyfile.as_ref().unwrap_or(&settings.certfile);
    let key_name = if settings.keyfile.is_some() {
        "restapi.keyfile"
    } else {
        "restapi.certfile"
    };
    let key = read_key(
        key_path,
        settings.keyfile_password.as_deref(),
        key_name,
        "restapi.keyfile_password",
    )?;
    let verifier: Arc<dyn ClientCertVerifier> = match settings.verify_client {
        VerifyClient::None => WebPkiClientVerifier::no_client_auth(),
        mode => {
            let cafile = settings.cafile.as_ref().ok_or_else(|| {
                TlsError::new(
                    "restapi.cafile",
                    format!("`restapi.verify_client: {}` needs a cafile to verify client certificates against", if mode == VerifyClient::Required { "required" } else { "optional" }),
                )
            })?;
            let anchors = read_certs(cafile, "restapi.cafile")?;
            let mut roots = RootCertStore::empty();
            for c in &anchors {
                roots.add(c.clone()).map_err(|e| {
                    TlsError::new("restapi.cafile", format!("{}: {e}", cafile.display()))
                })?;
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if mode == VerifyClient::Optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            let inner = builder
                .build()
                .map_err(|e| TlsError::new("restapi.cafile", e.to_string()))?;
            Arc::new(PinnedOrWebPki {
                inner,
                pinned: anchors,
            })
        }
    };
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new("restapi.ciphers", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::new(
                key_name,
                format!("the key does not fit the certificate: {e}"),
            )
        })
}

/// Client certificates verified against `cafile` as webpki does, plus one case webpki refuses and OpenSSL (so
/// Patroni) accepts: a self-signed certificate that is itself in `cafile`, as Patroni's own test suite and many
/// small deployments use (`openssl req -x509` marks it a CA, and webpki will not take a CA as an end entity).
/// Such a certificate is trusted because it is, byte for byte, one the operator listed; its validity period is
/// still checked (webpki checks dates before it looks at the CA flag, so an expired one fails on its dates).
#[derive(Debug)]
struct PinnedOrWebPki {
    inner: Arc<dyn ClientCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ClientCertVerifier for PinnedOrWebPki {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(v) => Ok(v),
            Err(e) if pg_control::pinned_self_signed(&e, &self.pinned, end_entity) => {
                Ok(ClientCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }
    pg_control::delegate_signature_checks!();
}

/// The provider the client side uses too, so both ends agree on what is offered.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
