//! `GET /metrics`: the Prometheus text, from the loop's last view; the rendering lives in [`crate::api::metrics`].

use axum::response::Response;

use crate::api::{metrics, text, ApiContext};

pub(crate) fn get_metrics(ctx: &ApiContext) -> Response {
    let v = ctx.view();
    let extras = ctx.extras();
    let tags = ctx.identity_for(v.report.as_ref()).tags;
    let failsafe_active = v.failsafe_mode_is_active();
    let body = metrics::render(
        &v,
        &metrics::MetricInputs {
            scope: &ctx.scope,
            name: &ctx.identity.name,
            version: &ctx.identity.version,
            tags: Some(&tags),
            dcs_last_seen: extras.dcs_last_seen.unwrap_or(0),
            failsafe_mode_is_active: failsafe_active,
        },
    );
    text(200, body)
}
