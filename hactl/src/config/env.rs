//! `PATRONI_*` environment overrides, as Patroni's `Config._build_environment_configuration` reads them. The result is
//! a config tree deep-merged over the file, so the environment always wins. Deployments often configure the DCS only
//! this way (`PATRONI_ETCD3_HOSTS="'h1:2379','h2:2379'"`), so the same variable names and list syntax are accepted.
//!
//! Unlike Patroni, the variables are not removed from the process environment: hactl never runs untrusted children
//! with its environment except callbacks, and callbacks in Patroni do not see them either only by accident of order.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::value::{parse_bool, yaml_to_json};
use super::ConfigError;

const PREFIX: &str = "PATRONI_";

/// `restapi` keys settable as `PATRONI_RESTAPI_<KEY>`: every known `restapi` key but `authentication`.
pub(crate) const RESTAPI_PARAMS: &[&str] = &[
    "listen",
    "connect_address",
    "certfile",
    "keyfile",
    "keyfile_password",
    "cafile",
    "ciphers",
    "verify_client",
    "proxy_address",
    "allowlist",
    "allowlist_include_members",
    "http_extra_headers",
    "https_extra_headers",
    "request_queue_size",
    "server_tokens",
];
const CTL_PARAMS: &[&str] = &[
    "insecure",
    "cacert",
    "certfile",
    "keyfile",
    "keyfile_password",
];
const POSTGRESQL_PARAMS: &[&str] = &[
    "listen",
    "connect_address",
    "proxy_address",
    "config_dir",
    "data_dir",
    "pgpass",
    "bin_dir",
];
const LOG_PARAMS: &[&str] = &[
    "type",
    "level",
    "traceback_level",
    "format",
    "dateformat",
    "static_fields",
    "max_queue_size",
    "dir",
    "mode",
    "file_size",
    "file_num",
    "loggers",
    "deduplicate_heartbeat_logs",
];
const PG_BINARIES: &[&str] = &[
    "pg_ctl",
    "initdb",
    "pg_controldata",
    "pg_basebackup",
    "postgres",
    "pg_isready",
    "pg_rewind",
];
/// Patroni's `_AUTH_ALLOWED_PARAMETERS`.
const AUTH_PARAMS: &[&str] = &[
    "username",
    "password",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "gssencmode",
    "channel_binding",
    "sslnegotiation",
];
/// The DCS suffixes of the generic `PATRONI_<DCS>_<SUFFIX>` form.
const DCS_SUFFIXES: &[&str] = &[
    "HOST",
    "HOSTS",
    "PORT",
    "USE_PROXIES",
    "PROTOCOL",
    "SRV",
    "SRV_SUFFIX",
    "URL",
    "PROXY",
    "CACERT",
    "CERT",
    "KEY",
    "VERIFY",
    "TOKEN",
    "CHECKS",
    "DC",
    "CONSISTENCY",
    "REGISTER_SERVICE",
    "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME",
    "SERVICE_TAGS",
    "NAMESPACE",
    "CONTEXT",
    "USE_ENDPOINTS",
    "SCOPE_LABEL",
    "ROLE_LABEL",
    "POD_IP",
    "PORTS",
    "LABELS",
    "BYPASS_API_SERVICE",
    "RETRIABLE_HTTP_CODES",
    "KEY_PASSWORD",
    "USE_SSL",
    "SET_ACLS",
    "GROUP",
    "DATABASE",
    "LEADER_LABEL_VALUE",
    "FOLLOWER_LABEL_VALUE",
    "STANDBY_LEADER_LABEL_VALUE",
    "TMP_ROLE_LABEL",
    "AUTH_DATA",
];

/// The whole-config variable: a YAML document used when no config file is given.
pub const PATRONI_CONFIGURATION: &str = "PATRONI_CONFIGURATION";

/// Patroni's `_parse_list`: `a,b`, `'a','b'`, `[a, b]` or a YAML block list.
fn parse_list(var: &str, value: &str) -> Result<Value, ConfigError> {
    let text = if value.trim().starts_with('-') || value.contains('[') {
        value.to_string()
    } else {
        format!("[{value}]")
    };
    let parsed: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| ConfigError::Env {
            var: var.to_string(),
            message: format!("expected a list (`a,b` or `[a, b]`): {e}"),
        })?;
    match yaml_to_json(parsed) {
        v @ Value::Array(_) => Ok(v),
        other => Err(ConfigError::Env {
            var: var.to_string(),
            message: format!("expected a list, got {other}"),
        }),
    }
}

/// Patroni's `_parse_dict`: `a: 1, b: 2` or `{a: 1}`.
fn parse_dict(var: &str, value: &str) -> Result<Value, ConfigError> {
    let text = if value.trim().starts_with('{') {
        value.to_string()
    } else {
        format!("{{{value}}}")
    };
    let parsed: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| ConfigError::Env {
            var: var.to_string(),
            message: format!("expected a mapping (`a: 1, b: 2`): {e}"),
        })?;
    match yaml_to_json(parsed) {
        v @ Value::Object(_) => Ok(v),
        other => Err(ConfigError::Env {
            var: var.to_string(),
            message: format!("expected a mapping, got {other}"),
        }),
    }
}

fn parse_int(var: &str, value: &str) -> Result<Value, ConfigError> {
    value
        .trim()
        .parse::<i64>()
        .map(Value::from)
        .map_err(|_| ConfigError::Env {
            var: var.to_string(),
            message: format!("expected an integer, got {value:?}"),
        })
}

fn parse_boolean(var: &str, value: &str) -> Result<Value, ConfigError> {
    parse_bool(&Value::String(value.to_string()))
        .map(Value::Bool)
        .ok_or_else(|| ConfigError::Env {
            var: var.to_string(),
            message: format!("expected a boolean, got {value:?}"),
        })
}

fn section<'a>(ret: &'a mut Map<String, Value>, name: &str) -> &'a mut Map<String, Value> {
    let v = ret
        .entry(name.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("just made an object")
}

/// Builds the override tree from `env` (the process environment in production, a map in tests).
pub fn environment_configuration(env: &BTreeMap<String, String>) -> Result<Value, ConfigError> {
    let get = |name: &str| -> Option<&String> {
        env.get(&format!("{PREFIX}{}", name.to_ascii_uppercase()))
            .filter(|v| !v.is_empty())
    };
    let mut ret = Map::new();
    for p in ["name", "namespace", "scope"] {
        if let Some(v) = get(p) {
            ret.insert(p.to_string(), Value::String(v.clone()));
        }
    }
    // Patroni's old names for the log settings.
    for (new, old) in [
        ("level", "loglevel"),
        ("format", "logformat"),
        ("dateformat", "log_datefmt"),
    ] {
        if get(&format!("log_{new}")).is_none() {
            if let Some(v) = get(old) {
                section(&mut ret, "log").insert(new.to_string(), Value::String(v.clone()));
            }
        }
    }
    for (sect, params) in [
        ("restapi", RESTAPI_PARAMS),
        ("ctl", CTL_PARAMS),
        ("postgresql", POSTGRESQL_PARAMS),
        ("log", LOG_PARAMS),
    ] {
        for p in params {
            let var = format!("{PREFIX}{}_{}", sect, p).to_ascii_uppercase();
            let Some(v) = get(&format!("{sect}_{p}")) else {
                continue;
            };
            let value = match (sect, *p) {
                ("restapi", "allowlist_include_members") | ("ctl", "insecure") => {
                    parse_boolean(&var, v)?
                }
                ("restapi", "request_queue_size")
                | ("log", "max_queue_size" | "file_size" | "file_num" | "mode") => {
                    parse_int(&var, v)?
                }
                ("restapi", "allowlist") => parse_list(&var, v)?,
                ("restapi", "http_extra_headers" | "https_extra_headers")
                | ("log", "static_fields" | "loggers") => parse_dict(&var, v)?,
                _ => Value::String(v.clone()),
            };
            section(&mut ret, sect).insert(p.to_string(), value);
        }
    }
    for b in PG_BINARIES {
        if let Some(v) = get(&format!("postgresql_bin_{b}")) {
            let pg = section(&mut ret, "postgresql");
            let names = pg
                .entry("bin_name")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(m) = names.as_object_mut() {
                m.insert(b.to_string(), Value::String(v.clone()));
            }
        }
    }
    let auth = |name: &str, params: &[&str]| -> Map<String, Value> {
        let mut m = Map::new();
        for p in params {
            if let Some(v) = get(&format!("{name}_{p}")) {
                m.insert(p.to_string(), Value::String(v.clone()));
            }
        }
        m
    };
    for sect in ["ctl", "restapi"] {
        let a = auth(sect, &AUTH_PARAMS[..2]);
        if !a.is_empty() {
            section(&mut ret, sect).insert("authentication".into(), Value::Object(a));
        }
    }
    let mut authentication = Map::new();
    for user in ["replication", "superuser", "rewind"] {
        let a = auth(user, AUTH_PARAMS);
        if !a.is_empty() {
            authentication.insert(user.to_string(), Value::Object(a));
        }
    }
    if !authentication.is_empty() {
        section(&mut ret, "postgresql")
            .insert("authentication".into(), Value::Object(authentication));
    }
    // The generic form PATRONI_<DCS>_<SUFFIX>: the first word is the section.
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((name, suffix)) = rest.split_once('_') else {
            continue;
        };
        if name.is_empty() || !DCS_SUFFIXES.contains(&suffix) {
            continue;
        }
        // Sections handled above share suffixes (PATRONI_RESTAPI_KEYFILE is not a DCS key, but
        // PATRONI_POSTGRESQL_... never reaches here with a DCS suffix except by accident): skip them.
        if matches!(
            name,
            "RESTAPI" | "CTL" | "POSTGRESQL" | "LOG" | "REPLICATION" | "SUPERUSER" | "REWIND"
        ) {
            continue;
        }
        let v = match suffix {
            "PORT" => parse_int(var, value)?,
            "HOSTS" | "PORTS" | "CHECKS" | "SERVICE_TAGS" | "RETRIABLE_HTTP_CODES" => {
                parse_list(var, value)?
            }
            "LABELS" | "SET_ACLS" | "AUTH_DATA" => parse_dict(var, value)?,
            "USE_PROXIES" | "REGISTER_SERVICE" | "USE_ENDPOINTS" | "BYPASS_API_SERVICE"
            | "VERIFY" => parse_boolean(var, value)?,
            _ => Value::String(value.clone()),
        };
        section(&mut ret, &name.to_ascii_lowercase()).insert(suffix.to_ascii_lowercase(), v);
    }
    for dcs in ["etcd", "etcd3"] {
        if ret.contains_key(dcs) {
            let a = auth(dcs, &AUTH_PARAMS[..2]);
            section(&mut ret, dcs).extend(a);
        }
    }
    Ok(Value::Object(ret))
}
