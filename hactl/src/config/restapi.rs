//! `restapi` and `ctl`: the REST API's addresses and credentials, and the credentials the CLI sends to members
//! (the two sections share the `authentication` reader).

use super::env;
use super::value::Section;
use std::path::PathBuf;

use super::{opt_host_port, BasicAuth, ConfigError, CtlConfig, RestApiConfig};
use crate::tls::{ServerTlsSettings, VerifyClient};

fn parse_auth(s: &Section, warnings: &mut Vec<String>) -> Result<Option<BasicAuth>, ConfigError> {
    let a = s.section("authentication")?;
    if a.map.is_none() {
        return Ok(None);
    }
    a.warn_unknown(&["username", "password"], warnings);
    Ok(Some(BasicAuth {
        username: a.required_string("username")?,
        password: a.required_string("password")?,
    }))
}

pub(super) fn parse_restapi(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<RestApiConfig, ConfigError> {
    let known: Vec<&str> = env::RESTAPI_PARAMS
        .iter()
        .copied()
        .chain(["authentication"])
        .collect();
    s.warn_unknown(&known, warnings);
    let tls = parse_server_tls(s)?;
    let mut extra_headers = headers(s, "http_extra_headers")?;
    if tls.is_some() {
        extra_headers.extend(headers(s, "https_extra_headers")?);
    }
    if s.has("request_queue_size") {
        warnings.push(format!(
            "`{}`: hactl serves each connection on its own task and has no accept queue to size; ignored",
            s.key("request_queue_size")
        ));
    }
    Ok(RestApiConfig {
        listen: opt_host_port(s, "listen")?,
        connect_address: opt_host_port(s, "connect_address")?,
        authentication: parse_auth(s, warnings)?,
        tls,
        allowlist: s.string_list("allowlist")?.unwrap_or_default(),
        allowlist_include_members: s.bool("allowlist_include_members")?.unwrap_or(false),
        extra_headers,
    })
}

/// `certfile` turns HTTPS on; every other TLS key without it is refused (it would otherwise be silently plain
/// HTTP, the opposite of what the operator asked for).
fn parse_server_tls(s: &Section) -> Result<Option<ServerTlsSettings>, ConfigError> {
    let verify_client = match s.string("verify_client")? {
        None => VerifyClient::None,
        Some(v) => VerifyClient::parse(&v).ok_or_else(|| ConfigError::Invalid {
            key: s.key("verify_client"),
            expected: "none, optional or required".into(),
            got: v,
        })?,
    };
    let Some(certfile) = s.string("certfile")?.filter(|c| !c.is_empty()) else {
        for k in ["keyfile", "keyfile_password", "cafile", "ciphers"] {
            if s.has(k) {
                return Err(ConfigError::Invalid {
                    key: s.key(k),
                    expected: format!(
                        "`{}` beside it (HTTPS is on only with a certificate)",
                        s.key("certfile")
                    ),
                    got: "no certfile".into(),
                });
            }
        }
        if verify_client != VerifyClient::None {
            return Err(ConfigError::Invalid {
                key: s.key("verify_client"),
                expected: format!(
                    "`{}` beside it: client certificates need HTTPS",
                    s.key("certfile")
                ),
                got: "no certfile".into(),
            });
        }
        return Ok(None);
    };
    Ok(Some(ServerTlsSettings {
        certfile: PathBuf::from(certfile),
        keyfile: s
            .string("keyfile")?
            .filter(|k| !k.is_empty())
            .map(PathBuf::from),
        keyfile_password: s.string("keyfile_password")?,
        cafile: s
            .string("cafile")?
            .filter(|k| !k.is_empty())
            .map(PathBuf::from),
        verify_client,
        ciphers: s.string("ciphers")?,
    }))
}

/// A `{name: value}` map of response headers.
fn headers(s: &Section, key: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(v) = s.get(key) else {
        return Ok(Vec::new());
    };
    let Some(map) = v.as_object() else {
        return Err(ConfigError::Invalid {
            key: s.key(key),
            expected: "a map of header names to values".into(),
            got: v.to_string(),
        });
    };
    let mut out = Vec::new();
    for (name, value) in map {
        let value = match value {
            serde_json::Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        let valid = axum::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && axum::http::HeaderValue::from_str(&value).is_ok();
        if !valid {
            return Err(ConfigError::Invalid {
                key: format!("{}.{name}", s.key(key)),
                expected: "a valid HTTP header".into(),
                got: value,
            });
        }
        out.push((name.clone(), value));
    }
    Ok(out)
}

pub(super) fn parse_ctl(s: &Section, warnings: &mut Vec<String>) -> Result<CtlConfig, ConfigError> {
    s.warn_unknown(
        &[
            "authentication",
            "insecure",
            "cacert",
            "certfile",
            "keyfile",
            "keyfile_password",
        ],
        warnings,
    );
    let path = |k: &str| -> Result<Option<PathBuf>, ConfigError> {
        Ok(s.string(k)?.filter(|v| !v.is_empty()).map(PathBuf::from))
    };
    Ok(CtlConfig {
        authentication: parse_auth(s, warnings)?,
        insecure: s.bool("insecure")?.unwrap_or(false),
        cacert: path("cacert")?,
        certfile: path("certfile")?,
        keyfile: path("keyfile")?,
        keyfile_password: s.string("keyfile_password")?,
    })
}
