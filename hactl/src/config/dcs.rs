//! The DCS section, `etcd3`, `etcd`, `consul` or `zookeeper`: Patroni uses the first one it finds in this order,
//! and so does hactl (with a warning naming the others).

use serde_json::Value;

use super::value::Section;
use super::{ConfigError, ConsulConfig, DcsConfig, EtcdConfig, HostPort, ZookeeperConfig};

/// A security setting hactl cannot honour: the start is refused, naming the key (never a warning).
fn refused(key: &str, expected: &str, got: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        expected: expected.to_string(),
        got: got.to_string(),
    }
}

fn parse_etcd(s: &Section, warnings: &mut Vec<String>) -> Result<EtcdConfig, ConfigError> {
    s.warn_unknown(
        &[
            "host",
            "hosts",
            "port",
            "url",
            "proxy",
            "srv",
            "srv_suffix",
            "protocol",
            "use_proxies",
            "username",
            "password",
            "cacert",
            "cert",
            "key",
            "key_password",
            "verify",
            "retry_timeout",
        ],
        warnings,
    );
    let mut protocol = s.string("protocol")?.unwrap_or_else(|| "http".into());
    if protocol != "http" && protocol != "https" {
        return Err(ConfigError::Invalid {
            key: s.key("protocol"),
            expected: "http or https".into(),
            got: format!("{protocol:?}"),
        });
    }
    let mut hosts = Vec::new();
    if let Some(list) = s.string_list("hosts")? {
        hosts = list;
    } else if let Some(h) = s.string("host")? {
        hosts.push(h);
    } else if let Some(url) = s.string("url")? {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| ConfigError::Invalid {
            key: s.key("url"),
            expected: "a URL like http://host:2379".into(),
            got: format!("{url:?}"),
        })?;
        protocol = scheme.to_string();
        hosts.push(rest.trim_end_matches('/').to_string());
    }
    for k in ["proxy", "srv"] {
        if s.has(k) {
            warnings.push(format!(
                "`{}` is not supported by hactl; list the endpoints in `hosts`",
                s.key(k)
            ));
        }
    }
    s.warn_not_acted_on(
        &[
            ("srv_suffix", "SRV discovery is not supported"),
            (
                "use_proxies",
                "hactl connects to the listed endpoints directly",
            ),
            (
                "retry_timeout",
                "the cluster-wide retry_timeout bounds every DCS request",
            ),
            ("port", "give the port in `host`, `hosts` or `url`"),
        ],
        warnings,
    );
    if hosts.is_empty() && !s.has("srv") && !s.has("proxy") {
        return Err(ConfigError::Missing {
            key: format!("{} (host, hosts or url)", s.path),
        });
    }
    for (i, h) in hosts.iter().enumerate() {
        HostPort::parse(&format!("{}[{i}]", s.key("hosts")), h)?;
    }
    let config = EtcdConfig {
        hosts,
        protocol,
        username: s.string("username")?,
        password: s.string("password")?,
        cacert: s.string("cacert")?,
        cert: s.string("cert")?,
        key: s.string("key")?,
        key_password: s.string("key_password")?,
    };
    // Fail closed: a security setting hactl cannot honour refuses the start, naming the key.
    if s.bool("verify")? == Some(false) {
        return Err(refused(
            &s.key("verify"),
            "true: hactl always verifies the etcd server's certificate (set `cacert` to the CA that signed it)",
            "false",
        ));
    }
    if config.protocol == "http" {
        for k in ["cacert", "cert", "key", "key_password"] {
            if s.has(k) {
                return Err(refused(
                    &s.key(k),
                    &format!(
                        "`{}: https` (or https:// hosts) for a TLS setting",
                        s.key("protocol")
                    ),
                    "protocol http: the setting would be ignored and the link left in clear text",
                ));
            }
        }
    }
    if config.key.is_some() && config.cert.is_none() {
        return Err(ConfigError::Missing {
            key: format!("{} (`{}` is set)", s.key("cert"), s.key("key")),
        });
    }
    if config.password.is_some() && config.username.is_none() {
        return Err(ConfigError::Missing {
            key: format!("{} (`{}` is set)", s.key("username"), s.key("password")),
        });
    }
    Ok(config)
}

/// Why hactl's ZooKeeper client has no TLS: named in every refusal of a TLS setting.
const ZK_NO_TLS: &str =
    "hactl's ZooKeeper client (zookeeper-async) speaks plain TCP only: it cannot do TLS";

/// `zookeeper.auth_data`, `set_acls`, and the TLS keys (refused: see [`ZK_NO_TLS`]).
fn parse_zookeeper_security(
    s: &Section,
    hosts: Vec<String>,
) -> Result<ZookeeperConfig, ConfigError> {
    let use_ssl = s.bool("use_ssl")?.unwrap_or(false);
    if use_ssl {
        return Err(refused(
            &s.key("use_ssl"),
            &format!("false ({ZK_NO_TLS})"),
            "true",
        ));
    }
    // Patroni ignores these without use_ssl; a TLS setting that does nothing is refused rather than ignored.
    for k in ["cacert", "cert", "key", "key_password", "verify"] {
        if s.has(k) {
            return Err(refused(
                &s.key(k),
                &format!("no TLS setting ({ZK_NO_TLS})"),
                "a TLS setting that would be ignored",
            ));
        }
    }
    let mut auth_data = Vec::new();
    match s.get("auth_data") {
        None | Some(Value::Null) => {}
        // Patroni's form: {scheme: credential}.
        Some(Value::Object(m)) => {
            for (scheme, cred) in m {
                let key = format!("{}.{scheme}", s.key("auth_data"));
                let Value::String(cred) = cred else {
                    return Err(ConfigError::invalid(&key, "a credential string", cred));
                };
                auth_data.push((scheme.clone(), cred.clone()));
            }
        }
        // Also accepted: [[scheme, credential], ...].
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let key = format!("{}[{i}]", s.key("auth_data"));
                match item.as_array().map(|a| a.as_slice()) {
                    Some([Value::String(scheme), Value::String(cred)]) => {
                        auth_data.push((scheme.clone(), cred.clone()))
                    }
                    _ => return Err(ConfigError::invalid(&key, "[scheme, credential]", item)),
                }
            }
        }
        Some(other) => {
            return Err(ConfigError::invalid(
                &s.key("auth_data"),
                "a map of scheme: credential",
                other,
            ))
        }
    }
    for (i, (scheme, cred)) in auth_data.iter().enumerate() {
        if scheme.is_empty() || cred.is_empty() {
            return Err(refused(
                &format!("{}[{i}]", s.key("auth_data")),
                "a scheme and a credential, e.g. digest: 'user:password'",
                "an empty one",
            ));
        }
    }
    let mut set_acls = Vec::new();
    match s.get("set_acls") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (principal, perms) in m {
                let key = format!("{}.{principal}", s.key("set_acls"));
                let perms: Vec<String> = match perms {
                    Value::String(p) => p.split(',').map(|x| x.trim().to_string()).collect(),
                    Value::Array(a) => a
                        .iter()
                        .map(|p| p.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| {
                            ConfigError::invalid(&key, "a list of permissions", perms)
                        })?,
                    other => {
                        return Err(ConfigError::invalid(&key, "a list of permissions", other))
                    }
                };
                check_zk_acl(&key, principal, &perms)?;
                set_acls.push((principal.clone(), perms));
            }
        }
        Some(other) => {
            return Err(ConfigError::invalid(
                &s.key("set_acls"),
                "a map of principal: [permissions]",
                other,
            ))
        }
    }
    Ok(ZookeeperConfig {
        hosts,
        use_ssl,
        auth_data,
        set_acls,
    })
}

/// One `set_acls` entry, checked the way `dcs_zk::acl_from_patroni` reads it, naming the key on refusal.
fn check_zk_acl(key: &str, principal: &str, perms: &[String]) -> Result<(), ConfigError> {
    let Some((scheme, id)) = principal.split_once(':') else {
        return Err(refused(
            key,
            &format!("a `scheme:id` principal such as `digest:user:<base64 sha1>` (a bare name is an x509 \
                 certificate name, and {ZK_NO_TLS})"),
            principal,
        ));
    };
    if scheme == "x509" {
        return Err(refused(
            key,
            &format!("another scheme ({ZK_NO_TLS})"),
            principal,
        ));
    }
    if id.is_empty() && scheme != "auth" {
        return Err(refused(key, "`scheme:id` with an id", principal));
    }
    const PERMS: [&str; 6] = ["READ", "WRITE", "CREATE", "DELETE", "ADMIN", "ALL"];
    if perms.is_empty() {
        return Err(refused(
            key,
            "at least one of READ, WRITE, CREATE, DELETE, ADMIN, ALL",
            "none",
        ));
    }
    for p in perms {
        if !PERMS.contains(&p.to_ascii_uppercase().as_str()) {
            return Err(refused(key, "READ, WRITE, CREATE, DELETE, ADMIN or ALL", p));
        }
    }
    Ok(())
}

/// The `consul` keys hactl cannot honour (yet), refused naming the key; the TLS keys need `scheme: https`.
fn check_consul_security(s: &Section, scheme: &str) -> Result<(), ConfigError> {
    if scheme != "http" && scheme != "https" {
        return Err(refused(&s.key("scheme"), "http or https", scheme));
    }
    if let Some(c) = s.string("consistency")? {
        if !matches!(c.as_str(), "default" | "consistent" | "stale") {
            return Err(refused(
                &s.key("consistency"),
                "default, consistent or stale",
                &c,
            ));
        }
    }
    if scheme == "http" {
        for k in ["cacert", "cert", "key", "verify"] {
            if s.has(k) {
                return Err(refused(
                    &s.key(k),
                    &format!(
                        "`{}: https` (or an https:// url) for a TLS setting",
                        s.key("scheme")
                    ),
                    "scheme http: the setting would be ignored and the link left in clear text",
                ));
            }
        }
    }
    if s.has("key") && !s.has("cert") {
        return Err(ConfigError::Missing {
            key: format!("{} (`{}` is set)", s.key("cert"), s.key("key")),
        });
    }
    Ok(())
}

pub(super) fn parse_dcs(
    root: &Section,
    warnings: &mut Vec<String>,
) -> Result<Option<DcsConfig>, ConfigError> {
    let present: Vec<&str> = ["etcd3", "etcd", "consul", "zookeeper"]
        .into_iter()
        .filter(|k| root.has(k))
        .collect();
    if present.len() > 1 {
        warnings.push(format!(
            "several DCS sections ({}): using `{}`",
            present.join(", "),
            present[0]
        ));
    }
    let Some(kind) = present.first() else {
        return Ok(None);
    };
    let s = root.section(kind)?;
    Ok(Some(match *kind {
        "etcd3" => DcsConfig::Etcd3(parse_etcd(&s, warnings)?),
        // etcd's v2 API, as Patroni's `etcd:` (etcd 3.4 serves it with `--enable-v2`).
        "etcd" => DcsConfig::Etcd(parse_etcd(&s, warnings)?),
        "consul" => {
            s.warn_unknown(
                &[
                    "host",
                    "url",
                    "port",
                    "scheme",
                    "token",
                    "verify",
                    "cacert",
                    "cert",
                    "key",
                    "dc",
                    "consistency",
                    "checks",
                    "register_service",
                    "service_tags",
                    "service_check_interval",
                    "service_check_tls_server_name",
                ],
                warnings,
            );
            s.warn_not_acted_on(
                &[
                    ("checks", "hactl's sessions carry no extra health checks"),
                    (
                        "register_service",
                        "hactl registers no Consul service (no <scope>.service.consul DNS name)",
                    ),
                    ("service_tags", "no service is registered"),
                    ("service_check_interval", "no service is registered"),
                    ("service_check_tls_server_name", "no service is registered"),
                ],
                warnings,
            );
            let mut scheme = s.string("scheme")?.unwrap_or_else(|| "http".into());
            let mut host = s.string("host")?;
            if host.is_none() {
                if let Some(url) = s.string("url")? {
                    if let Some((sch, rest)) = url.split_once("://") {
                        scheme = sch.to_string();
                        host = Some(rest.trim_end_matches('/').to_string());
                    }
                }
            }
            let mut host = host.unwrap_or_else(|| "127.0.0.1:8500".into());
            if !host.contains(':') {
                let port = s.u64("port")?.unwrap_or(8500);
                host = format!("{host}:{port}");
            }
            HostPort::parse(&s.key("host"), &host)?;
            check_consul_security(&s, &scheme)?;
            DcsConfig::Consul(ConsulConfig {
                host,
                scheme,
                token: s.string("token")?,
                dc: s.string("dc")?,
                consistency: s.string("consistency")?,
                checks: s.string_list("checks")?,
                register_service: s.bool("register_service")?.unwrap_or(false),
                verify: s.bool("verify")?,
                cacert: s.string("cacert")?,
                cert: s.string("cert")?,
                key: s.string("key")?,
            })
        }
        _ => {
            s.warn_unknown(
                &[
                    "hosts",
                    "use_ssl",
                    "cacert",
                    "cert",
                    "key",
                    "key_password",
                    "verify",
                    "set_acls",
                    "auth_data",
                ],
                warnings,
            );
            let hosts = s.string_list("hosts")?.unwrap_or_default();
            if hosts.is_empty() {
                return Err(ConfigError::Missing {
                    key: s.key("hosts"),
                });
            }
            DcsConfig::Zookeeper(parse_zookeeper_security(&s, hosts)?)
        }
    }))
}

#[cfg(test)]
#[path = "dcs_security_tests.rs"]
mod security_tests;
