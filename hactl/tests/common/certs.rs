//! Certificates made by the tests themselves: a CA, server and client certificates signed by it (rcgen), and the
//! self-signed one Patroni's acceptance suite makes with `openssl req -x509`.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and two leaves, written as PEM files into a directory.
pub struct TestPki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A new CA named `name` with a server certificate for 127.0.0.1/localhost and a client certificate, in `dir`.
pub fn make_pki(dir: &Path, name: &str) -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |cn: &str, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![purpose];
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf("server", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_pem, client_key) = leaf("client", ExtendedKeyUsagePurpose::ClientAuth);
    let w = |file: &str, text: &str| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    TestPki {
        dir: dir.to_path_buf(),
        ca: w("ca.pem", &ca.pem()),
        server_cert: w("server.pem", &server_pem),
        server_key: w("server.key", &server_key),
        client_cert: w("client.pem", &client_pem),
        client_key: w("client.key", &client_key),
    }
}

/// Patroni's acceptance suite's certificate: self-signed, a CA by openssl's defaults, used as CA, server and client
/// certificate at once. Returns (cert, key).
pub fn patroni_suite_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("patroni.crt"), dir.join("patroni.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-nodes",
            "-new",
            "-x509",
            "-subj",
            "/CN=batman.patroni",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}
