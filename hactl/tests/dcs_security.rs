//! A node whose DCS refuses its TLS settings or credentials does not start: the error names the config key, where
//! Patroni would retry forever with a node that can never join. Against a real etcd speaking only HTTPS with client
//! certificates and user authentication.

mod common;

use common::certs::make_pki;
use dcs_etcd::testing::{etcd_or_skip, ClientTlsFiles, EtcdServer, ServerTlsFiles};
use hactl::config::Config;
use hactl::dcs::{check_credentials, connect_ctl};

fn etcd_yaml(
    endpoint: &str,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
    password: &str,
) -> String {
    format!(
        "scope: batman\nname: node1\netcd3:\n  hosts: ['{}']\n  protocol: https\n  cacert: {}\n  cert: {}\n  key: {}\n  username: root\n  password: {password}\n",
        endpoint.trim_start_matches("https://"),
        ca.display(),
        cert.display(),
        key.display()
    )
}

async fn start_error(yaml: &str) -> Option<String> {
    let config = Config::from_yaml_str(yaml).unwrap();
    let dcs = match connect_ctl(&config) {
        Ok(d) => d,
        Err(e) => return Some(e.to_string()),
    };
    check_credentials(&config, &*dcs)
        .await
        .err()
        .map(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_certificate_or_password_for_etcd_refuses_the_start_naming_the_key() {
    if etcd_or_skip("a_wrong_ca_certificate_or_password_for_etcd_refuses_the_start_naming_the_key")
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "good");
    let other = make_pki(dir.path(), "other");
    let server = EtcdServer::start_tls(
        dir.path(),
        ServerTlsFiles {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: pki.ca.clone(),
        },
    )
    .unwrap();
    let client = ClientTlsFiles {
        ca: pki.ca.clone(),
        cert: pki.client_cert.clone(),
        key: pki.client_key.clone(),
    };
    server.enable_root_auth(Some(&client), "right").unwrap();
    let ep = server.endpoint();

    let good = etcd_yaml(&ep, &pki.ca, &pki.client_cert, &pki.client_key, "right");
    assert_eq!(
        start_error(&good).await,
        None,
        "the right CA, certificate and password start"
    );

    let wrong_ca = etcd_yaml(&ep, &other.ca, &pki.client_cert, &pki.client_key, "right");
    let e = start_error(&wrong_ca)
        .await
        .expect("a wrong CA refuses the start");
    assert!(e.contains("etcd3.cacert"), "{e}");

    let wrong_cert = etcd_yaml(&ep, &pki.ca, &other.client_cert, &other.client_key, "right");
    let e = start_error(&wrong_cert)
        .await
        .expect("a certificate of another CA refuses the start");
    assert!(e.contains("etcd3.cert"), "{e}");

    let wrong_password = etcd_yaml(&ep, &pki.ca, &pki.client_cert, &pki.client_key, "wrong");
    let e = start_error(&wrong_password)
        .await
        .expect("a wrong password refuses the start");
    assert!(e.contains("etcd3.password"), "{e}");
}
