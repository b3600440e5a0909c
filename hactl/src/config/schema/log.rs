//! `log`: the format, destination and levels of the daemon's log.

#[allow(unused_imports)]
use super::*;

/// `log.type`: Patroni's plain text lines, or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogType {
    #[default]
    Plain,
    Json,
}

/// `log.format`: a Python logging format string (`%(asctime)s %(levelname)s: %(message)s`), or for JSON logs the
/// fields to write, as a list or as a mapping from field to the name it is written under.
#[derive(Debug, Clone, PartialEq)]
pub enum LogFormat {
    Text(String),
    Fields(Vec<(String, String)>),
}

/// `log`: Patroni's keys, every one acted on or warned about at load.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Patroni's level names: DEBUG, INFO, WARNING, ERROR, CRITICAL.
    pub level: String,
    pub log_type: LogType,
    /// `None`: Patroni's default, `%(asctime)s %(levelname)s: %(message)s`.
    pub format: Option<LogFormat>,
    /// strftime format of `%(asctime)s`; `None`: Python's `2026-12-01 10:00:00,123`.
    pub dateformat: Option<String>,
    /// Written into every JSON line.
    pub static_fields: BTreeMap<String, String>,
    /// Log to `dir/patroni.log` (rotated) instead of standard error.
    pub dir: Option<PathBuf>,
    /// Permissions of the log file (`mode: 0o600`).
    pub mode: Option<u32>,
    /// Rotate after this many bytes (Patroni: 25000000).
    pub file_size: u64,
    /// Rotated files kept (Patroni: 4).
    pub file_num: u32,
    /// Per-target levels (`loggers: {dcs_etcd: DEBUG}`): hactl's crates are its targets.
    pub loggers: BTreeMap<String, String>,
    /// Log a repeated "no action" heartbeat line once, not every loop.
    pub deduplicate_heartbeat_logs: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "INFO".into(),
            log_type: LogType::Plain,
            format: None,
            dateformat: None,
            static_fields: BTreeMap::new(),
            dir: None,
            mode: None,
            file_size: 25_000_000,
            file_num: 4,
            loggers: BTreeMap::new(),
            deduplicate_heartbeat_logs: false,
        }
    }
}

impl LogConfig {
    /// The `tracing` filter: Patroni's level name for everything, then each `loggers` entry for its target.
    pub fn tracing_filter(&self) -> String {
        let mut directives = vec![tracing_level(&self.level).to_string()];
        directives.extend(
            self.loggers
                .iter()
                .map(|(target, level)| format!("{target}={}", tracing_level(level))),
        );
        directives.join(",")
    }
}

/// `tracing`'s level for one of Patroni's level names.
pub fn tracing_level(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "DEBUG" | "NOTSET" => "debug",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        _ => "info",
    }
}
