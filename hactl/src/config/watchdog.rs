//! `watchdog`: Patroni's keys (`mode`, `device`, `safety_margin`, `driver`). hactl drives the device itself
//! ([`crate::daemon::watchdog`]) and keeps its process fencer beside it.

use std::path::PathBuf;

use serde_json::Value;

use super::value::Section;
use super::ConfigError;

/// `watchdog.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchdogMode {
    Off,
    /// Use the device if it can be opened; the process fencer covers the node either way.
    #[default]
    Automatic,
    /// The device must work: a node that cannot open it refuses to start.
    Required,
}

/// `watchdog.driver`: the Linux device, or Patroni's test harness (a named pipe taking `1`, `V` and
/// `Ctimeout=N` writes instead of ioctls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchdogDriver {
    #[default]
    Linux,
    Testing,
}

/// `watchdog`.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchdogConfig {
    pub mode: WatchdogMode,
    pub device: PathBuf,
    /// Seconds between the device's timeout and the ttl (Patroni: 5; -1: half the ttl).
    pub safety_margin: f64,
    pub driver: WatchdogDriver,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            // Without a `watchdog` section Patroni uses `automatic`; hactl's fencer covers the node, and the
            // device is used only when configured.
            mode: WatchdogMode::Off,
            device: PathBuf::from("/dev/watchdog"),
            safety_margin: 5.0,
            driver: WatchdogDriver::Linux,
        }
    }
}

impl WatchdogConfig {
    /// The device's timeout for `ttl_s`, as Patroni computes it: ttl − safety_margin (ttl/2 with −1), whole seconds.
    pub fn timeout_s(&self, ttl_s: f64) -> u32 {
        let t = if self.safety_margin == -1.0 {
            ttl_s / 2.0
        } else {
            ttl_s - self.safety_margin
        };
        t.floor().max(1.0) as u32
    }
}

pub(super) fn parse_watchdog(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<WatchdogConfig, ConfigError> {
    let mut c = WatchdogConfig::default();
    if s.map.is_none() {
        return Ok(c);
    }
    s.warn_unknown(
        &["mode", "device", "safety_margin", "driver", "driver_config"],
        warnings,
    );
    c.mode = match s.get("mode") {
        None | Some(Value::Bool(true)) => WatchdogMode::Automatic,
        Some(Value::Bool(false)) => WatchdogMode::Off,
        Some(Value::String(m)) => match m.to_ascii_lowercase().as_str() {
            "off" | "false" | "no" => WatchdogMode::Off,
            "automatic" | "true" | "yes" | "on" => WatchdogMode::Automatic,
            "required" => WatchdogMode::Required,
            other => {
                return Err(ConfigError::Invalid {
                    key: s.key("mode"),
                    expected: "off, automatic or required".into(),
                    got: other.to_string(),
                })
            }
        },
        Some(other) => {
            return Err(ConfigError::invalid(
                &s.key("mode"),
                "off, automatic or required",
                other,
            ))
        }
    };
    if let Some(d) = s.string("device")? {
        c.device = PathBuf::from(d);
    }
    if let Some(v) = s.get("safety_margin") {
        // -1 (half the ttl) is allowed, so not `Section::f64`, which takes non-negative numbers.
        c.safety_margin = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(t) => t.trim().parse().ok(),
            _ => None,
        }
        .filter(|m| *m == -1.0 || *m >= 0.0)
        .ok_or_else(|| {
            ConfigError::invalid(
                &s.key("safety_margin"),
                "seconds, or -1 for half the ttl",
                v,
            )
        })?;
    }
    c.driver = match s.string("driver")?.as_deref() {
        None | Some("default") | Some("linux") => WatchdogDriver::Linux,
        Some("testing") => WatchdogDriver::Testing,
        Some(other) => {
            return Err(ConfigError::Invalid {
                key: s.key("driver"),
                expected: "default (the Linux device) or testing".into(),
                got: other.to_string(),
            })
        }
    };
    if s.has("driver_config") {
        warnings.push(format!(
            "`{}` is not used by hactl's watchdog drivers",
            s.key("driver_config")
        ));
    }
    Ok(c)
}
