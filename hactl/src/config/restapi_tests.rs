//! The `restapi` section: HTTPS (certificates, the keys Patroni's acceptance suite sets through the environment,
//! settings refused rather than silently meaning plain HTTP), the allowlist and the extra headers.

use super::*;

#[test]
fn a_certfile_turns_https_on_and_members_publish_an_https_api_url() {
    let yaml = MINIMAL.replace(
        "connect_address: 10.0.0.1:8008}",
        "connect_address: 10.0.0.1:8008, certfile: /etc/ssl/x.pem}",
    );
    let c = Config::from_yaml_str(&yaml).unwrap();
    assert_eq!(
        c.api_url().as_deref(),
        Some("https://10.0.0.1:8008/patroni")
    );
    assert_eq!(
        c.restapi.tls.unwrap().certfile,
        std::path::PathBuf::from("/etc/ssl/x.pem")
    );
}

#[test]
fn restapi_tls_keys_as_patronis_acceptance_suite_sets_them_through_the_environment() {
    let c = load_with_env(
        MINIMAL,
        &[
            ("PATRONI_RESTAPI_CERTFILE", "/etc/p.crt"),
            ("PATRONI_RESTAPI_KEYFILE", "/etc/p.key"),
            ("PATRONI_RESTAPI_CAFILE", "/etc/ca.crt"),
            ("PATRONI_RESTAPI_VERIFY_CLIENT", "required"),
            ("PATRONI_CTL_INSECURE", "on"),
            ("PATRONI_CTL_CERTFILE", "/etc/c.crt"),
            ("PATRONI_CTL_KEYFILE", "/etc/c.key"),
        ],
    )
    .unwrap();
    let tls = c.restapi.tls.clone().expect("HTTPS on");
    assert_eq!(tls.verify_client, crate::tls::VerifyClient::Required);
    assert_eq!(
        tls.cafile.as_deref(),
        Some(std::path::Path::new("/etc/ca.crt"))
    );
    assert_eq!(
        c.api_url().as_deref(),
        Some("https://10.0.0.1:8008/patroni"),
        "members publish https"
    );
    let client = c.client_tls();
    assert!(client.insecure);
    assert_eq!(
        client.certfile.as_deref(),
        Some(std::path::Path::new("/etc/c.crt"))
    );
    assert_eq!(
        client.keyfile.as_deref(),
        Some(std::path::Path::new("/etc/c.key"))
    );
    assert_eq!(
        client.cacert.as_deref(),
        Some(std::path::Path::new("/etc/ca.crt")),
        "ctl.cacert falls back to restapi.cafile"
    );
    assert!(
        c.warnings.iter().all(|w| !w.contains("certfile")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn tls_keys_that_would_silently_mean_plain_http_are_refused_naming_the_key() {
    for (extra, key) in [
        ("cafile: /ca.pem", "restapi.cafile"),
        ("keyfile: /k.pem", "restapi.keyfile"),
        ("verify_client: required", "restapi.verify_client"),
        ("ciphers: HIGH", "restapi.ciphers"),
    ] {
        let yaml = MINIMAL.replace(
            "restapi: {listen: 0.0.0.0:8008, connect_address: 10.0.0.1:8008}",
            &format!("restapi: {{listen: 0.0.0.0:8008, connect_address: 10.0.0.1:8008, {extra}}}"),
        );
        let err = Config::from_yaml_str(&yaml).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { key: ref k, .. } if k == key),
            "{extra}: {err}"
        );
    }
    let yaml = MINIMAL.replace(
        "connect_address: 10.0.0.1:8008}",
        "connect_address: 10.0.0.1:8008, certfile: /c.pem, verify_client: sometimes}",
    );
    let err = Config::from_yaml_str(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("restapi.verify_client") && err.contains("none, optional or required"),
        "{err}"
    );
}

#[test]
fn allowlist_and_extra_headers_are_read_and_https_headers_only_with_https() {
    let yaml = MINIMAL.replace(
        "connect_address: 10.0.0.1:8008}",
        "connect_address: 10.0.0.1:8008, allowlist: [10.0.0.0/8, 127.0.0.1], allowlist_include_members: true, \
         http_extra_headers: {X-Frame-Options: SAMEORIGIN}, https_extra_headers: {Strict-Transport-Security: max-age=31536000}}",
    );
    let c = Config::from_yaml_str(&yaml).unwrap();
    assert_eq!(c.restapi.allowlist, vec!["10.0.0.0/8", "127.0.0.1"]);
    assert!(c.restapi.allowlist_include_members);
    assert_eq!(
        c.restapi.extra_headers,
        vec![("X-Frame-Options".to_string(), "SAMEORIGIN".to_string())]
    );
    let bad = MINIMAL.replace(
        "connect_address: 10.0.0.1:8008}",
        "connect_address: 10.0.0.1:8008, http_extra_headers: {\"Bad Header\": x}}",
    );
    let err = Config::from_yaml_str(&bad).unwrap_err().to_string();
    assert!(
        err.contains("restapi.http_extra_headers.Bad Header"),
        "{err}"
    );
}
