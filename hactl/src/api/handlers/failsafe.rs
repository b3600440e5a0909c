//! `GET /failsafe` (the failsafe key's members) and `POST /failsafe`: the leader's call in failsafe mode, which
//! this node accepts by putting the leader's name and a deadline into the driver's failsafe inbox (and the
//! leader's slot positions, for the copies of its permanent slots here).

use axum::http::HeaderValue;
use axum::response::Response;
use ha_core::sync::lock;
use serde_json::json;

use super::{opt_str, read_json, Request};
use crate::api::{json_response, text, ApiContext};

pub(crate) fn get_failsafe(ctx: &ApiContext) -> Response {
    let v = ctx.view();
    match v.cluster.as_ref().and_then(|c| c.failsafe.clone()) {
        Some(f) if v.config.failsafe_mode() => {
            json_response(200, &serde_json::to_value(f).unwrap_or(json!({})))
        }
        _ => text(502, "Bad Gateway: failsafe mode is off"),
    }
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
    if let Some(file) = &ctx.failsafe_promise {
        // A promise this node could forget in a restart is not made.
        if let Err(e) = file.save(&leader, ctx.clock.unix_ms() + ttl_ms as i64) {
            tracing::error!(error = %e, "cannot record the failsafe promise: not accepting the leader");
            return text(500, "cannot record the promise");
        }
    }
    // The leader's slot positions (name → LSN); anything else in `slots` is ignored, the acceptance stands.
    let slots = body.get("slots").and_then(|s| s.as_object()).map(|m| {
        m.iter()
            .filter_map(|(k, v)| v.as_u64().map(|l| (k.clone(), l)))
            .collect()
    });
    ctx.requests.set_failsafe_slots(slots);
    *lock(&ctx.failsafe_inbox) = Some((leader, ctx.clock.now().plus_ms(ttl_ms)));
    let mut r = text(200, "Accepted");
    if let Ok(h) = HeaderValue::from_str(&v.pg.lsn.to_string()) {
        r.headers_mut().insert("lsn", h);
    }
    r
}
