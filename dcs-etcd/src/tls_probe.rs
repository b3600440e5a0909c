//! Why an `https://` endpoint closed the connection: one TLS handshake of our own.
//!
//! Under TLS 1.3 a server judges the client's certificate *after* the client finished its handshake, so a refused
//! (or missing) client certificate reaches etcd-client only as "connection closed", indistinguishable from a server
//! going down: the call would be retried until the deadline and reported as an unreachable etcd, and the node would
//! wait forever for a DCS that will never accept it. When an https endpoint closes the connection, this probe
//! redoes the handshake with the same CA and certificate, sends the HTTP/2 preface and reads the server's first
//! answer: a TLS alert (or a certificate that does not verify) is a settings problem, reported by the caller as a
//! rejection naming `cacert` or `cert`/`key`.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::settings::EtcdTls;

/// The HTTP/2 connection preface: a gRPC server answers it with its SETTINGS frame, or with an alert.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The TLS error the server's side of a handshake with `url` (`https://host:port`) gives, if any, within `budget`.
/// `None`: the handshake succeeded, or the probe could not tell (no answer, not TLS, bad settings caught earlier).
pub(crate) async fn tls_error(url: &str, tls: &EtcdTls, budget: Duration) -> Option<String> {
    let hostport = url.strip_prefix("https://")?.trim_end_matches('/');
    let (host, _) = hostport.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(host.to_string()).ok()?;
    let config = Arc::new(client_config(tls)?);
    let probe = async {
        let tcp = TcpStream::connect(hostport).await.ok()?;
        let mut s = match tokio_rustls::TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
        {
            Ok(s) => s,
            Err(e) => return Some(e.to_string()),
        };
        if let Err(e) = s.write_all(H2_PREFACE).await {
            return Some(e.to_string());
        }
        let mut buf = [0u8; 16];
        match s.read(&mut buf).await {
            Err(e) => Some(e.to_string()),
            Ok(_) => None,
        }
    };
    tokio::time::timeout(budget, probe).await.ok().flatten()
}

/// The rustls client config tonic builds from the same [`EtcdTls`]: same roots, same identity, ALPN h2.
fn client_config(tls: &EtcdTls) -> Option<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            for c in CertificateDer::pem_slice_iter(pem) {
                roots.add(c.ok()?).ok()?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .ok()?
            .with_root_certificates(roots);
    let mut config = match &tls.identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            let key = PrivateKeyDer::from_pem_slice(key).ok()?;
            builder.with_client_auth_cert(chain, key).ok()?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Some(config)
}
