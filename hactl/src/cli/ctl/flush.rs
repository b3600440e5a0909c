//! `flush`: cancel scheduled restarts (`DELETE /restart` on each member) or a scheduled switchover (through the
//! leader, else by clearing the `failover` key).

use ha_core::model::Failover;

use super::{CliError, Ctl};
use crate::cli::Targets;

impl Ctl<'_> {
    pub(super) async fn flush(
        &mut self,
        t: &Targets,
        role: Option<&str>,
        force: bool,
    ) -> Result<(), CliError> {
        let mut names = self.member_names(t);
        let target = names.pop().unwrap_or_default();
        let cluster = self.load().await?;
        match target.as_str() {
            "restart" => {
                let members = self.select_members(&cluster, &Targets { names }, role)?;
                if !force {
                    self.confirm("Are you sure you want to flush scheduled restarts?")?;
                }
                for m in &members {
                    if m.data.extra.get("scheduled_restart").is_none() {
                        self.say(format!("No scheduled restart for member {}", m.name))?;
                        continue;
                    }
                    let line = match self
                        .request(m, reqwest::Method::DELETE, "restart", None)
                        .await
                    {
                        Ok(r) if r.status == 200 => {
                            format!("Success: flush scheduled restart for member {}", m.name)
                        }
                        Ok(r) if r.status == 404 => {
                            format!("Success: no scheduled restarts for member {}", m.name)
                        }
                        Ok(r) => format!(
                            "Failed: flush scheduled restart for member {}, status code={}, ({})",
                            m.name, r.status, r.body
                        ),
                        Err(e) => format!(
                            "Failed: flush scheduled restart for member {}, ({e})",
                            m.name
                        ),
                    };
                    self.say(line)?;
                }
                Ok(())
            }
            "switchover" => {
                let Some(f) = cluster
                    .pending_failover()
                    .filter(|f| f.value.scheduled_at.is_some())
                else {
                    return self.say("No pending scheduled switchover");
                };
                let version = f.version;
                let via_rest = match cluster.leader_member() {
                    Some(m) => self
                        .request(m, reqwest::Method::DELETE, "switchover", None)
                        .await
                        .ok(),
                    None => None,
                };
                match via_rest {
                    Some(r) if r.status == 200 || r.status == 404 => {
                        self.say(format!("Success: {}", r.body))
                    }
                    _ => {
                        self.dcs
                            .set_failover(&Failover::default(), Some(version))
                            .await?;
                        self.say("Success: scheduled switchover deleted")
                    }
                }
            }
            other => Err(CliError::Usage(format!(
                "flush takes `restart` or `switchover`, not {other:?}"
            ))),
        }
    }
}
