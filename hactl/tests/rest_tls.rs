//! The REST API over HTTPS, as a Patroni deployment runs it: client certificates (required, optional), the
//! allowlist, Basic auth, body limits, extra headers, a certificate renewed under a running server — on real
//! sockets, with certificates the test makes itself.

mod common;

use std::sync::Arc;

use common::certs::{make_pki, patroni_suite_cert, TestPki};
use common::TestCluster;
use hactl::api::access::AccessPolicy;
use hactl::api::server::ServeOptions;
use hactl::config::BasicAuth;
use hactl::tls::client::ClientTlsSettings;
use hactl::tls::server::ServerTls;
use hactl::tls::{ServerTlsSettings, VerifyClient};

fn admin() -> Option<BasicAuth> {
    Some(BasicAuth {
        username: "admin".into(),
        password: "secret".into(),
    })
}

fn server_settings(pki: &TestPki, verify: VerifyClient) -> ServerTlsSettings {
    ServerTlsSettings {
        certfile: pki.server_cert.clone(),
        keyfile: Some(pki.server_key.clone()),
        cafile: Some(pki.ca.clone()),
        verify_client: verify,
        ..Default::default()
    }
}

/// node1 of a settled simulated cluster served over HTTPS with `tls` and `access`; returns its base URL.
async fn serve_node(
    tls: Arc<ServerTls>,
    access: AccessPolicy,
    headers: Vec<(&str, &str)>,
) -> (TestCluster, String) {
    let c = TestCluster::new(1, admin(), &[]);
    c.settle();
    let ctx = c.ctxs[0].clone();
    // The context is shared by the test cluster; serve a copy with the access rules.
    let ctx = Arc::new(
        hactl::api::ApiContext::new(
            ctx.identity.clone(),
            "batman",
            ctx.state.clone(),
            ctx.dcs.clone(),
            ctx.clock.clone(),
        )
        .with_auth(admin())
        .with_access(access),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = ServeOptions {
        tls: Some(tls),
        extra_headers: headers
            .into_iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect(),
    };
    tokio::spawn(hactl::api::serve_with(
        listener,
        ctx,
        options,
        std::future::pending(),
    ));
    (c, format!("https://127.0.0.1:{port}"))
}

fn client(
    cacert: Option<&std::path::Path>,
    cert: Option<(&std::path::Path, &std::path::Path)>,
) -> reqwest::Client {
    hactl::client::http_client_with(&ClientTlsSettings {
        cacert: cacert.map(Into::into),
        certfile: cert.map(|c| c.0.into()),
        keyfile: cert.map(|c| c.1.into()),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn required_client_certificates_refuse_the_handshake_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "a");
    let other = make_pki(dir.path(), "b");
    let tls = Arc::new(ServerTls::new(server_settings(&pki, VerifyClient::Required)).unwrap());
    let (_c, url) = serve_node(
        tls,
        AccessPolicy {
            client_cert_required: true,
            ..Default::default()
        },
        vec![],
    )
    .await;

    let with_cert = client(Some(&pki.ca), Some((&pki.client_cert, &pki.client_key)));
    let r = with_cert
        .get(format!("{url}/patroni"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["role"],
        "primary"
    );

    let no_cert = client(Some(&pki.ca), None);
    assert!(
        no_cert.get(format!("{url}/patroni")).send().await.is_err(),
        "no client certificate: no handshake"
    );
    let foreign_cert = client(Some(&pki.ca), Some((&other.client_cert, &other.client_key)));
    assert!(
        foreign_cert
            .get(format!("{url}/patroni"))
            .send()
            .await
            .is_err(),
        "a certificate of another CA"
    );
    let wrong_ca = client(Some(&other.ca), Some((&pki.client_cert, &pki.client_key)));
    assert!(
        wrong_ca.get(format!("{url}/patroni")).send().await.is_err(),
        "the server is not trusted"
    );
    let plain = reqwest::Client::new();
    let r = plain
        .get(url.replace("https", "http") + "/patroni")
        .send()
        .await;
    assert!(
        r.map_or(true, |r| r.status() != 200),
        "plain HTTP on the HTTPS port serves nothing"
    );
}

#[tokio::test]
async fn changes_need_a_certificate_the_password_and_an_allowed_address() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "a");
    let tls = Arc::new(ServerTls::new(server_settings(&pki, VerifyClient::Optional)).unwrap());
    let (_c, url) = serve_node(
        tls.clone(),
        AccessPolicy {
            client_cert_required: true,
            ..Default::default()
        },
        vec![("X-Frame-Options", "SAMEORIGIN")],
    )
    .await;
    let anon = client(Some(&pki.ca), None);
    let r = anon.get(format!("{url}/primary")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "reads need no certificate with verify_client: optional"
    );
    assert_eq!(
        r.headers()["x-frame-options"],
        "SAMEORIGIN",
        "http(s)_extra_headers on every response"
    );
    let r = anon
        .post(format!("{url}/restart"))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "client certificate required");

    let cert = client(Some(&pki.ca), Some((&pki.client_cert, &pki.client_key)));
    let r = cert
        .post(format!("{url}/reload"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.text().await.unwrap(),
        "not authenticated",
        "no hint of which part was wrong"
    );
    let r = cert.post(format!("{url}/reload")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = cert
        .post(format!("{url}/failsafe"))
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "POST /failsafe needs the credentials too");
    let r = cert
        .post(format!("{url}/reload"))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let r = cert
        .patch(format!("{url}/config"))
        .basic_auth("admin", Some("secret"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "malformed JSON");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1 << 20));
    let r = cert
        .patch(format!("{url}/config"))
        .basic_auth("admin", Some("secret"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "a body over 1 MB");

    // The same server with an allowlist that does not hold 127.0.0.1.
    let (_c2, url2) = serve_node(
        tls,
        AccessPolicy {
            allowlist: AccessPolicy::resolve_allowlist(&["10.0.0.0/8".into()]).unwrap(),
            client_cert_required: true,
            ..Default::default()
        },
        vec![],
    )
    .await;
    let r = cert
        .post(format!("{url2}/reload"))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "Access is denied");
    assert_eq!(
        cert.get(format!("{url2}/patroni"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "reads are not restricted"
    );
}

#[tokio::test]
async fn patroni_suites_self_signed_certificate_is_ca_server_and_client_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = patroni_suite_cert(dir.path());
    let tls = ServerTls::new(ServerTlsSettings {
        certfile: cert.clone(),
        keyfile: Some(key.clone()),
        cafile: Some(cert.clone()),
        verify_client: VerifyClient::Required,
        ..Default::default()
    })
    .unwrap();
    let (_c, url) = serve_node(
        Arc::new(tls),
        AccessPolicy {
            client_cert_required: true,
            ..Default::default()
        },
        vec![],
    )
    .await;
    let c = client(Some(&cert), Some((&cert, &key)));
    let r = c
        .post(format!("{url}/reload"))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let insecure = hactl::client::http_client_with(&ClientTlsSettings {
        certfile: Some(cert.clone()),
        keyfile: Some(key.clone()),
        insecure: true,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        insecure
            .get(format!("{url}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_after_a_reload_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_pki(dir.path(), "old");
    let settings = ServerTlsSettings {
        certfile: dir.path().join("live.pem"),
        keyfile: Some(dir.path().join("live.key")),
        ..Default::default()
    };
    std::fs::copy(&old.server_cert, &settings.certfile).unwrap();
    std::fs::copy(&old.server_key, settings.keyfile.as_ref().unwrap()).unwrap();
    let tls = Arc::new(ServerTls::new(settings.clone()).unwrap());
    let (_c, url) = serve_node(tls.clone(), AccessPolicy::default(), vec![]).await;
    let new = make_pki(dir.path(), "new");
    let trusts_new = client(Some(&new.ca), None);
    assert!(
        trusts_new
            .get(format!("{url}/patroni"))
            .send()
            .await
            .is_err(),
        "still the old certificate"
    );

    std::fs::copy(&new.server_cert, &settings.certfile).unwrap();
    std::fs::copy(&new.server_key, settings.keyfile.as_ref().unwrap()).unwrap();
    tls.reload().unwrap();
    assert_eq!(
        trusts_new
            .get(format!("{url}/patroni"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    std::fs::write(&settings.certfile, "garbage").unwrap();
    assert_eq!(tls.reload().unwrap_err().key, "restapi.certfile");
    assert_eq!(
        trusts_new
            .get(format!("{url}/patroni"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "a failed reload keeps the loaded certificate"
    );
}
