//! The daemon's logging, from Patroni's `log` section: Patroni's line format by default (`%(asctime)s
//! %(levelname)s: %(message)s`), any Python format string, JSON lines (`type: json`) with hactl's structured
//! fields as keys, per-crate levels (`loggers`), and a size-rotated `patroni.log` in `dir`. `RUST_LOG`, when set,
//! replaces the levels.
//!
//! - `format`: the Python format parser and the `tracing` event formatter.
//! - `file`: the rotated log file.

pub mod file;
pub mod format;

use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat, LogType};
use format::{PatroniFormat, PyFormat, DEFAULT_FORMAT};

/// The event formatter for a `log` section.
pub fn formatter(log: &LogConfig) -> PatroniFormat {
    let text = match &log.format {
        Some(LogFormat::Text(t)) => t.clone(),
        _ => DEFAULT_FORMAT.to_string(),
    };
    let format = PyFormat::parse(&text);
    let json = (log.log_type == LogType::Json).then(|| match &log.format {
        Some(LogFormat::Fields(f)) => f.clone(),
        _ => format
            .fields()
            .into_iter()
            .map(|f| (f.clone(), f))
            .collect(),
    });
    PatroniFormat {
        format,
        json,
        dateformat: log.dateformat.clone(),
        static_fields: log.static_fields.clone(),
    }
}

/// Installs the subscriber for `log` unless one is installed already (a test's, an embedding product's). A log
/// directory that cannot be opened falls back to standard error, saying so there.
pub fn init(log: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log.tracing_filter()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .event_format(formatter(log));
    let file = log.dir.as_ref().map(|d| {
        file::RotatingFile::open(d, log.file_size, log.file_num, log.mode).map_err(|e| (d, e))
    });
    let _ = match file {
        Some(Ok(f)) => builder.with_writer(Mutex::new(f)).try_init(),
        Some(Err((dir, e))) => {
            eprintln!(
                "cannot write logs to `log.dir` {}: {e}; logging to standard error",
                dir.display()
            );
            builder.with_writer(std::io::stderr).try_init()
        }
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}
