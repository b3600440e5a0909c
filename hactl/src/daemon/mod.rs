//! The reference daemon: composes the DCS named in the config, pg-control, ha-core's driver, the REST API and the
//! callbacks, and maps signals onto the driver's shutdown and a config reload.

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("not implemented yet")]
    NotImplemented,
}

/// Runs a node until SIGTERM/SIGINT.
pub async fn run(config: crate::config::Config) -> Result<(), DaemonError> {
    config.validate_for_daemon()?;
    Err(DaemonError::NotImplemented)
}
