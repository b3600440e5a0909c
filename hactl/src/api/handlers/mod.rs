//! The informational and mutating endpoints, one file per resource: [`cluster`] (`/cluster`, `/history`),
//! [`config`] (`/config`), [`switchover`] (`/switchover`, `/failover`), [`restart`] (`/restart` and the scheduled
//! restart), [`reinitialize`], [`failsafe`] and [`metrics`]. This module holds what they share: the request as the
//! router hands it over, the JSON body reader, the DCS read, the schedule parser and the poll timeout.
//!
//! Text bodies and status codes are Patroni's (`patroni/api.py`); a bad request always gets a 4xx with a message,
//! never a 500 or a panic.

mod cluster;
mod config;
mod failsafe;
mod metrics;
mod reinitialize;
mod restart;
mod switchover;

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use ha_core::dcs::DcsError;
use ha_core::model::{Cluster, GlobalConfig};
use serde_json::{Map, Value};
use tracing::warn;

use super::{text, ApiContext};

// `api::merge_patch` is re-exported from here; the merge lives with the JSON views the CLI shares.
pub use crate::json::merge_patch;

pub(crate) use cluster::{get_cluster, get_history};
pub(crate) use config::{get_config, patch_config, put_config};
pub(crate) use failsafe::{get_failsafe, post_failsafe};
pub(crate) use metrics::get_metrics;
pub(crate) use reinitialize::post_reinitialize;
pub(crate) use restart::{delete_restart, post_restart};
pub(crate) use switchover::{delete_switchover, post_failover, ManualFailoverKind};

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

fn poll_timeout(ctx: &ApiContext, cfg: &GlobalConfig) -> Duration {
    ctx.poll_timeout.unwrap_or_else(|| {
        let loop_wait_ms = cfg.timing().loop_wait_ms;
        Duration::from_millis(2 * loop_wait_ms.max(10_000))
    })
}
