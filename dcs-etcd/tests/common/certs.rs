//! Certificates made by the tests themselves (rcgen): a CA, a server certificate for 127.0.0.1 and a client
//! certificate signed by it, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A CA and two leaves, as PEM files.
pub struct TestPki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A new CA named `name`, with a server certificate for 127.0.0.1 and a client certificate (CN `client_cn`), in
/// `dir`.
pub fn make_pki(dir: &Path, name: &str, client_cn: &str) -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf = |cn: &str, purposes: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = purposes;
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    // etcd's own gRPC gateway dials the server with the server's certificate: it needs both usages.
    let (server_pem, server_key) = leaf(
        "server",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let (client_pem, client_key) = leaf(client_cn, vec![ExtendedKeyUsagePurpose::ClientAuth]);
    let w = |file: &str, text: &str| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).unwrap();
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
