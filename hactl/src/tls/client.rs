//! The HTTPS client for members' REST API: the CLI's requests and the daemon's own (failsafe confirmations, the
//! unique-name check). Patroni's keys: `ctl.cacert`, `ctl.certfile`, `ctl.keyfile`, `ctl.keyfile_password`,
//! `ctl.insecure`, each falling back to the `restapi` one (`cafile`, `certfile`, ...) as Patroni's
//! `PatroniRequest` does.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{read_certs, read_key, TlsError};

/// How this process talks HTTPS to members.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientTlsSettings {
    /// Trust these CA certificates instead of the system's.
    pub cacert: Option<PathBuf>,
    /// A client certificate to show (members with `verify_client`).
    pub certfile: Option<PathBuf>,
    /// Its key; `None`: inside `certfile`.
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    /// Do not verify members' certificates (Patroni's `ctl.insecure`).
    pub insecure: bool,
}

/// The rustls client configuration for `tls`.
pub fn client_config(tls: &ClientTlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = super::server::provider();
    let verifier: Arc<dyn ServerCertVerifier> = if tls.insecure {
        Arc::new(NoVerification(provider.clone()))
    } else {
        let mut roots = RootCertStore::empty();
        let pinned = match &tls.cacert {
            Some(path) => {
                let anchors = read_certs(path, "ctl.cacert")?;
                for c in &anchors {
                    roots
                        .add(c.clone())
                        .map_err(|e| TlsError::new("ctl.cacert", format!("{}: {e}", path.display())))?;
                }
                anchors
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for c in native.certs {
                    let _ = roots.add(c);
                }
                Vec::new()
            }
        };
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::new("ctl.cacert", e.to_string()))?;
        Arc::new(PinnedOrWebPki { inner, pinned })
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::new("ctl", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &tls.certfile {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let certs = read_certs(cert, "ctl.certfile")?;
            let (key_path, key_name) = match &tls.keyfile {
                Some(k) => (k, "ctl.keyfile"),
                None => (cert, "ctl.certfile"),
            };
            let key = read_key(key_path, tls.keyfile_password.as_deref(), key_name, "ctl.keyfile_password")?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| TlsError::new(key_name, format!("the key does not fit the certificate: {e}")))?
        }
    };
    Ok(config)
}

/// Members' certificates verified as webpki does, plus a self-signed certificate that is itself in `cacert` (see
/// [`super::server`]'s twin for why).
#[derive(Debug)]
struct PinnedOrWebPki {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(_)))
                if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `ctl.insecure`: any certificate is accepted; the handshake's signatures are still checked, so the peer at
/// least holds the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
