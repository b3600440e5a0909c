//! TLS on every link to another member, against real PostgreSQL 15 with `ssl=on` and `hostssl ... clientcert=verify-ca`
//! only: the replica is cloned (pg_basebackup) and streams (walreceiver) with `sslmode=verify-ca` and a client
//! certificate whose key is encrypted (`sslpassword`: the service file for pg_basebackup, inline for the walreceiver,
//! decrypted by pg-control itself for its own connections); our own superuser queries to the primary verify it the
//! same way (and fail against a wrong CA); what cannot be honoured is refused naming its key.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{sql, upstream, wait_for, World};
use ha_core::pg::StopMode;
use pg_control::{Credentials, PgCtl, PgSettings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A file the PostgreSQL user can read and nobody else (libpq and the server insist on 0600 keys).
fn write_private(path: &Path, contents: &str) -> PathBuf {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if common::is_root() {
        let (uid, gid) = common::postgres_ids();
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
    path.to_path_buf()
}

/// A CA and its key.
fn ca(cn: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    (p.self_signed(&key).unwrap(), key)
}

/// A certificate for `names` signed by `ca`, written as `<stem>.crt` and `<stem>.key`.
fn leaf(
    dir: &Path,
    stem: &str,
    cn: &str,
    names: &[&str],
    ca: &(rcgen::Certificate, KeyPair),
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.signed_by(&key, &ca.0, &ca.1).unwrap();
    (
        write_private(&dir.join(format!("{stem}.crt")), &cert.pem()),
        write_private(&dir.join(format!("{stem}.key")), &key.serialize_pem()),
    )
}

struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    /// The client key encrypted with [`KEY_PASSWORD`] (`openssl pkcs8 -topk8`).
    client_encrypted_key: PathBuf,
}

const KEY_PASSWORD: &str = "k3y pass";

fn pki(dir: &Path) -> Pki {
    let ca_pair = ca("hactl test CA");
    let other = ca("someone else's CA");
    let client = leaf(dir, "client", "hactl client", &[], &ca_pair);
    let enc = dir.join("client-enc.key");
    ha_core::testing::pki::encrypt_key(&client.1, &enc, KEY_PASSWORD);
    let client_encrypted_key = write_private(&enc, &std::fs::read_to_string(&enc).unwrap());
    Pki {
        client,
        client_encrypted_key,
        ca: write_private(&dir.join("ca.crt"), &ca_pair.0.pem()),
        other_ca: write_private(&dir.join("other-ca.crt"), &other.0.pem()),
        server: leaf(
            dir,
            "server",
            "127.0.0.1",
            &["127.0.0.1", "localhost"],
            &ca_pair,
        ),
    }
}

/// `verify-ca` with the client certificate (its key encrypted), for every role, against `root`.
fn tls_creds(c: Credentials, root: &Path, pki: &Pki) -> Credentials {
    c.with_option("sslmode", "verify-ca")
        .with_option("sslrootcert", root.to_str().unwrap())
        .with_option("sslcert", pki.client.0.to_str().unwrap())
        .with_option("sslkey", pki.client_encrypted_key.to_str().unwrap())
        .with_option("sslpassword", KEY_PASSWORD)
}

/// A node whose server takes TCP connections only over TLS with a client certificate signed by the test CA.
fn tls_settings(w: &mut World, name: &str, pki: &Pki, root: &Path) -> PgSettings {
    let mut s = w.settings(name);
    s.pg_hba = vec![
        "local all all trust".into(),
        "hostssl replication replicator 127.0.0.1/32 scram-sha-256 clientcert=verify-ca".into(),
        "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca".into(),
    ];
    for (k, v) in [
        ("ssl", "on"),
        ("ssl_cert_file", pki.server.0.to_str().unwrap()),
        ("ssl_key_file", pki.server.1.to_str().unwrap()),
        ("ssl_ca_file", pki.ca.to_str().unwrap()),
    ] {
        s.parameters.insert(k.into(), v.into());
    }
    s.superuser = tls_creds(s.superuser.clone(), root, pki);
    s.replication = tls_creds(s.replication.clone(), root, pki);
    s.rewind = s.rewind.clone().map(|r| tls_creds(r, root, pki));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_streams_over_verified_tls_and_a_wrong_ca_is_refused() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let pki = pki(w.path());
    let n1 = PgCtl::new(tls_settings(&mut w, "n1", &pki, &pki.ca))
        .await
        .unwrap();
    let n2 = PgCtl::new(tls_settings(&mut w, "n2", &pki, &pki.ca))
        .await
        .unwrap();

    n1.bootstrap().await.expect("bootstrap");
    n2.clone_from(&upstream(&n1)).await.expect("clone over TLS");
    // The key's password reached pg_basebackup through the 0600 service file, not its command line.
    let service = PathBuf::from(format!("{}.service", n2.settings().pgpass.display()));
    let service = std::fs::metadata(&service).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(service.ok(), Some(0o600));
    let conf = std::fs::read_to_string(n2.settings().data_dir.join("postgresql.conf")).unwrap();
    assert!(conf.contains("sslmode=verify-ca"), "{conf}");
    assert!(conf.contains("sslcert="), "{conf}");
    n2.start_replica(Some(&upstream(&n1)))
        .await
        .expect("start replica");

    sql(
        &n1,
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('over tls')",
    )
    .await;
    wait_for(Duration::from_secs(20), "the row on n2", || async {
        n2.observe().await.streaming
            && sql(&n2, "SELECT count(*) FROM pg_class WHERE relname = 't'").await == ["1"]
            && sql(&n2, "SELECT v FROM t").await == ["over tls"]
    })
    .await;
    // The walreceiver's connection is TLS, with our client certificate.
    assert_eq!(
        sql(
            &n1,
            "SELECT s.ssl::text || ':' || s.client_dn FROM pg_stat_ssl s JOIN pg_stat_replication r USING (pid)"
        )
        .await,
        vec!["true:/CN=hactl client"]
    );
    // The slot was checked and created on n1 by our own superuser connection (over TLS: pg_hba has no other way).
    assert_eq!(
        sql(&n1, "SELECT slot_name FROM pg_replication_slots").await,
        vec!["n2"]
    );

    // The same query against a CA that did not sign the server's certificate fails, and says why.
    let n3 = PgCtl::new(tls_settings(&mut w, "n3", &pki, &pki.other_ca))
        .await
        .unwrap();
    let err = n3
        .reinitialize(&upstream(&n1))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    assert!(!n3.settings().data_dir.join("PG_VERSION").exists());

    n2.stop(StopMode::Fast).await.unwrap();
    n1.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_cannot_be_honoured_are_refused_naming_the_key() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let mut s = w.settings("n1");
    s.superuser = s.superuser.clone().with_option("gssencmode", "require");
    match PgCtl::new(s).await {
        Err(pg_control::Error::ConnOption { key, reason }) => {
            assert_eq!(key, "postgresql.authentication.superuser.gssencmode");
            assert!(reason.contains("GSSAPI"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut s = w.settings("n2");
    s.replication = s.replication.clone().with_option("sslmdoe", "require");
    let err = PgCtl::new(s).await.unwrap_err().to_string();
    assert!(
        err.contains("postgresql.authentication.replication.sslmdoe"),
        "{err}"
    );
    // A client key that does not exist refuses the start rather than connecting without it.
    let mut s = w.settings("n3");
    s.superuser = s
        .superuser
        .clone()
        .with_option("sslcert", "/nonexistent/c.crt")
        .with_option("sslkey", "/nonexistent/c.key");
    let err = PgCtl::new(s).await.unwrap_err().to_string();
    assert!(
        err.contains("postgresql.authentication.superuser.sslcert"),
        "{err}"
    );
}
