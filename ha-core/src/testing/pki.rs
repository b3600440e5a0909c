//! Certificates the tests make themselves (feature `pki`): a CA with a server certificate for 127.0.0.1 and a
//! client certificate signed by it (rcgen), and the self-signed one Patroni's acceptance suite makes with
//! `openssl req -x509`. One maker for the etcd, REST API and end-to-end TLS tests.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and two leaves, as PEM files.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA's certificate.
    pub ca: PathBuf,
    /// The server's certificate, for `127.0.0.1` and `localhost`.
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// The client's certificate (CN `client`).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

/// A new CA named `name` with a server and a client certificate, written to `dir` as `<name>-ca.pem`,
/// `<name>-server.pem`, `<name>-server.key`, `<name>-client.pem`, `<name>-client.key`. The server certificate is
/// good for client authentication too: etcd's own gRPC gateway dials the server with it.
pub fn make_pki(dir: &Path, name: &str) -> TestPki {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let leaf = |cn: &str, purposes: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().expect("a key");
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("leaf parameters");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = purposes;
        let cert = p.signed_by(&key, &ca, &ca_key).expect("a leaf certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = leaf(
        "server",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let (client_pem, client_key) = leaf("client", vec![ExtendedKeyUsagePurpose::ClientAuth]);
    let w = |file: &str, text: &str| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).expect("a certificate file");
        p
    };
    TestPki {
        ca: w("ca.pem", &ca.pem()),
        server_cert: w("server.pem", &server_pem),
        server_key: w("server.key", &server_key),
        client_cert: w("client.pem", &client_pem),
        client_key: w("client.key", &client_key),
    }
}

/// Runs `openssl` in `dir` with `args`, panicking with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Patroni's acceptance suite's certificate: self-signed, a CA by openssl's defaults, used as CA, server and client
/// certificate at once, in `dir` as `patroni.crt` and `patroni.key`. Returns (cert, key).
pub fn patroni_suite_cert(dir: &Path) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-nodes",
            "-new",
            "-x509",
            "-subj",
            "/CN=batman.patroni",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "patroni.key",
            "-out",
            "patroni.crt",
        ],
    );
    (dir.join("patroni.crt"), dir.join("patroni.key"))
}

/// `key` encrypted with `password` as operators do it (`openssl pkcs8 -topk8`: PKCS#8, `BEGIN ENCRYPTED PRIVATE
/// KEY`), written to `out`.
pub fn encrypt_key(key: &Path, out: &Path, password: &str) {
    let (key, out) = (key.display().to_string(), out.display().to_string());
    let pass = format!("pass:{password}");
    openssl(
        Path::new("."),
        &[
            "pkcs8", "-topk8", "-in", &key, "-out", &out, "-passout", &pass,
        ],
    );
}
