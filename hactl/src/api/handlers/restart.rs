//! `POST /restart` (now, or scheduled for later with filters) and `DELETE /restart` (cancels the scheduled one).
//! A restart now sets the driver's restart flag and waits for the loop that ran it; a scheduled restart is a timer
//! task that sets the same flag when its time comes.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::response::Response;
use ha_core::decision::Action;
use ha_core::driver::Outcome;
use ha_core::sync::lock;
use serde_json::{json, Map, Value};
use tracing::info;

use super::{parse_schedule, poll_timeout, read_json, Request};
use crate::api::{text, ApiContext, ScheduledRestart};

/// Parses `"10"`, `10`, `"10s"`, `"1min"` as seconds (Patroni's `parse_int(v, 's')` for the restart timeout).
fn parse_seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => {
            let s = s.trim();
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let n: i64 = s[..end].parse().ok()?;
            let mult = match s[end..].trim() {
                "" | "s" => 1,
                "min" => 60,
                "h" => 3600,
                "d" => 86400,
                "ms" => return Some(n / 1000),
                _ => return None,
            };
            Some(n * mult)
        }
        _ => None,
    }
}

/// `postgres_version` as PostgreSQL's integer form (`15.2` → 150002, `9.6.3` → 90603).
fn postgres_version_to_int(v: &str) -> Option<u32> {
    let parts: Vec<u32> = v
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [major, minor] if *major >= 10 => Some(major * 10000 + minor),
        [major, minor, patch] if *major < 10 => Some(major * 10000 + minor * 100 + patch),
        _ => None,
    }
}

/// Whether the restart filters (`role`, `postgres_version`, `restart_pending`) match this node now.
fn restart_conditions_met(ctx: &ApiContext, filters: &Map<String, Value>) -> bool {
    conditions_met(&ctx.view(), filters)
}

/// Patroni's `restart_matches`: the node's role, PostgreSQL version and pending restart against the request's
/// filters. Checked when the request arrives and, for a scheduled restart, again when its time comes (the node
/// may have changed role or been restarted meanwhile).
fn conditions_met(v: &crate::api::view::NodeView, filters: &Map<String, Value>) -> bool {
    if let Some(Value::String(role)) = filters.get("role") {
        let mine = if v.is_leader { "primary" } else { v.role() };
        if role != mine {
            return false;
        }
    }
    if let Some(Value::String(want)) = filters.get("postgres_version") {
        match (postgres_version_to_int(want), v.pg.server_version) {
            (Some(w), Some(have)) if have >= w => return false,
            _ => {}
        }
    }
    if filters.get("restart_pending").and_then(Value::as_bool) == Some(true)
        && v.pg.pending_restart.is_empty()
    {
        return false;
    }
    true
}

/// Asks the driver for a restart and waits for the loop that ran it.
async fn restart_now(ctx: &ApiContext, timeout: Duration) -> (u16, String) {
    let before = ctx.state.latest().map(|r| r.now);
    ctx.requests.restart.store(true, Ordering::SeqCst);
    ctx.requests.wake();
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(ctx.poll_interval).await;
        if ctx.requests.restart.load(Ordering::SeqCst) {
            continue;
        }
        // The flag was taken: find the report of the loop that restarted.
        if let Some(r) = ctx.state.latest() {
            if Some(r.now) == before {
                continue;
            }
            // The loop that restarted may already be overwritten by a later one: then the server running again
            // is the outcome.
            let ok = match r.executed.iter().find(|(a, _)| *a == Action::Restart) {
                Some((_, outcome)) => *outcome == Outcome::Done,
                None => r.pg.is_running(),
            };
            return if ok {
                (200, "restarted successfully".into())
            } else {
                (503, "restart failed".into())
            };
        }
    }
    ctx.requests.restart.store(false, Ordering::SeqCst);
    (503, "restart failed".into())
}

pub(crate) async fn post_restart(ctx: &ApiContext, req: &Request) -> Response {
    let mut request = match read_json(req, true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let paused = ctx.view().config.is_paused();
    if paused && request.contains_key("schedule") {
        return text(500, "Can't schedule restart in the paused state");
    }
    let mut scheduled = None;
    for (k, v) in request.iter_mut() {
        match k.as_str() {
            "schedule" => {
                let s = v.as_str().unwrap_or_default().to_string();
                match parse_schedule(&s, "restart", ctx.clock.unix_ms()) {
                    Ok(t) => {
                        *v = json!(t.clone());
                        scheduled = Some(t);
                    }
                    Err((c, m)) => return text(c, m),
                }
            }
            "role" => {
                if !matches!(v.as_str(), Some("primary" | "standby_leader" | "replica")) {
                    return text(
                        400,
                        "PostgreSQL role should be either primary, standby_leader, or replica",
                    );
                }
            }
            "postgres_version" => {
                if v.as_str().and_then(postgres_version_to_int).is_none() {
                    return text(400, format!("{v} is not a valid PostgreSQL version"));
                }
            }
            "timeout" => match parse_seconds(v) {
                Some(s) if s > 0 => *v = json!(s),
                _ => return text(400, "Timeout should be a positive number of seconds"),
            },
            "restart_pending" => {}
            other => {
                return text(
                    400,
                    format!("Unknown filter for the scheduled restart: {other}"),
                )
            }
        }
    }
    match scheduled {
        None => {
            if !restart_conditions_met(ctx, &request) {
                return text(503, "restart conditions are not satisfied");
            }
            let cfg = ctx.view().config;
            let timeout = request
                .get("timeout")
                .and_then(Value::as_u64)
                .map(Duration::from_secs)
                .unwrap_or_else(|| poll_timeout(ctx, &cfg));
            let (code, msg) = restart_now(ctx, timeout).await;
            text(code, msg)
        }
        Some(at) => {
            let mut slot = lock(&ctx.scheduled_restart);
            if slot.as_ref().map_or(false, |s| !s.task.is_finished()) {
                return text(409, "Another restart is already scheduled");
            }
            let at_ms = chrono::DateTime::parse_from_rfc3339(&at)
                .map(|t| t.timestamp_millis())
                .unwrap_or(0);
            let wait_ms = (at_ms - ctx.clock.unix_ms()).max(0) as u64;
            let requests = ctx.requests.clone();
            let (state, identity, clock) =
                (ctx.state.clone(), ctx.identity.clone(), ctx.clock.clone());
            let filters = request.clone();
            let mut json = Map::new();
            json.insert("schedule".into(), json!(at));
            for (k, v) in &request {
                if k != "schedule" {
                    json.insert(k.clone(), v.clone());
                }
            }
            // Published in the member key (patronictl's `list` and `flush` read it there) until it runs.
            ctx.requests
                .set_member_extra("scheduled_restart", Some(Value::Object(json.clone())));
            let task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                requests.set_member_extra("scheduled_restart", None);
                let v =
                    crate::api::view::NodeView::at(&identity, state.latest(), Some(clock.now()));
                if !conditions_met(&v, &filters) {
                    info!("not proceeding with the scheduled restart: its conditions are not satisfied");
                    return;
                }
                info!("running the scheduled restart");
                requests.restart.store(true, Ordering::SeqCst);
                requests.wake();
            });
            *slot = Some(ScheduledRestart {
                json: Value::Object(json),
                task,
            });
            text(202, "Restart scheduled")
        }
    }
}

pub(crate) fn delete_restart(ctx: &ApiContext) -> Response {
    let mut slot = lock(&ctx.scheduled_restart);
    match slot.take() {
        Some(s) if !s.task.is_finished() => {
            s.task.abort();
            ctx.requests.set_member_extra("scheduled_restart", None);
            text(200, "scheduled restart deleted")
        }
        _ => text(404, "no restarts are scheduled"),
    }
}
