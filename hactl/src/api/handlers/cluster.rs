//! `GET /cluster` and `GET /history`: the cluster as the DCS holds it, read fresh, or from the loop's last snapshot
//! when the DCS does not answer.

use axum::response::Response;
use serde_json::json;

use super::cluster_or_snapshot;
use crate::api::{json_response, text, ApiContext};
use crate::json::cluster_json;

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
