//! `reload`: ask the selected members to reload their configuration (`POST /reload`).

use super::{CliError, Ctl};
use crate::cli::Targets;

impl Ctl<'_> {
    pub(super) async fn reload(
        &mut self,
        t: &Targets,
        role: Option<&str>,
        force: bool,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let members = self.select_members(&cluster, t, role)?;
        if !force {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            self.confirm(&format!(
                "Are you sure you want to reload members {}?",
                names.join(", ")
            ))?;
        }
        let loop_wait = cluster.global_config().timing().loop_wait_ms / 1000;
        let mut failed = 0;
        for m in &members {
            let line = match self.request(m, reqwest::Method::POST, "reload", None).await {
                Ok(r) if r.status == 200 => format!("No changes to apply on member {}", m.name),
                Ok(r) if r.status == 202 => format!(
                    "Reload request received for member {} and will be processed within {loop_wait} seconds",
                    m.name
                ),
                Ok(r) => {
                    failed += 1;
                    format!("Failed: reload for member {}, status code={}, ({})", m.name, r.status, r.body)
                }
                Err(e) => {
                    failed += 1;
                    format!("Failed: reload for member {}, ({e})", m.name)
                }
            };
            self.say(line)?;
        }
        if failed > 0 {
            return Err(CliError::Failed(format!(
                "reload failed on {failed} member(s)"
            )));
        }
        Ok(())
    }
}
