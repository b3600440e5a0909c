//! Every DCS security key is acted on or refused naming the key: one test per refusal, and the accepted forms.

use crate::config::{Config, ConfigError, DcsConfig};

fn load(dcs: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_str(&format!("scope: batman\nname: node1\n{dcs}\n"))
}

/// The key a refusal names.
fn refused_key(dcs: &str) -> String {
    match load(dcs) {
        Err(ConfigError::Invalid { key, .. }) => key,
        Err(ConfigError::Missing { key }) => key,
        other => panic!("{dcs}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn etcd_tls_and_auth_keys_are_read() {
    let c = load(
        "etcd3: {hosts: ['e1:2379'], protocol: https, cacert: /ca.pem, cert: /c.pem, key: /k.pem, \
         key_password: pw, username: u, password: p, verify: true}",
    )
    .unwrap();
    let Some(DcsConfig::Etcd3(e)) = c.dcs else {
        panic!()
    };
    assert_eq!(e.protocol, "https");
    assert_eq!(e.cacert.as_deref(), Some("/ca.pem"));
    assert_eq!(e.key_password.as_deref(), Some("pw"));
    assert_eq!(
        (e.username.as_deref(), e.password.as_deref()),
        (Some("u"), Some("p"))
    );
    let c = load("etcd3: {url: 'https://e1:2379', cacert: /ca.pem}").unwrap();
    let Some(DcsConfig::Etcd3(e)) = c.dcs else {
        panic!()
    };
    assert_eq!(e.protocol, "https");
}

#[test]
fn etcd_security_keys_that_cannot_be_honoured_are_refused() {
    assert_eq!(
        refused_key("etcd3: {hosts: ['e1:2379'], protocol: https, verify: false}"),
        "etcd3.verify"
    );
    for k in ["cacert", "cert", "key", "key_password"] {
        assert_eq!(
            refused_key(&format!("etcd3: {{hosts: ['e1:2379'], {k}: /x.pem}}")),
            format!("etcd3.{k}"),
            "a TLS key with protocol http"
        );
    }
    assert!(
        refused_key("etcd3: {hosts: ['e1:2379'], protocol: https, key: /k.pem}")
            .starts_with("etcd3.cert"),
        "key without cert"
    );
    assert!(
        refused_key("etcd: {hosts: ['e1:2379'], password: p}").starts_with("etcd.username"),
        "password without username"
    );
}

#[test]
fn zookeeper_auth_data_and_set_acls_are_read_in_both_forms() {
    let c = load(
        "zookeeper: {hosts: ['z1:2181'], auth_data: {digest: 'u:p'}, \
         set_acls: {'digest:u:hash=': [read, WRITE], 'ip:10.0.0.0/8': 'READ,CREATE', 'auth:': [ALL]}}",
    )
    .unwrap();
    let Some(DcsConfig::Zookeeper(z)) = c.dcs else {
        panic!()
    };
    assert_eq!(z.auth_data, vec![("digest".to_string(), "u:p".to_string())]);
    assert_eq!(z.set_acls.len(), 3);
    assert_eq!(
        z.set_acls[0],
        (
            "digest:u:hash=".to_string(),
            vec!["read".to_string(), "WRITE".to_string()]
        )
    );
    let c = load("zookeeper: {hosts: ['z1:2181'], auth_data: [[digest, 'u:p'], [ip, '']]}");
    assert!(c.is_err(), "an empty credential is refused");
    let c = load("zookeeper: {hosts: ['z1:2181'], auth_data: [[digest, 'u:p']]}").unwrap();
    let Some(DcsConfig::Zookeeper(z)) = c.dcs else {
        panic!()
    };
    assert_eq!(z.auth_data.len(), 1);
}

#[test]
fn zookeeper_security_keys_that_cannot_be_honoured_are_refused() {
    assert_eq!(
        refused_key("zookeeper: {hosts: ['z1:2181'], use_ssl: true}"),
        "zookeeper.use_ssl"
    );
    for k in ["cacert", "cert", "key", "key_password", "verify"] {
        assert_eq!(
            refused_key(&format!("zookeeper: {{hosts: ['z1:2181'], {k}: x}}")),
            format!("zookeeper.{k}")
        );
    }
    // x509 principals (bare, as in Patroni's doc, or explicit) need TLS client certificates.
    assert_eq!(
        refused_key("zookeeper: {hosts: ['z1:2181'], set_acls: {'CN=principal1': [ALL]}}"),
        "zookeeper.set_acls.CN=principal1"
    );
    assert_eq!(
        refused_key("zookeeper: {hosts: ['z1:2181'], set_acls: {'x509:CN=p': [ALL]}}"),
        "zookeeper.set_acls.x509:CN=p"
    );
    assert_eq!(
        refused_key("zookeeper: {hosts: ['z1:2181'], set_acls: {'digest:u:h': [REED]}}"),
        "zookeeper.set_acls.digest:u:h"
    );
    assert_eq!(
        refused_key("zookeeper: {hosts: ['z1:2181'], set_acls: {'digest:u:h': []}}"),
        "zookeeper.set_acls.digest:u:h"
    );
    assert_eq!(
        refused_key("zookeeper: {hosts: ['z1:2181'], auth_data: 'digest:u:p'}"),
        "zookeeper.auth_data"
    );
}

#[test]
fn consul_tls_keys_are_read_and_what_cannot_be_honoured_is_refused() {
    let c = load(
        "consul: {url: 'https://c1:8501', token: t, cacert: /ca.pem, cert: /c.pem, key: /k.pem, verify: true, \
         consistency: default}",
    )
    .unwrap();
    let Some(DcsConfig::Consul(cc)) = c.dcs else {
        panic!()
    };
    assert_eq!(cc.scheme, "https");
    assert_eq!(cc.token.as_deref(), Some("t"));
    assert_eq!(cc.cacert.as_deref(), Some("/ca.pem"));
    assert_eq!(cc.verify, Some(true));
    let c = load("consul: {host: 'c1:8500', dc: dc2, consistency: stale}").unwrap();
    let Some(DcsConfig::Consul(cc)) = c.dcs else {
        panic!()
    };
    assert_eq!(
        (cc.dc.as_deref(), cc.consistency.as_deref()),
        (Some("dc2"), Some("stale"))
    );
    assert_eq!(
        refused_key("consul: {host: 'c1:8500', consistency: eventual}"),
        "consul.consistency"
    );
    assert_eq!(
        refused_key("consul: {host: 'c1:8500', scheme: ftp}"),
        "consul.scheme"
    );
    for k in ["cacert", "cert", "key", "verify"] {
        assert_eq!(
            refused_key(&format!("consul: {{host: 'c1:8500', {k}: x}}")),
            format!("consul.{k}"),
            "a TLS key with scheme http"
        );
    }
    assert!(
        refused_key("consul: {host: 'c1:8501', scheme: https, key: /k.pem}")
            .starts_with("consul.cert")
    );
}
