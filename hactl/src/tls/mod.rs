//! TLS for the REST API, as a server (`restapi.certfile` & co.) and as a client (`ctl.*`: the CLI, and the daemon's
//! own calls to members): Patroni's keys, served by rustls with the ring provider, so no OpenSSL in the process.
//!
//! Every failure to honour a TLS setting is a [`TlsError`] naming the key: the daemon refuses to start (fail
//! closed) rather than serve plain HTTP or skip a verification the config asked for.
//!
//! - this module: the settings and reading PEM files (certificates, keys, PKCS#8-encrypted keys);
//! - [`server`]: the server's rustls config and its reload on SIGHUP;
//! - [`ciphers`]: OpenSSL cipher strings (`restapi.ciphers`) mapped onto rustls's suites;
//! - [`client`]: the HTTPS client of the CLI and the daemon.

pub mod ciphers;
pub mod client;
pub mod server;

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A TLS setting hactl cannot honour: the key it came from and why.
#[derive(Debug, thiserror::Error)]
#[error("`{key}`: {why}")]
pub struct TlsError {
    /// The config key, e.g. `restapi.certfile`.
    pub key: String,
    pub why: String,
}

impl TlsError {
    pub fn new(key: impl Into<String>, why: impl Into<String>) -> TlsError {
        TlsError {
            key: key.into(),
            why: why.into(),
        }
    }
}

/// `restapi.verify_client`: whether clients must show a certificate signed by `cafile`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VerifyClient {
    /// No client certificate asked for.
    #[default]
    None,
    /// Asked for and verified when shown; required on requests that change something (Patroni's rule).
    Optional,
    /// Required for the TLS handshake itself.
    Required,
}

impl VerifyClient {
    /// Patroni's spellings, case-insensitive.
    pub fn parse(s: &str) -> Option<VerifyClient> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(VerifyClient::None),
            "optional" => Some(VerifyClient::Optional),
            "required" => Some(VerifyClient::Required),
            _ => None,
        }
    }
}

/// The server side of `restapi`: what [`server::ServerTls`] is built from (and rebuilt from on SIGHUP).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerTlsSettings {
    pub certfile: PathBuf,
    /// Patroni allows the key inside `certfile`; then this is `None`.
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    pub cafile: Option<PathBuf>,
    pub verify_client: VerifyClient,
    /// An OpenSSL cipher string; `None`: rustls's defaults.
    pub ciphers: Option<String>,
}

/// Every certificate in a PEM file, in order.
pub fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path)
        .map_err(|e| TlsError::new(key, format!("cannot read {}: {e}", path.display())))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            TlsError::new(
                key,
                format!("{}: not a PEM certificate file: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(TlsError::new(
            key,
            format!("{} holds no certificate", path.display()),
        ));
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key in a PEM file: PKCS#8, PKCS#1 (RSA) or SEC1 (EC), or PKCS#8 encrypted with `password`.
/// `key` and `password_key` are the config keys named in errors.
pub fn read_key(
    path: &Path,
    password: Option<&str>,
    key: &str,
    password_key: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TlsError::new(key, format!("cannot read {}: {e}", path.display())))?;
    if let Some(start) = text.find(ENCRYPTED_BEGIN) {
        let Some(password) = password else {
            return Err(TlsError::new(
                password_key,
                format!(
                    "{} holds an encrypted private key and no password is set",
                    path.display()
                ),
            ));
        };
        let end = text[start..]
            .find(ENCRYPTED_END)
            .map(|e| start + e + ENCRYPTED_END.len())
            .ok_or_else(|| {
                TlsError::new(key, format!("{}: unterminated PEM block", path.display()))
            })?;
        let (_, der) = pkcs8::der::pem::decode_vec(text[start..end].as_bytes())
            .map_err(|e| TlsError::new(key, format!("{}: bad PEM: {e}", path.display())))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| {
            TlsError::new(key, format!("{}: bad encrypted key: {e}", path.display()))
        })?;
        let doc = info.decrypt(password).map_err(|_| {
            TlsError::new(
                password_key,
                format!("cannot decrypt the private key in {}", path.display()),
            )
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            doc.as_bytes().to_vec(),
        )));
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::new(
            password_key,
            format!(
                "{} is encrypted in OpenSSL's legacy format, which hactl does not read; convert it with \
                 `openssl pkcs8 -topk8 -in OLD -out NEW` (PKCS#8, `BEGIN ENCRYPTED PRIVATE KEY`)",
                path.display()
            ),
        ));
    }
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| {
        TlsError::new(
            key,
            format!("{}: no private key found: {e}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests;
