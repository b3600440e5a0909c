//! `log`: every key of Patroni's section, checked at load. What hactl cannot act on (Python logger names,
//! tracebacks, the logging queue) is named in a warning.

use std::collections::BTreeMap;

use serde_json::Value;

use super::schema::{LogFormat, LogType};
use super::value::Section;
use super::{opt_path, ConfigError, LogConfig};

/// The crates whose log lines hactl writes: the targets `log.loggers` can name.
pub const LOG_TARGETS: &[&str] = &[
    "ha_core",
    "dcs_etcd",
    "dcs_consul",
    "dcs_zk",
    "pg_control",
    "hactl",
];

const LEVELS: &str = "one of DEBUG, INFO, WARNING, ERROR, CRITICAL";

fn check_level(key: &str, level: &str) -> Result<(), ConfigError> {
    if matches!(
        level.to_ascii_uppercase().as_str(),
        "DEBUG" | "INFO" | "WARNING" | "WARN" | "ERROR" | "CRITICAL" | "FATAL" | "NOTSET"
    ) {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key: key.into(),
            expected: LEVELS.into(),
            got: format!("{level:?}"),
        })
    }
}

/// A scalar as text (a static field's value, a logger's level).
fn scalar(key: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(ConfigError::invalid(key, "a string", other)),
    }
}

/// A mapping of scalars; Patroni's environment variables give these as YAML text (`{a: b}`).
fn string_map(s: &Section, key: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let path = s.key(key);
    let value = match s.get(key) {
        None => return Ok(BTreeMap::new()),
        Some(Value::String(text)) => serde_norway::from_str::<serde_norway::Value>(text)
            .map(super::value::yaml_to_json)
            .map_err(|_| ConfigError::invalid(&path, "a mapping", &Value::String(text.clone())))?,
        Some(v) => v.clone(),
    };
    match value {
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), scalar(&format!("{path}.{k}"), v)?)))
            .collect(),
        Value::Null => Ok(BTreeMap::new()),
        other => Err(ConfigError::invalid(&path, "a mapping", &other)),
    }
}

fn parse_format(s: &Section) -> Result<Option<LogFormat>, ConfigError> {
    let key = s.key("format");
    Ok(match s.get("format") {
        None => None,
        Some(Value::String(t)) => Some(LogFormat::Text(t.clone())),
        Some(Value::Array(items)) => Some(LogFormat::Fields(
            items
                .iter()
                .map(|i| match i {
                    Value::String(f) => Ok((f.clone(), f.clone())),
                    // Patroni's JSON format list may rename a field: `- {levelname: level}`.
                    Value::Object(m) if m.len() == 1 => {
                        let (f, to) = m.iter().next().expect("one entry");
                        Ok((f.clone(), scalar(&key, to)?))
                    }
                    other => Err(ConfigError::invalid(&key, "field names", other)),
                })
                .collect::<Result<_, _>>()?,
        )),
        Some(Value::Object(m)) => Some(LogFormat::Fields(
            m.iter()
                .map(|(f, to)| Ok((f.clone(), scalar(&key, to)?)))
                .collect::<Result<_, ConfigError>>()?,
        )),
        Some(other) => {
            return Err(ConfigError::invalid(
                &key,
                "a format string or a list of fields",
                other,
            ))
        }
    })
}

pub(super) fn parse_log(s: &Section, warnings: &mut Vec<String>) -> Result<LogConfig, ConfigError> {
    s.warn_unknown(
        &[
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
        ],
        warnings,
    );
    let defaults = LogConfig::default();
    let level = s.string("level")?.unwrap_or_else(|| "INFO".into());
    check_level(&s.key("level"), &level)?;
    let log_type = match s
        .string("type")?
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("plain") => LogType::Plain,
        Some("json") => LogType::Json,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: s.key("type"),
                expected: "plain or json".into(),
                got: format!("{other:?}"),
            })
        }
    };
    let format = parse_format(s)?;
    if log_type == LogType::Plain && matches!(format, Some(LogFormat::Fields(_))) {
        return Err(ConfigError::Invalid {
            key: s.key("format"),
            expected: "a format string (a list of fields needs `log.type: json`)".into(),
            got: "a list".into(),
        });
    }
    if let Some(t) = s.string("traceback_level")? {
        check_level(&s.key("traceback_level"), &t)?;
        warnings.push(format!(
            "`{}` has no effect: hactl's errors carry their causes in the message, it writes no tracebacks",
            s.key("traceback_level")
        ));
    }
    if s.has("max_queue_size") {
        s.u64("max_queue_size")?;
        warnings.push(format!(
            "`{}` has no effect: hactl writes log lines as they happen, without Patroni's queue",
            s.key("max_queue_size")
        ));
    }
    let mut loggers = BTreeMap::new();
    for (name, lvl) in string_map(s, "loggers")? {
        let key = format!("{}.{name}", s.key("loggers"));
        check_level(&key, &lvl)?;
        let crate_name = name.split("::").next().unwrap_or_default();
        if LOG_TARGETS.contains(&crate_name) {
            loggers.insert(name, lvl);
        } else {
            warnings.push(format!(
                "`{key}` ignored: not one of hactl's log targets ({}); Python logger names do not apply",
                LOG_TARGETS.join(", ")
            ));
        }
    }
    let mode = match s.get("mode") {
        None => None,
        // YAML reads `0600` as the decimal 600 and `0o600` as 384: Patroni takes the integer as given.
        Some(v) => Some(
            match v {
                Value::Number(n) => n.as_u64().filter(|m| *m <= 0o7777).map(|m| m as u32),
                Value::String(t) => u32::from_str_radix(t.trim_start_matches("0o"), 8).ok(),
                _ => None,
            }
            .ok_or_else(|| {
                ConfigError::invalid(&s.key("mode"), "file permissions, e.g. 0o600", v)
            })?,
        ),
    };
    Ok(LogConfig {
        level,
        log_type,
        format,
        dateformat: s.string("dateformat")?,
        static_fields: string_map(s, "static_fields")?,
        dir: opt_path(s, "dir")?,
        mode,
        file_size: s.u64("file_size")?.unwrap_or(defaults.file_size).max(1),
        file_num: s
            .u64("file_num")?
            .map(|n| n.min(u32::MAX as u64) as u32)
            .unwrap_or(defaults.file_num),
        loggers,
        deduplicate_heartbeat_logs: s.bool("deduplicate_heartbeat_logs")?.unwrap_or(false),
    })
}
