//! The DCS section, `etcd3`, `etcd`, `consul` or `zookeeper`: Patroni uses the first one it finds in this order,
//! and so does hactl (with a warning naming the others).

use super::value::Section;
use super::{ConfigError, ConsulConfig, DcsConfig, EtcdConfig, HostPort, ZookeeperConfig};

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
    if hosts.is_empty() && !s.has("srv") && !s.has("proxy") {
        return Err(ConfigError::Missing {
            key: format!("{} (host, hosts or url)", s.path),
        });
    }
    for (i, h) in hosts.iter().enumerate() {
        HostPort::parse(&format!("{}[{i}]", s.key("hosts")), h)?;
    }
    Ok(EtcdConfig {
        hosts,
        protocol,
        username: s.string("username")?,
        password: s.string("password")?,
        cacert: s.string("cacert")?,
        cert: s.string("cert")?,
        key: s.string("key")?,
    })
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
        "etcd" => {
            warnings.push(
                "`etcd` (API v2): hactl talks etcd's v3 API to the same endpoints; the keys are not shared with v2 clients"
                    .into(),
            );
            DcsConfig::Etcd(parse_etcd(&s, warnings)?)
        }
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
            DcsConfig::Zookeeper(ZookeeperConfig {
                hosts,
                use_ssl: s.bool("use_ssl")?.unwrap_or(false),
            })
        }
    }))
}
