//! Reading keys and certificates as operators make them (openssl), and the errors that name the key.

use std::path::Path;

use ha_core::testing::pki::{encrypt_key, openssl, patroni_suite_cert};

use super::*;

/// A self-signed certificate as Patroni's acceptance suite makes it (`patroni.crt`), and its key in three
/// encodings: plain (`patroni.key`), PKCS#8 encrypted (`pkcs8.key`), traditional encrypted (`legacy.key`).
fn keys(dir: &Path) {
    patroni_suite_cert(dir);
    encrypt_key(&dir.join("patroni.key"), &dir.join("pkcs8.key"), "s3cret");
    openssl(
        dir,
        &[
            "rsa",
            "-in",
            "patroni.key",
            "-aes256",
            "-traditional",
            "-out",
            "legacy.key",
            "-passout",
            "pass:s3cret",
        ],
    );
}

#[test]
fn a_pkcs8_encrypted_key_is_read_with_its_password_and_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let p = dir.path().join("pkcs8.key");
    let plain = read_key(
        &dir.path().join("patroni.key"),
        None,
        "restapi.keyfile",
        "restapi.keyfile_password",
    )
    .unwrap();
    let dec = read_key(
        &p,
        Some("s3cret"),
        "restapi.keyfile",
        "restapi.keyfile_password",
    )
    .unwrap();
    assert_eq!(
        plain.secret_der(),
        dec.secret_der(),
        "the decrypted key is the original"
    );
    let e = read_key(
        &p,
        Some("wrong"),
        "restapi.keyfile",
        "restapi.keyfile_password",
    )
    .unwrap_err();
    assert_eq!(e.key, "restapi.keyfile_password");
    let e = read_key(&p, None, "restapi.keyfile", "restapi.keyfile_password").unwrap_err();
    assert_eq!(e.key, "restapi.keyfile_password");
    assert!(e.why.contains("no password"), "{e}");
}

#[test]
fn a_legacy_encrypted_key_is_refused_with_the_conversion_command() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let e = read_key(
        &dir.path().join("legacy.key"),
        Some("s3cret"),
        "restapi.keyfile",
        "restapi.keyfile_password",
    )
    .unwrap_err();
    assert!(e.why.contains("openssl pkcs8 -topk8"), "{e}");
}

#[test]
fn server_settings_that_cannot_be_honoured_refuse_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let ok = ServerTlsSettings {
        certfile: dir.path().join("patroni.crt"),
        keyfile: Some(dir.path().join("patroni.key")),
        ..Default::default()
    };
    server::server_config(&ok).unwrap();
    let missing = ServerTlsSettings {
        certfile: dir.path().join("nope.pem"),
        ..ok.clone()
    };
    assert_eq!(
        server::server_config(&missing).unwrap_err().key,
        "restapi.certfile"
    );
    let no_ca = ServerTlsSettings {
        verify_client: VerifyClient::Required,
        ..ok.clone()
    };
    assert_eq!(
        server::server_config(&no_ca).unwrap_err().key,
        "restapi.cafile"
    );
    let wrong_key = ServerTlsSettings {
        keyfile: Some(dir.path().join("patroni.crt")),
        ..ok.clone()
    };
    assert_eq!(
        server::server_config(&wrong_key).unwrap_err().key,
        "restapi.keyfile"
    );
    let ciphers = ServerTlsSettings {
        ciphers: Some("3DES".into()),
        ..ok
    };
    assert_eq!(
        server::server_config(&ciphers).unwrap_err().key,
        "restapi.ciphers"
    );
}

#[test]
fn the_key_may_live_in_the_certificate_file_as_patroni_allows() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path());
    let both = dir.path().join("both.pem");
    let text = std::fs::read_to_string(dir.path().join("patroni.crt")).unwrap()
        + &std::fs::read_to_string(dir.path().join("patroni.key")).unwrap();
    std::fs::write(&both, text).unwrap();
    server::server_config(&ServerTlsSettings {
        certfile: both,
        ..Default::default()
    })
    .unwrap();
}
