//! `GET`, `PATCH` and `PUT /config`: the cluster's dynamic configuration in the DCS. A write is checked to parse as
//! Patroni's dynamic config before it goes out, and a PATCH is a compare-and-set on the version it read.

use axum::response::Response;
use ha_core::dcs::DcsError;
use ha_core::model::GlobalConfig;
use serde_json::{json, Value};
use tracing::info;

use super::{cluster_or_snapshot, load, merge_patch, read_json, Request};
use crate::api::{json_response, text, ApiContext};

pub(crate) async fn get_config(ctx: &ApiContext) -> Response {
    match cluster_or_snapshot(ctx).await.and_then(|c| c.config) {
        Some(cfg) => json_response(200, &serde_json::to_value(cfg.value).unwrap_or(json!({}))),
        None => text(502, "Bad Gateway: no configuration in the DCS"),
    }
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
