//! `restapi` and `ctl`: the REST API's addresses and credentials, and the credentials the CLI sends to members
//! (the two sections share the `authentication` reader).

use super::env;
use super::value::Section;
use super::{opt_host_port, BasicAuth, ConfigError, CtlConfig, RestApiConfig};

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
    if s.has("certfile") {
        warnings.push(format!(
            "`{}`: hactl's REST API serves plain HTTP only (no TLS yet); members publish http:// API URLs",
            s.key("certfile")
        ));
    }
    for k in ["allowlist", "allowlist_include_members", "verify_client"] {
        if s.has(k) {
            warnings.push(format!("`{}` is not enforced by hactl yet", s.key(k)));
        }
    }
    Ok(RestApiConfig {
        listen: opt_host_port(s, "listen")?,
        connect_address: opt_host_port(s, "connect_address")?,
        authentication: parse_auth(s, warnings)?,
        certfile: s.string("certfile")?,
        keyfile: s.string("keyfile")?,
    })
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
    Ok(CtlConfig {
        authentication: parse_auth(s, warnings)?,
        insecure: s.bool("insecure")?.unwrap_or(false),
    })
}
