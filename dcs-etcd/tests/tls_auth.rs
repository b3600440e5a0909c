//! etcd over HTTPS with a client certificate and etcd's user authentication, against a real etcd started with
//! `--client-cert-auth` and `auth enable`: the conformance suite passes, and each missing or wrong credential is a
//! rejection naming the setting, never a silent fallback.

mod common;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use common::{settings, TTL};
use dcs_etcd::testing::{etcd_or_skip, EtcdServer, Restartable, ServerTlsFiles};
use dcs_etcd::{EtcdDcs, EtcdSettings, EtcdTls};
use ha_core::conformance::{self, Harness};
use ha_core::dcs::{Dcs, DcsClient, DcsError};
use ha_core::model::codec::KeyPath;
use ha_core::sync::lock;
use ha_core::testing::pki::{make_pki, TestPki};

const ROOT_PASSWORD: &str = "s3cret-root";

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn tls(pki: &TestPki, with_client_cert: bool) -> EtcdTls {
    EtcdTls {
        ca_pem: Some(read(&pki.ca)),
        identity: with_client_cert.then(|| (read(&pki.client_cert), read(&pki.client_key))),
    }
}

/// Settings of a client that has everything: the CA, the client certificate, the root user.
fn good_settings(endpoint: &str, pki: &TestPki, scope: &str, name: &str) -> EtcdSettings {
    let mut s = settings(&[endpoint], scope, name);
    s.tls = Some(tls(pki, true));
    s.username = Some("root".into());
    s.password = Some(ROOT_PASSWORD.into());
    s
}

async fn raw_client(endpoint: &str, pki: &TestPki, auth: bool) -> etcd_client::Client {
    let mut o = etcd_client::ConnectOptions::new().with_tls(
        etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&pki.ca)))
            .identity(etcd_client::Identity::from_pem(
                read(&pki.client_cert),
                read(&pki.client_key),
            )),
    );
    if auth {
        o = o.with_user("root", ROOT_PASSWORD);
    }
    etcd_client::Client::connect([endpoint], Some(o))
        .await
        .unwrap()
}

/// A TLS etcd with a root user and authentication enabled.
async fn secure_server(dir: &Path, pki: &TestPki) -> EtcdServer {
    let server = EtcdServer::start_tls(
        dir,
        ServerTlsFiles {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: pki.ca.clone(),
        },
    )
    .unwrap();
    let mut admin = raw_client(&server.endpoint(), pki, false).await;
    admin.user_add("root", ROOT_PASSWORD, None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    server
}

struct SecureHarness {
    server: std::sync::Mutex<EtcdServer>,
    endpoint: String,
    pki: TestPki,
    scope: String,
}

#[async_trait]
impl Harness for SecureHarness {
    async fn client(&self, name: &str) -> Box<dyn Dcs> {
        Box::new(EtcdDcs::new(good_settings(&self.endpoint, &self.pki, &self.scope, name)).unwrap())
    }
    fn ttl(&self) -> Duration {
        TTL
    }
    async fn pass(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    async fn put_raw(&self, key: &str, value: &str) {
        let path = KeyPath::new("service", &self.scope);
        let mut c = raw_client(&self.endpoint, &self.pki, true).await;
        c.put(path.key(key), value, None).await.unwrap();
    }
    async fn get_raw(&self, key: &str) -> Option<String> {
        let path = KeyPath::new("service", &self.scope);
        let mut c = raw_client(&self.endpoint, &self.pki, true).await;
        let r = c.get(path.key(key), None).await.unwrap();
        r.kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
    }
    async fn stop_server(&self) {
        lock(&self.server).stop();
    }
    async fn start_server(&self) {
        lock(&self.server).start_again().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_over_tls_with_client_certificate_and_auth() {
    if etcd_or_skip("conformance_over_tls_with_client_certificate_and_auth").is_none() {
        return;
    }
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "etcd");
    let server = secure_server(dir.path(), &pki).await;
    let h = SecureHarness {
        endpoint: server.endpoint(),
        server: std::sync::Mutex::new(server),
        pki,
        scope: "tls".into(),
    };
    assert!(h.endpoint.starts_with("https://"), "{}", h.endpoint);
    conformance::run_all(&h).await.unwrap();
}

/// Each credential missing or wrong in turn: the call is rejected (not "unreachable", which would be waited out)
/// and the message names what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_credential_is_rejected_naming_it() {
    if etcd_or_skip("a_missing_or_wrong_credential_is_rejected_naming_it").is_none() {
        return;
    }
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "etcd");
    let other = make_pki(dir.path(), "other");
    let server = secure_server(dir.path(), &pki).await;
    let endpoint = server.endpoint();

    let load = |s: EtcdSettings| async move { EtcdDcs::ctl(s).unwrap().load().await };

    // Everything right: loads.
    load(good_settings(&endpoint, &pki, "t", "n"))
        .await
        .unwrap();

    // No client certificate: the server refuses the handshake.
    let mut s = good_settings(&endpoint, &pki, "t", "n");
    s.tls = Some(tls(&pki, false));
    match load(s).await {
        Err(DcsError::Rejected(m)) => assert!(m.contains("`cert`"), "{m}"),
        other => panic!("no client certificate: {other:?}"),
    }

    // A CA that did not sign the server's certificate.
    let mut s = good_settings(&endpoint, &pki, "t", "n");
    s.tls = Some(EtcdTls {
        ca_pem: Some(read(&other.ca)),
        identity: Some((read(&pki.client_cert), read(&pki.client_key))),
    });
    match load(s).await {
        Err(DcsError::Rejected(m)) => assert!(m.contains("`cacert`"), "{m}"),
        other => panic!("wrong CA: {other:?}"),
    }

    // A client certificate from another CA.
    let mut s = good_settings(&endpoint, &pki, "t", "n");
    s.tls = Some(EtcdTls {
        ca_pem: Some(read(&pki.ca)),
        identity: Some((read(&other.client_cert), read(&other.client_key))),
    });
    match load(s).await {
        Err(DcsError::Rejected(m)) => assert!(m.contains("`cert`"), "{m}"),
        other => panic!("client certificate of another CA: {other:?}"),
    }

    // A wrong password.
    let mut s = good_settings(&endpoint, &pki, "t", "n");
    s.password = Some("wrong".into());
    match load(s).await {
        Err(DcsError::Rejected(m)) => assert!(m.contains("authentication failed"), "{m}"),
        other => panic!("wrong password: {other:?}"),
    }

    // No user at all while auth is enabled: the certificate's CN ("client") is no etcd user.
    let mut s = good_settings(&endpoint, &pki, "t", "n");
    s.username = None;
    s.password = None;
    match load(s).await {
        Err(DcsError::Rejected(_)) => {}
        other => panic!("no user: {other:?}"),
    }

    // Plain http to the TLS port: never answered in clear text.
    let mut s = settings(&[endpoint.replace("https://", "http://")], "t", "n");
    s.request_timeout = Duration::from_secs(1);
    assert!(load(s).await.is_err());
}
