//! The HTTPS client for members' REST API: the CLI's requests and the daemon's own (failsafe confirmations, the
//! unique-name check). Patroni's keys: `ctl.cacert`, `ctl.certfile`, `ctl.keyfile`, `ctl.keyfile_password`,
//! `ctl.insecure`, each falling back to the `restapi` one (`cafile`, `certfile`, ...) as Patroni's
//! `PatroniRequest` does.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, RootCertStore};

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
        Arc::new(pg_control::NoVerification(provider.clone()))
    } else {
        let mut roots = RootCertStore::empty();
        let pinned = match &tls.cacert {
            Some(path) => {
                let anchors = read_certs(path, "ctl.cacert")?;
                for c in &anchors {
                    roots.add(c.clone()).map_err(|e| {
                        TlsError::new("ctl.cacert", format!("{}: {e}", path.display()))
                    })?;
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
        // The same rule as libpq's verify-full, shared with pg-control: the chain, the host name, and a
        // self-signed certificate that is itself in `cacert` accepted as OpenSSL accepts it.
        Arc::new(pg_control::PinnedOrWebPki::new(inner, pinned, true))
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
            let key = read_key(
                key_path,
                tls.keyfile_password.as_deref(),
                key_name,
                "ctl.keyfile_password",
            )?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                TlsError::new(
                    key_name,
                    format!("the key does not fit the certificate: {e}"),
                )
            })?
        }
    };
    Ok(config)
}
