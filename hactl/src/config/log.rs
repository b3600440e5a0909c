//! `log`: Patroni's level names (checked at load) and where logs go.

use super::value::Section;
use super::{opt_path, ConfigError, LogConfig};

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
    let level = s.string("level")?.unwrap_or_else(|| "INFO".into());
    if !matches!(
        level.to_ascii_uppercase().as_str(),
        "DEBUG" | "INFO" | "WARNING" | "WARN" | "ERROR" | "CRITICAL" | "FATAL" | "NOTSET"
    ) {
        return Err(ConfigError::Invalid {
            key: s.key("level"),
            expected: "one of DEBUG, INFO, WARNING, ERROR, CRITICAL".into(),
            got: format!("{level:?}"),
        });
    }
    Ok(LogConfig {
        level,
        format: s.string("format")?,
        dir: opt_path(s, "dir")?,
    })
}
