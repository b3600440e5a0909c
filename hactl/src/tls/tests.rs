//! Reading keys and certificates as operators make them (openssl), and the errors that name the key.

use std::path::Path;
use std::process::Command;

use super::*;

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        st.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// A self-signed certificate as Patroni's acceptance suite makes it, and its key in three encodings.
fn keys(dir: &Path) {
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
            "plain.key",
            "-out",
            "cert.pem",
        ],
    );
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "plain.key",
            "-out",
            "pkcs8.key",
            "-passout",
            "pass:s3cret",
        ],
    );
    openssl(
        dir,
        &[
            "rsa",
            "-in",
            "plain.key",
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
        &dir.path().join("plain.key"),
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
        certfile: dir.path().join("cert.pem"),
        keyfile: Some(dir.path().join("plain.key")),
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
        keyfile: Some(dir.path().join("cert.pem")),
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
    let text = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap()
        + &std::fs::read_to_string(dir.path().join("plain.key")).unwrap();
    std::fs::write(&both, text).unwrap();
    server::server_config(&ServerTlsSettings {
        certfile: both,
        ..Default::default()
    })
    .unwrap();
}
