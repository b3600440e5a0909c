//! `POST /switchover`, `POST /failover` and `DELETE /switchover`: checks a manual failover request as Patroni does,
//! writes the failover key, and (unless scheduled) polls the DCS until the leader changed or the key is gone.

use axum::response::Response;
use ha_core::model::{Cluster, Failover, SyncMode};
use tracing::{info, warn};

use super::{load, opt_str, parse_schedule, poll_timeout, read_json, Request};
use crate::api::{text, ApiContext};

/// Which manual failover a request asks for: the path it came on (`POST /switchover` or `POST /failover`). The
/// checks differ (a failover needs a candidate and cannot be scheduled, a switchover needs the leader), and every
/// message names the kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManualFailoverKind {
    Switchover,
    Failover,
}

impl ManualFailoverKind {
    /// The word in messages and logs: `switchover` / `failover`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ManualFailoverKind::Switchover => "switchover",
            ManualFailoverKind::Failover => "failover",
        }
    }

    /// The word opening a message: `Switchover` / `Failover`.
    fn title(self) -> &'static str {
        match self {
            ManualFailoverKind::Switchover => "Switchover",
            ManualFailoverKind::Failover => "Failover",
        }
    }

    /// The past tense in "Successfully switched over to ...": `switched` / `failed`.
    fn past(self) -> &'static str {
        match self {
            ManualFailoverKind::Switchover => "switched",
            ManualFailoverKind::Failover => "failed",
        }
    }

    /// The past tense opening a message, as in "Switched over to ... instead of ...": `Switched` / `Failed`.
    fn past_title(self) -> &'static str {
        match self {
            ManualFailoverKind::Switchover => "Switched",
            ManualFailoverKind::Failover => "Failed",
        }
    }
}

impl std::fmt::Display for ManualFailoverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Patroni's `is_failover_possible`, judged from the member keys (Patroni asks each member's REST API; the member
/// keys carry the same running state and tags, refreshed every loop).
fn failover_limitation(
    cluster: &Cluster,
    leader: Option<&str>,
    candidate: Option<&str>,
    action: ManualFailoverKind,
) -> Option<String> {
    let cfg = cluster.global_config();
    if let Some(l) = leader {
        if cluster.leader_name() != Some(l) {
            return Some("leader name does not match".into());
        }
    }
    let sync_list: Vec<String> = cluster
        .sync
        .as_ref()
        .and_then(|s| s.value.sync_standby.clone())
        .map(|l| l.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let members: Vec<&ha_core::model::Member> = if let Some(c) = candidate {
        // In quorum mode any member may be a candidate: it is elected with the quorum's votes.
        if action == ManualFailoverKind::Switchover
            && cfg.sync_mode() == SyncMode::On
            && !sync_list.iter().any(|s| s == c)
        {
            return Some("candidate name does not match with sync_standby".into());
        }
        let m: Vec<_> = cluster.members.iter().filter(|m| m.name == c).collect();
        if m.is_empty() {
            return Some("candidate does not exists".into());
        }
        m
    } else if cfg.sync_mode() == SyncMode::On {
        let m: Vec<_> = cluster
            .members
            .iter()
            .filter(|m| sync_list.contains(&m.name))
            .collect();
        if m.is_empty() {
            return Some(format!(
                "{action} is not possible: can not find sync_standby"
            ));
        }
        m
    } else {
        let m: Vec<_> = cluster
            .members
            .iter()
            .filter(|m| Some(m.name.as_str()) != cluster.leader_name() && m.data.api_url.is_some())
            .collect();
        if m.is_empty() {
            return Some(format!(
                "{action} is not possible: cluster does not have members except leader"
            ));
        }
        m
    };
    if members
        .iter()
        .any(|m| m.is_running() && !m.tags().nofailover())
    {
        None
    } else {
        Some(format!(
            "{action} is not possible: no good candidates have been found"
        ))
    }
}

pub(crate) async fn post_failover(
    ctx: &ApiContext,
    req: &Request,
    action: ManualFailoverKind,
) -> Response {
    let body = match read_json(req, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let leader = opt_str(&body, "leader");
    let candidate = opt_str(&body, "candidate").or_else(|| opt_str(&body, "member"));
    let scheduled_raw = opt_str(&body, "scheduled_at");
    let cluster = match load(ctx).await {
        Ok(c) => c,
        Err(e) => return text(503, format!("DCS is not accessible: {e}")),
    };
    let cfg = cluster.global_config();
    info!(action = action.as_str(), ?leader, ?candidate, scheduled_at = ?scheduled_raw, "received request");
    let mut action = action;
    let mut code = 400;
    let mut data = String::new();
    if action == ManualFailoverKind::Failover && candidate.is_none() {
        data = "Failover could be performed only to a specific candidate".into();
    } else if action == ManualFailoverKind::Switchover && leader.is_none() {
        data = "Switchover could be performed only from a specific leader".into();
    }
    let mut scheduled_at = None;
    if data.is_empty() {
        if let Some(s) = &scheduled_raw {
            if action == ManualFailoverKind::Failover {
                data = "Failover can't be scheduled".into();
            } else if cfg.is_paused() {
                data = "Can't schedule switchover in the paused state".into();
            } else {
                match parse_schedule(s, action.as_str(), ctx.clock.unix_ms()) {
                    Ok(t) => scheduled_at = Some(t),
                    Err((c, m)) => {
                        code = c;
                        data = m;
                    }
                }
            }
        }
    }
    if data.is_empty() && cfg.is_paused() && candidate.is_none() {
        data = "Switchover is possible only to a specific candidate in a paused state".into();
    }
    if action == ManualFailoverKind::Failover && leader.is_some() {
        warn!("received failover request with leader specified - performing switchover instead");
        action = ManualFailoverKind::Switchover;
    }
    if data.is_empty() && leader.is_some() && leader == candidate {
        data = "Switchover target and source are the same".into();
    }
    if data.is_empty() && scheduled_at.is_none() {
        if let Some(why) =
            failover_limitation(&cluster, leader.as_deref(), candidate.as_deref(), action)
        {
            code = 412;
            data = why;
        }
    }
    if !data.is_empty() {
        return text(code, data);
    }
    let request = Failover {
        leader: leader.clone(),
        member: candidate.clone(),
        scheduled_at: scheduled_at.clone(),
        ..Default::default()
    };
    if let Err(e) = ctx.dcs.set_failover(&request, None).await {
        warn!(error = %e, "could not write the failover key");
        return text(503, "failed to write failover key into DCS");
    }
    ctx.requests.wake();
    if scheduled_at.is_some() {
        return text(202, format!("{} scheduled", action.title()));
    }
    // Poll for the outcome, as Patroni's poll_failover_result.
    let old_leader = cluster.leader_name().map(str::to_string);
    let deadline = tokio::time::Instant::now() + poll_timeout(ctx, &cfg);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(ctx.poll_interval).await;
        let Ok(c) = load(ctx).await else { continue };
        if let Some(l) = c.leader_name() {
            if Some(l) != old_leader.as_deref() {
                return match &candidate {
                    Some(want) if want != l => text(
                        200,
                        format!(
                            "{} over to \"{l}\" instead of \"{want}\"",
                            action.past_title()
                        ),
                    ),
                    _ => text(
                        200,
                        format!("Successfully {} over to \"{l}\"", action.past()),
                    ),
                };
            }
        }
        if c.pending_failover().is_none() {
            return text(503, format!("{} failed", action.title()));
        }
    }
    text(503, format!("{} status unknown", action.title()))
}

pub(crate) async fn delete_switchover(ctx: &ApiContext) -> Response {
    let cluster = match load(ctx).await {
        Ok(c) => c,
        Err(e) => return text(503, format!("DCS is not accessible: {e}")),
    };
    match cluster.pending_failover() {
        Some(f) if f.value.scheduled_at.is_some() => {
            match ctx
                .dcs
                .set_failover(&Failover::default(), Some(f.version))
                .await
            {
                Ok(()) => text(200, "scheduled switchover deleted"),
                Err(e) => text(409, format!("Conflict: {e}")),
            }
        }
        _ => text(404, "no switchover is scheduled"),
    }
}

#[cfg(test)]
mod tests {
    use super::ManualFailoverKind::{Failover, Switchover};

    /// The texts are Patroni's (`"Successfully switched over to ..."`, `"Failover status unknown"`), which
    /// patronictl and scripts match on.
    #[test]
    fn kind_texts_are_patronis() {
        assert_eq!(
            (
                Switchover.as_str(),
                Switchover.title(),
                Switchover.past(),
                Switchover.past_title()
            ),
            ("switchover", "Switchover", "switched", "Switched")
        );
        assert_eq!(
            (
                Failover.as_str(),
                Failover.title(),
                Failover.past(),
                Failover.past_title()
            ),
            ("failover", "Failover", "failed", "Failed")
        );
        assert_eq!(Failover.to_string(), "failover");
    }
}
