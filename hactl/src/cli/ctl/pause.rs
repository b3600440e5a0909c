//! `pause` and `resume`: switch maintenance mode through the first reachable member's `PATCH /config` (leader
//! first), and with `--wait` poll until every member reports it.

use ha_core::model::Member;
use serde_json::{json, Value};

use super::{CliError, Ctl};

impl Ctl<'_> {
    pub(super) async fn toggle_pause(&mut self, pause: bool, wait: bool) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let paused = cluster.global_config().is_paused();
        if pause && paused {
            return Err(CliError::Failed("Cluster is already paused".into()));
        }
        if !pause && !paused {
            return Err(CliError::Failed("Cluster is not paused".into()));
        }
        let leader = cluster.leader_name();
        let mut members: Vec<&Member> = cluster
            .members
            .iter()
            .filter(|m| m.data.api_url.is_some())
            .collect();
        members.sort_by_key(|m| (Some(m.name.as_str()) != leader, m.name.clone()));
        let body = json!({ "pause": if pause { json!(true) } else { Value::Null } });
        let word = if pause { "paused" } else { "resumed" };
        for m in members {
            match self
                .request(m, reqwest::Method::PATCH, "config", Some(&body))
                .await
            {
                Ok(r) if r.status == 200 => {
                    if wait {
                        self.say(format!(
                            "'{}' request sent, waiting until it is recognized by all nodes",
                            if pause { "pause" } else { "resume" }
                        ))?;
                        for _ in 0..600 {
                            tokio::time::sleep(self.poll_interval).await;
                            let c = self.load().await?;
                            if c.members
                                .iter()
                                .all(|m| (m.data.pause == Some(true)) == pause)
                            {
                                break;
                            }
                        }
                    }
                    return self.say(format!("Success: cluster management is {word}"));
                }
                Ok(r) => {
                    return Err(CliError::Failed(format!(
                        "Failed: {} on member {}, status code={}, ({})",
                        if pause { "pause" } else { "resume" },
                        m.name,
                        r.status,
                        r.body
                    )))
                }
                Err(e) => {
                    tracing::warn!(member = %m.name, error = %e, "member not reachable; trying the next")
                }
            }
        }
        Err(CliError::Failed(
            "Can not find accessible cluster member".into(),
        ))
    }
}
