//! TLS of our own connections to other members (tokio-postgres over rustls with the ring provider, no OpenSSL):
//! the superuser's `sslmode`, `sslrootcert`, `sslcert`/`sslkey`/`sslpassword`, `sslcrl`/`sslcrldir`, `sslsni`,
//! `channel_binding` and `sslnegotiation`, honoured as libpq honours them for pg_basebackup and the walreceiver.
//!
//! - `disable`: no TLS. `allow`/`prefer`: TLS when the server offers it. `require`: TLS. Without `sslrootcert`
//!   the server's certificate is not verified; with one, its chain is verified in every mode, as libpq does
//!   (libpq verifies whenever it has a root file). `verify-ca`: the chain; `verify-full`: the chain and the host.
//!   Where libpq's `prefer` falls back to plain text after a failed handshake, we fail: closed, not open.
//! - The files are read at each connection, as libpq reads them, so renewed certificates are used without a
//!   restart; [`PgCtl::new`](crate::PgCtl::new) reads them once to refuse a broken setup at the start.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
    UnixTime,
};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::conn_options::{ChannelBinding, ConnOptions, SslMode};
use crate::error::{Error, Result};

/// Sets `config`'s TLS mode, channel binding and negotiation from `o`.
pub(crate) fn apply_modes(o: &ConnOptions, config: &mut tokio_postgres::Config) {
    use tokio_postgres::config as pc;
    config.ssl_mode(match o.sslmode.unwrap_or(SslMode::Prefer) {
        SslMode::Disable => pc::SslMode::Disable,
        SslMode::Allow | SslMode::Prefer => pc::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => pc::SslMode::Require,
    });
    if let Some(cb) = o.channel_binding {
        config.channel_binding(match cb {
            ChannelBinding::Disable => pc::ChannelBinding::Disable,
            ChannelBinding::Prefer => pc::ChannelBinding::Prefer,
            ChannelBinding::Require => pc::ChannelBinding::Require,
        });
    }
    if o.direct_ssl {
        config.ssl_negotiation(pc::SslNegotiation::Direct);
    }
}

/// The TLS connector for `o`, reading its files now; `None` for `sslmode: disable`.
pub(crate) fn make_connect(o: &ConnOptions) -> Result<Option<MakeRustlsConnect>> {
    if o.sslmode == Some(SslMode::Disable) {
        return Ok(None);
    }
    Ok(Some(MakeRustlsConnect::new(client_config(o)?)))
}

fn client_config(o: &ConnOptions) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = server_verifier(o, &provider)?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::ConnOption {
            key: o.key("sslmode"),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&o.sslcert, &o.sslkey) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(cert, &o.key("sslcert"))?;
            let key = read_key(key, o.sslpassword.as_deref(), o)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::ConnOption {
                    key: o.key("sslkey"),
                    reason: format!("the key does not fit the certificate: {e}"),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.enable_sni = o.sslsni;
    Ok(config)
}

/// How the server's certificate is checked: not at all without `sslrootcert`, against it otherwise.
fn server_verifier(
    o: &ConnOptions,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    Ok(match &o.sslrootcert {
        None => Arc::new(NoVerification(provider.clone())),
        Some(path) => {
            let anchors = read_certs(path, &o.key("sslrootcert"))?;
            let mut roots = RootCertStore::empty();
            for c in &anchors {
                roots.add(c.clone()).map_err(|e| Error::ConnOption {
                    key: o.key("sslrootcert"),
                    reason: format!("{}: {e}", path.display()),
                })?;
            }
            let mut crls = Vec::new();
            if let Some(p) = &o.sslcrl {
                crls.extend(read_crls(p, &o.key("sslcrl"))?);
            }
            if let Some(dir) = &o.sslcrldir {
                crls.extend(read_crl_dir(dir, &o.key("sslcrldir"))?);
            }
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .with_crls(crls)
                    .build()
                    .map_err(|e| Error::ConnOption {
                        key: o.key("sslrootcert"),
                        reason: e.to_string(),
                    })?;
            Arc::new(PinnedOrWebPki {
                inner,
                pinned: anchors,
                check_host: o.sslmode == Some(SslMode::VerifyFull),
            })
        }
    })
}

/// Whether webpki's refusal `err` of `end_entity` is the one case hactl accepts as OpenSSL does: a self-signed
/// certificate listed, byte for byte, among the operator's trust anchors `pinned` (webpki reports "a CA used as an
/// end entity" as `Other`; dates, signatures and issuers have kinds of their own and stay refused). Shared by the
/// server verifier here and the REST API's client-certificate verifier in hactl.
pub fn pinned_self_signed(
    err: &rustls::Error,
    pinned: &[CertificateDer<'static>],
    end_entity: &CertificateDer<'_>,
) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(CertificateError::Other(_))
    ) && pinned.iter().any(|p| p.as_ref() == end_entity.as_ref())
}

/// The handshake-signature methods of a rustls certificate verifier that wraps another in its field `inner`:
/// written once for the verifiers here and hactl's client-certificate verifier (the traits differ, the three
/// methods do not).
#[macro_export]
macro_rules! delegate_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

/// The server certificate verified against `sslrootcert` as webpki does, the host name only for `verify-full`,
/// plus one case webpki refuses and libpq (OpenSSL) accepts: a self-signed certificate that is itself in
/// `sslrootcert`, as Patroni's own test suite and many small deployments use (`openssl req -x509` marks it a CA,
/// and webpki will not take a CA as an end entity). Such a certificate is trusted because it is, byte for byte,
/// one the operator listed; its validity period is still checked (webpki checks dates before it looks at the CA
/// flag, so an expired one fails on its dates). The same rule as the REST API's client certificates
/// (hactl's `tls::server::PinnedOrWebPki`). Public because hactl's REST client verifies members the same way.
#[derive(Debug)]
pub struct PinnedOrWebPki {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    check_host: bool,
}

impl PinnedOrWebPki {
    /// `inner` verifies chains against the trust anchors `pinned` (the same certificates); `check_host`: the
    /// certificate must name the server (libpq's verify-full, an HTTPS client).
    pub fn new(
        inner: Arc<WebPkiServerVerifier>,
        pinned: Vec<CertificateDer<'static>>,
        check_host: bool,
    ) -> PinnedOrWebPki {
        PinnedOrWebPki {
            inner,
            pinned,
            check_host,
        }
    }
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            // webpki checks the name after the chain (and the CRLs): a name error means the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            Err(e) if pinned_self_signed(&e, &self.pinned, end_entity) => {
                if self.check_host {
                    let cert = ParsedCertificate::try_from(end_entity)?;
                    rustls::client::verify_server_name(&cert, server_name)?;
                }
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }
    crate::delegate_signature_checks!();
}

/// No `sslrootcert` (`allow`, `prefer`, `require`): libpq does not verify the server's certificate, and neither
/// do we. The handshake signatures are still checked (the server holds the key of the certificate it shows).
#[derive(Debug)]
pub struct NoVerification(pub Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn read_bytes(path: &Path, key: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::ConnOption {
        key: key.to_string(),
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

/// Every certificate in a PEM file, in order.
fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_bytes(path, key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::ConnOption {
            key: key.to_string(),
            reason: format!("{}: not a PEM certificate file: {e}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(Error::ConnOption {
            key: key.to_string(),
            reason: format!("{} holds no certificate", path.display()),
        });
    }
    Ok(certs)
}

/// Every CRL in a PEM file (libpq reads `sslcrl` as PEM).
fn read_crls(path: &Path, key: &str) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let bytes = read_bytes(path, key)?;
    CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::ConnOption {
            key: key.to_string(),
            reason: format!("{}: not a PEM CRL file: {e}", path.display()),
        })
}

/// The CRLs of every file in `dir` (OpenSSL's hashed directory, as `openssl rehash` makes it).
fn read_crl_dir(dir: &Path, key: &str) -> Result<Vec<CertificateRevocationListDer<'static>>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::ConnOption {
        key: key.to_string(),
        reason: format!("cannot read {}: {e}", dir.display()),
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_file() {
            out.extend(read_crls(&p, key)?);
        }
    }
    Ok(out)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The client key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), or PKCS#8 encrypted with `sslpassword`.
fn read_key(
    path: &Path,
    password: Option<&str>,
    o: &ConnOptions,
) -> Result<PrivateKeyDer<'static>> {
    let key = o.key("sslkey");
    let refuse = |k: String, reason: String| Error::ConnOption { key: k, reason };
    let bytes = read_bytes(path, &key)?;
    let text = String::from_utf8_lossy(&bytes);
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let Some(password) = password else {
            return Err(refuse(
                o.key("sslpassword"),
                format!(
                    "{} holds an encrypted private key and no sslpassword is set",
                    path.display()
                ),
            ));
        };
        let end = text[start..]
            .find(ENCRYPTED_END)
            .map(|e| start + e + ENCRYPTED_END.len())
            .ok_or_else(|| {
                refuse(
                    key.clone(),
                    format!("{}: unterminated PEM block", path.display()),
                )
            })?;
        let (_, der) = pkcs8::der::pem::decode_vec(text[start..end].as_bytes())
            .map_err(|e| refuse(key.clone(), format!("{}: bad PEM: {e}", path.display())))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| {
            refuse(
                key.clone(),
                format!("{}: bad encrypted key: {e}", path.display()),
            )
        })?;
        let doc = info.decrypt(password).map_err(|_| {
            refuse(
                o.key("sslpassword"),
                format!("cannot decrypt the private key in {}", path.display()),
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            doc.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(refuse(
            o.key("sslpassword"),
            format!(
                "{} is encrypted in OpenSSL's legacy format, which hactl's own connections do not read; convert it \
                 with `openssl pkcs8 -topk8 -in OLD -out NEW` (PKCS#8, `BEGIN ENCRYPTED PRIVATE KEY`)",
                path.display()
            ),
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        refuse(
            key,
            format!("{}: no private key found: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests;
