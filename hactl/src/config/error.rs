//! Why a configuration was refused: one error type for every step of loading (reading the file, the YAML, the
//! environment, each section, the timing check), each variant naming the key or variable to fix.

use std::path::PathBuf;

/// Why a configuration was refused. Each variant names the key (or variable) to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not valid YAML: {message}")]
    Yaml { origin: String, message: String },
    #[error("`{key}` is required")]
    Missing { key: String },
    #[error("`{key}`: expected {expected}, got {got}")]
    Invalid {
        key: String,
        expected: String,
        got: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("no DCS configured: add one of `etcd3`, `etcd`, `consul`, `zookeeper` (or PATRONI_ETCD3_HOSTS...)")]
    NoDcs,
    #[error("`bootstrap.dcs`: {0}")]
    Timing(#[from] ha_core::model::ConfigError),
}
