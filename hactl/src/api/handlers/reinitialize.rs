//! `POST /reinitialize`: asks the driver to rebuild this replica from the leader (refused on the leader, without a
//! leader, or while one is already running unless `force`).

use std::sync::atomic::Ordering;

use axum::response::Response;

use super::{read_json, Request};
use crate::api::{text, ApiContext};

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
