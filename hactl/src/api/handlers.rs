//! The informational and mutating endpoints. Text bodies and status codes are Patroni's (`patroni/api.py`); a bad
//! request always gets a 4xx with a message, never a 500 or a panic.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use ha_core::dcs::DcsError;
use ha_core::decision::Action;
use ha_core::driver::Outcome;
use ha_core::model::{Cluster, Failover, GlobalConfig};
use ha_core::sync::lock;
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use super::{json_response, metrics, text, ApiContext, ScheduledRestart};
use crate::json::cluster_json;

// `api::merge_patch` is re-exported from here; the merge lives with the JSON views the CLI shares.
pub use crate::json::merge_patch;

pub(crate) struct Request {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub query: Vec<(String, String)>,
}

/// Patroni's `_read_json_content`: 411 without Content-Length (unless the body is optional), 400 for anything that
/// is not a JSON object (or an empty one when a body is required).
fn read_json(req: &Request, optional: bool) -> Result<Map<String, Value>, Response> {
    if req.headers.get(header::CONTENT_LENGTH).is_none() && req.body.is_empty() {
        return if optional {
            Ok(Map::new())
        } else {
            Err(text(411, "Length Required"))
        };
    }
    if req.body.is_empty() && optional {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) if !m.is_empty() || optional => Ok(m),
        Ok(Value::Object(_)) => Err(text(400, "Bad request: the JSON object is empty")),
        Ok(other) => Err(text(
            400,
            format!("Bad request: expected a JSON object, got {}", kind(&other)),
        )),
        Err(e) => Err(text(400, format!("Bad request: invalid JSON: {e}"))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

async fn load(ctx: &ApiContext) -> Result<Cluster, DcsError> {
    ctx.dcs.load().await
}

/// A fresh read when the DCS answers, else the loop's last snapshot.
async fn cluster_or_snapshot(ctx: &ApiContext) -> Option<Cluster> {
    match load(ctx).await {
        Ok(c) => Some(c),
        Err(e) => {
            warn!(error = %e, "DCS read failed; answering from the last loop's snapshot");
            ctx.view().cluster
        }
    }
}

pub(crate) async fn get_cluster(ctx: &ApiContext) -> Response {
    match cluster_or_snapshot(ctx).await {
        Some(c) => {
            let mut v = cluster_json(&c);
            v["scope"] = json!(ctx.scope);
            json_response(200, &v)
        }
        None => text(503, "DCS is not accessible"),
    }
}

pub(crate) async fn get_history(ctx: &ApiContext) -> Response {
    let lines = cluster_or_snapshot(ctx)
        .await
        .and_then(|c| c.history.map(|h| h.value))
        .unwrap_or_default();
    json_response(200, &serde_json::to_value(lines).unwrap_or(json!([])))
}

pub(crate) async fn get_config(ctx: &ApiContext) -> Response {
    match cluster_or_snapshot(ctx).await.and_then(|c| c.config) {
        Some(cfg) => json_response(200, &serde_json::to_value(cfg.value).unwrap_or(json!({}))),
        None => text(502, "Bad Gateway: no configuration in the DCS"),
    }
}

pub(crate) fn get_failsafe(ctx: &ApiContext) -> Response {
    let v = ctx.view();
    match v.cluster.as_ref().and_then(|c| c.failsafe.clone()) {
        Some(f) if v.config.failsafe_mode() => {
            json_response(200, &serde_json::to_value(f).unwrap_or(json!({})))
        }
        _ => text(502, "Bad Gateway: failsafe mode is off"),
    }
}

pub(crate) fn get_metrics(ctx: &ApiContext) -> Response {
    let v = ctx.view();
    let extras = ctx.extras();
    let failsafe_active = v.cluster.is_none() && v.is_leader && v.config.failsafe_mode();
    let body = metrics::render(
        &v,
        &metrics::MetricInputs {
            scope: &ctx.scope,
            name: &ctx.identity.name,
            version: &ctx.identity.version,
            tags: Some(&ctx.identity.tags),
            dcs_last_seen: extras.dcs_last_seen.unwrap_or(0),
            failsafe_mode_is_active: failsafe_active,
        },
    );
    text(200, body)
}

/// A config value a DCS write may take: it parses as Patroni's dynamic config. Timing that breaks
/// `loop_wait + 2 * retry_timeout <= ttl` is accepted as Patroni accepts it: every node adjusts it when it reads
/// it (`Timing::adjusted`) and logs what it changed.
fn checked_config(v: Value) -> Result<GlobalConfig, Response> {
    let cfg: GlobalConfig = serde_json::from_value(v)
        .map_err(|e| text(400, format!("Bad request: invalid configuration: {e}")))?;
    for w in cfg.timing_adjustments() {
        tracing::warn!(warning = %w, "the new config's timing will be adjusted");
    }
    Ok(cfg)
}

pub(crate) async fn patch_config(ctx: &ApiContext, req: &Request) -> Response {
    let patch = match read_json(req, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cluster = match load(ctx).await {
        Ok(c) => c,
        Err(e) => return text(503, format!("DCS is not accessible: {e}")),
    };
    let Some(current) = cluster.config else {
        return text(503, "Service Unavailable: no configuration in the DCS");
    };
    let mut data = serde_json::to_value(&current.value).unwrap_or(json!({}));
    merge_patch(&mut data, &patch);
    let cfg = match checked_config(data) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match ctx.dcs.set_config(&cfg, Some(current.version)).await {
        Ok(()) => {
            ctx.requests.wake();
            let patch_text = Value::Object(patch).to_string();
            info!(patch = %patch_text, "configuration patched");
            json_response(200, &serde_json::to_value(&cfg).unwrap_or(json!({})))
        }
        Err(DcsError::Conflict(e)) => text(409, format!("Conflict: {e}")),
        Err(e) => text(503, format!("failed to write the configuration: {e}")),
    }
}

pub(crate) async fn put_config(ctx: &ApiContext, req: &Request) -> Response {
    let body = match read_json(req, false) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cfg = match checked_config(Value::Object(body.clone())) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match ctx.dcs.set_config(&cfg, None).await {
        Ok(()) => {
            ctx.requests.wake();
            json_response(200, &Value::Object(body))
        }
        Err(e) => text(502, format!("failed to write the configuration: {e}")),
    }
}

/// Patroni's `parse_schedule`: 400 without a time zone, 422 when unparsable or in the past.
fn parse_schedule(s: &str, action: &str, now_unix_ms: i64) -> Result<String, (u16, String)> {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) if t.timestamp_millis() < now_unix_ms => {
            Err((422, format!("Cannot schedule {action} in the past")))
        }
        Ok(t) => Ok(t.to_rfc3339()),
        Err(_) => {
            // A valid time without a zone is a 400, anything else a 422.
            if chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok()
                || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
            {
                Err((
                    400,
                    format!("Timezone information is mandatory for the scheduled {action}"),
                ))
            } else {
                Err((
                    422,
                    "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
                        .into(),
                ))
            }
        }
    }
}

fn opt_str(m: &Map<String, Value>, k: &str) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// Patroni's `is_failover_possible`, judged from the member keys (Patroni asks each member's REST API; the member
/// keys carry the same running state and tags, refreshed every loop).
fn failover_limitation(
    cluster: &Cluster,
    leader: Option<&str>,
    candidate: Option<&str>,
    action: &str,
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
        if action == "switchover" && cfg.synchronous_mode() && !sync_list.iter().any(|s| s == c) {
            return Some("candidate name does not match with sync_standby".into());
        }
        let m: Vec<_> = cluster.members.iter().filter(|m| m.name == c).collect();
        if m.is_empty() {
            return Some("candidate does not exists".into());
        }
        m
    } else if cfg.synchronous_mode() {
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

fn title(action: &str) -> String {
    let mut c = action.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn poll_timeout(ctx: &ApiContext, cfg: &GlobalConfig) -> Duration {
    ctx.poll_timeout.unwrap_or_else(|| {
        let loop_wait_ms = cfg.timing().loop_wait_ms;
        Duration::from_millis(2 * loop_wait_ms.max(10_000))
    })
}

pub(crate) async fn post_failover(ctx: &ApiContext, req: &Request, action: &str) -> Response {
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
    info!(action, ?leader, ?candidate, scheduled_at = ?scheduled_raw, "received request");
    let mut action = action.to_string();
    let mut code = 400;
    let mut data = String::new();
    if action == "failover" && candidate.is_none() {
        data = "Failover could be performed only to a specific candidate".into();
    } else if action == "switchover" && leader.is_none() {
        data = "Switchover could be performed only from a specific leader".into();
    }
    let mut scheduled_at = None;
    if data.is_empty() {
        if let Some(s) = &scheduled_raw {
            if action == "failover" {
                data = "Failover can't be scheduled".into();
            } else if cfg.is_paused() {
                data = "Can't schedule switchover in the paused state".into();
            } else {
                match parse_schedule(s, &action, ctx.clock.unix_ms()) {
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
    if action == "failover" && leader.is_some() {
        warn!("received failover request with leader specified - performing switchover instead");
        action = "switchover".into();
    }
    if data.is_empty() && leader.is_some() && leader == candidate {
        data = "Switchover target and source are the same".into();
    }
    if data.is_empty() && scheduled_at.is_none() {
        if let Some(why) =
            failover_limitation(&cluster, leader.as_deref(), candidate.as_deref(), &action)
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
        return text(202, format!("{} scheduled", title(&action)));
    }
    // Poll for the outcome, as Patroni's poll_failover_result.
    let old_leader = cluster.leader_name().map(str::to_string);
    let stem = &action[..action.len() - 4]; // "switch" / "fail"
    let deadline = tokio::time::Instant::now() + poll_timeout(ctx, &cfg);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(ctx.poll_interval).await;
        let Ok(c) = load(ctx).await else { continue };
        if let Some(l) = c.leader_name() {
            if Some(l) != old_leader.as_deref() {
                return match &candidate {
                    Some(want) if want != l => text(
                        200,
                        format!("{}ed over to \"{l}\" instead of \"{want}\"", title(stem)),
                    ),
                    _ => text(200, format!("Successfully {stem}ed over to \"{l}\"")),
                };
            }
        }
        if c.pending_failover().is_none() {
            return text(503, format!("{} failed", title(&action)));
        }
    }
    text(503, format!("{} status unknown", title(&action)))
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
    let v = ctx.view();
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
            let task = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(wait_ms)).await;
                info!("running the scheduled restart");
                requests.restart.store(true, Ordering::SeqCst);
                requests.wake();
            });
            let mut json = Map::new();
            json.insert("schedule".into(), json!(at));
            for (k, v) in &request {
                if k != "schedule" {
                    json.insert(k.clone(), v.clone());
                }
            }
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
            text(200, "scheduled restart deleted")
        }
        _ => text(404, "no restarts are scheduled"),
    }
}

pub(crate) fn post_reinitialize(ctx: &ApiContext, req: &Request) -> Response {
    let body = match read_json(req, true) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let force = body
        .get("force")
        .and_then(crate::config::value::parse_bool)
        .unwrap_or(false);
    let v = ctx.view();
    let Some(cluster) = &v.cluster else {
        return text(503, "DCS is not accessible, can not reinitialize");
    };
    if v.is_leader {
        return text(503, "I am the leader, can not reinitialize");
    }
    if cluster.leader.is_none() {
        return text(503, "Cluster has no leader, can not reinitialize");
    }
    if ctx.requests.reinitialize.load(Ordering::SeqCst) && !force {
        return text(503, "reinitialize already in progress");
    }
    ctx.requests.reinitialize.store(true, Ordering::SeqCst);
    ctx.requests.wake();
    text(200, "reinitialize started")
}

pub(crate) fn post_failsafe(ctx: &ApiContext, req: &Request) -> Response {
    let v = ctx.view();
    // With the DCS down the view has no config: the driver's last known one decides, as in Patroni.
    let enabled = match &v.cluster {
        Some(_) => v.config.failsafe_mode(),
        None => true,
    };
    if !enabled {
        return text(502, "Bad Gateway: failsafe mode is off");
    }
    let body = match read_json(req, false) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(leader) = opt_str(&body, "name") else {
        return text(400, "Bad request: `name` of the leader is required");
    };
    if v.pg.is_primary() {
        return text(500, "Running as a leader");
    }
    let ttl_ms = v.config.timing().ttl_ms;
    *lock(&ctx.failsafe_inbox) = Some((leader, ctx.clock.now().plus_ms(ttl_ms)));
    let mut r = text(200, "Accepted");
    if let Ok(h) = HeaderValue::from_str(&v.pg.lsn.to_string()) {
        r.headers_mut().insert("lsn", h);
    }
    r
}
