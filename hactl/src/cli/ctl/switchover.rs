//! `switchover` and `failover`: one flow for both (patronictl's `_do_failover_or_switchover`): check the leader and
//! the candidate against the DCS, confirm, ask the leader (or, with no leader, the candidate) over REST, and fall
//! back to writing the `failover` key when no member answers.

use ha_core::model::Failover;
use serde_json::{json, Map, Value};

use super::{timestamp, CliError, Ctl};

impl Ctl<'_> {
    pub(super) async fn switchover(
        &mut self,
        leader: Option<String>,
        candidate: Option<String>,
        scheduled: Option<String>,
        force: bool,
        action: &str,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let current = cluster.leader_name().map(str::to_string);
        let leader = if action == "switchover" {
            let current = current
                .clone()
                .ok_or_else(|| CliError::Failed(format!("This cluster has no leader")))?;
            match leader {
                Some(l) if l != current => {
                    return Err(CliError::Failed(format!(
                        "Member {l} is not the leader of cluster {}",
                        self.scope
                    )))
                }
                _ => Some(current),
            }
        } else {
            None
        };
        let others: Vec<String> = cluster
            .members
            .iter()
            .filter(|m| Some(m.name.as_str()) != current.as_deref())
            .map(|m| m.name.clone())
            .collect();
        let candidate = match candidate {
            Some(c) => Some(c),
            None if force => None,
            None => {
                let answer = self.prompt(&format!("Candidate {others:?}"), "")?;
                (!answer.is_empty()).then_some(answer)
            }
        };
        if action == "failover" && candidate.is_none() {
            return Err(CliError::Failed(
                "Failover could be performed only to a specific candidate".into(),
            ));
        }
        if let Some(c) = &candidate {
            if !others.contains(c) {
                if Some(c) == current.as_ref() {
                    return Err(CliError::Failed(format!(
                        "Member {c} is already the leader of cluster {}",
                        self.scope
                    )));
                }
                return Err(CliError::Failed(format!(
                    "Member {c} does not exist in cluster {} or is tagged as nofailover",
                    self.scope
                )));
            }
        }
        let scheduled_at = match scheduled.as_deref() {
            None | Some("now") => None,
            Some(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|_| CliError::Usage(format!("Unable to parse scheduled timestamp ({s}). It should be in ISO 8601 format with a time zone")))?
                    .to_rfc3339(),
            ),
        };
        if !force {
            let q = match &current {
                Some(l) => format!(
                    "Are you sure you want to {action} cluster {}, demoting current leader {l}?",
                    self.scope
                ),
                None => format!("Are you sure you want to {action} cluster {}?", self.scope),
            };
            self.confirm(&q)?;
        }
        let mut body = Map::new();
        if let Some(l) = &leader {
            body.insert("leader".into(), json!(l));
        }
        if let Some(c) = &candidate {
            body.insert("candidate".into(), json!(c));
        }
        if let Some(s) = &scheduled_at {
            body.insert("scheduled_at".into(), json!(s));
        }
        // The leader runs a switchover; with no leader the candidate takes the request.
        let target_name = current
            .clone()
            .or_else(|| candidate.clone())
            .unwrap_or_default();
        let target = cluster.member(&target_name).cloned();
        let reply = match &target {
            Some(m) => {
                self.request(m, reqwest::Method::POST, action, Some(&Value::Object(body)))
                    .await
            }
            None => Err(format!("member {target_name} is not in the DCS")),
        };
        match reply {
            Ok(r) if r.status / 100 == 2 => {
                let line = format!("{} {}", timestamp(), r.body);
                self.say(line)?;
            }
            Ok(r) => {
                return Err(CliError::Failed(format!(
                    "{} failed, details: {}, {}",
                    title_case(action),
                    r.status,
                    r.body
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "REST request failed");
                let line = format!(
                    "{} Could not {action} using Patroni api, falling back to DCS",
                    timestamp()
                );
                self.say(line)?;
                let f = Failover {
                    leader,
                    member: candidate,
                    scheduled_at,
                    ..Default::default()
                };
                self.dcs.set_failover(&f, None).await?;
            }
        }
        let c = self.load().await?;
        self.output_members(&c, false, false)
    }
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}
