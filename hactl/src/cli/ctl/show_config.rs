//! `show-config`: print the cluster-wide configuration (the DCS `config` key) as YAML, or JSON with `-f json`.

use serde_json::json;

use super::{to_yaml, CliError, Ctl};
use crate::cli::OutputFormat;

impl Ctl<'_> {
    pub(super) async fn show_config(&mut self) -> Result<(), CliError> {
        let c = self.load().await?;
        let cfg = c.config.ok_or_else(|| {
            CliError::Failed(format!(
                "The config key does not exist in the cluster {}",
                self.scope
            ))
        })?;
        let v = serde_json::to_value(&cfg.value).unwrap_or(json!({}));
        let text = match self.format {
            OutputFormat::Json => serde_json::to_string_pretty(&v).unwrap_or_default(),
            _ => to_yaml(&v),
        };
        write!(self.out, "{text}")?;
        if !text.ends_with('\n') {
            writeln!(self.out)?;
        }
        Ok(())
    }
}
