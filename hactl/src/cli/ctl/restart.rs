//! `restart`: restart PostgreSQL on the selected members (now, at a scheduled time, or only where a restart is
//! pending) through each member's `POST /restart`.

use serde_json::{json, Map, Value};

use super::{CliError, Ctl};
use crate::cli::Targets;

impl Ctl<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn restart(
        &mut self,
        t: &Targets,
        role: Option<&str>,
        any: bool,
        scheduled: Option<&str>,
        pg_version: Option<&str>,
        pending: bool,
        timeout: Option<&str>,
        force: bool,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let mut members = self.select_members(&cluster, t, role)?;
        if pending {
            members.retain(|m| m.data.pending_restart == Some(true));
            if members.is_empty() {
                return self.say("No members with a pending restart");
            }
        }
        if any {
            // patronictl's `random.choice(members)`: any member, not always the leader listed first.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() as usize);
            let pick = members.swap_remove(nanos % members.len());
            members = vec![pick];
        }
        let mut body = Map::new();
        if let Some(s) = scheduled.filter(|s| *s != "now") {
            body.insert("schedule".into(), json!(s));
        }
        if let Some(v) = pg_version {
            body.insert("postgres_version".into(), json!(v));
        }
        if pending {
            body.insert("restart_pending".into(), json!(true));
        }
        if let Some(t) = timeout {
            body.insert("timeout".into(), json!(t));
        }
        if !force {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            self.confirm(&format!(
                "Are you sure you want to restart members {}?",
                names.join(", ")
            ))?;
        }
        let mut failed = 0;
        for m in &members {
            let reply = self
                .request(
                    m,
                    reqwest::Method::POST,
                    "restart",
                    Some(&Value::Object(body.clone())),
                )
                .await;
            let line = match reply {
                Ok(r) if r.status == 200 => format!("Success: restart on member {}", m.name),
                Ok(r) if r.status == 202 => {
                    format!("Success: restart scheduled on member {}", m.name)
                }
                Ok(r) if r.status == 409 => {
                    failed += 1;
                    format!(
                        "Failed: another restart is already scheduled on member {}",
                        m.name
                    )
                }
                Ok(r) => {
                    failed += 1;
                    format!(
                        "Failed: restart for member {}, status code={}, ({})",
                        m.name, r.status, r.body
                    )
                }
                Err(e) => {
                    failed += 1;
                    format!("Failed: restart for member {}, ({e})", m.name)
                }
            };
            self.say(line)?;
        }
        if failed > 0 {
            return Err(CliError::Failed(format!(
                "restart failed on {failed} member(s)"
            )));
        }
        Ok(())
    }
}
