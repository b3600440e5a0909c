//! The server-certificate rules of each `sslmode`, against certificates made here: what verify-ca and verify-full
//! take and refuse, the pinned self-signed certificate, CRLs, and the client key's `sslpassword`.

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    IsCa, KeyIdMethod, KeyPair, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;
use crate::conn_options::ConnOptions;
use crate::settings::Credentials;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

fn leaf(ca: &Ca, name: &str, serial: u64) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.serial_number = Some(SerialNumber::from(serial));
    p.signed_by(&key, &ca.cert, &ca.key).unwrap().der().clone()
}

/// A self-signed certificate marked CA, as `openssl req -x509` makes it; optionally long expired.
fn self_signed_ca(name: &str, expired: bool) -> rcgen::Certificate {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    if expired {
        p.not_before = date_time_ymd(2000, 1, 1);
        p.not_after = date_time_ymd(2001, 1, 1);
    }
    p.self_signed(&key).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn options(opts: &[(&str, &Path)], mode: &str) -> ConnOptions {
    let c = opts.iter().fold(
        Credentials::new("postgres", None).with_option("sslmode", mode),
        |c, (k, p)| c.with_option(k, p.to_str().unwrap()),
    );
    ConnOptions::parse("superuser", &c, 150000).unwrap()
}

fn check(
    o: &ConnOptions,
    cert: &CertificateDer<'_>,
    host: &str,
) -> std::result::Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let v = server_verifier(o, &provider).unwrap();
    v.verify_server_cert(
        cert,
        &[],
        &ServerName::try_from(host.to_string()).unwrap(),
        &[],
        UnixTime::now(),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[test]
fn verify_ca_checks_the_chain_and_verify_full_also_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ca("ours");
    let root = write(dir.path(), "ca.crt", &ours.cert.pem());
    let other = write(dir.path(), "other.crt", &ca("other").cert.pem());
    let cert = leaf(&ours, "db1.example", 7);

    let ca_mode = options(&[("sslrootcert", &root)], "verify-ca");
    check(&ca_mode, &cert, "db1.example").unwrap();
    check(&ca_mode, &cert, "db2.example").unwrap();
    let full = options(&[("sslrootcert", &root)], "verify-full");
    check(&full, &cert, "db1.example").unwrap();
    assert!(check(&full, &cert, "db2.example").is_err());
    // libpq verifies the chain whenever it has a root file, `require` included.
    let require = options(&[("sslrootcert", &root)], "require");
    check(&require, &cert, "db2.example").unwrap();
    for mode in ["verify-ca", "verify-full", "require"] {
        let wrong = options(&[("sslrootcert", &other)], mode);
        let e = check(&wrong, &cert, "db1.example").unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
}

#[test]
fn a_self_signed_certificate_listed_as_the_root_is_taken_while_valid() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = self_signed_ca("db1.example", false);
    let root = write(dir.path(), "pinned.crt", &pinned.pem());
    check(
        &options(&[("sslrootcert", &root)], "verify-ca"),
        pinned.der(),
        "x",
    )
    .unwrap();
    let full = options(&[("sslrootcert", &root)], "verify-full");
    check(&full, pinned.der(), "db1.example").unwrap();
    assert!(check(&full, pinned.der(), "db2.example").is_err());

    let expired = self_signed_ca("db1.example", true);
    let root = write(dir.path(), "expired.crt", &expired.pem());
    let e = check(
        &options(&[("sslrootcert", &root)], "verify-ca"),
        expired.der(),
        "x",
    )
    .unwrap_err();
    assert!(e.contains("xpired"), "{e}");
    // Another self-signed certificate than the listed one is not taken.
    let stranger = self_signed_ca("db1.example", false);
    assert!(check(
        &options(&[("sslrootcert", &root)], "verify-ca"),
        stranger.der(),
        "x"
    )
    .is_err());
}

#[test]
fn a_revoked_certificate_is_refused_with_sslcrl_and_sslcrldir() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ca("ours");
    let root = write(dir.path(), "ca.crt", &ours.cert.pem());
    let revoked = leaf(&ours, "db1.example", 13);
    let good = leaf(&ours, "db1.example", 14);
    let crl = CertificateRevocationListParams {
        this_update: date_time_ymd(2020, 1, 1),
        next_update: date_time_ymd(2100, 1, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(13u64),
            revocation_time: date_time_ymd(2020, 1, 1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ours.cert, &ours.key)
    .unwrap();
    let crl_file = write(dir.path(), "ca.crl", &crl.pem().unwrap());
    let crl_dir = dir.path().join("crls");
    std::fs::create_dir(&crl_dir).unwrap();
    write(&crl_dir, "abcd1234.r0", &crl.pem().unwrap());

    for o in [
        options(
            &[("sslrootcert", &root), ("sslcrl", &crl_file)],
            "verify-ca",
        ),
        options(
            &[("sslrootcert", &root), ("sslcrldir", &crl_dir)],
            "verify-ca",
        ),
    ] {
        let e = check(&o, &revoked, "db1.example").unwrap_err();
        assert!(e.contains("Revoked"), "{e}");
        check(&o, &good, "db1.example").unwrap();
    }
}

#[test]
fn an_encrypted_client_key_needs_its_sslpassword() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ca("ours");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .signed_by(&key, &ours.cert, &ours.key)
        .unwrap();
    let crt = write(dir.path(), "c.crt", &cert.pem());
    write(dir.path(), "plain.key", &key.serialize_pem());
    // As operators make it: `openssl pkcs8 -topk8` (PKCS#8, `BEGIN ENCRYPTED PRIVATE KEY`).
    let enc_file = dir.path().join("c.key");
    ha_core::testing::pki::encrypt_key(&dir.path().join("plain.key"), &enc_file, "k3y");
    let with = |pw: Option<&str>| {
        let mut c = Credentials::new("postgres", None)
            .with_option("sslcert", crt.to_str().unwrap())
            .with_option("sslkey", enc_file.to_str().unwrap());
        if let Some(pw) = pw {
            c = c.with_option("sslpassword", pw);
        }
        ConnOptions::parse("superuser", &c, 150000).unwrap()
    };
    make_connect(&with(Some("k3y"))).unwrap();
    for pw in [None, Some("wrong")] {
        match make_connect(&with(pw)) {
            Err(Error::ConnOption { key, .. }) => {
                assert_eq!(key, "postgresql.authentication.superuser.sslpassword")
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a key was read without its password"),
        }
    }
}
