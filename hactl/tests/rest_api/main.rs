//! Every REST endpoint's status codes for a primary, a replica and a stopped node, auth, bad JSON, and the JSON and
//! metric shapes — against ha-core's real driver on the in-memory DCS and simulated PostgreSQL.
//!
//! Layout: `reads` (health checks, status, cluster, history, config and metrics as Patroni serves them), `writes`
//! (authentication, bad input, config changes, switchover, restart, reinitialize, failsafe, a real socket).

#[path = "../common/mod.rs"]
mod common;

mod reads;
mod writes;

use common::{call, fixed_context, TestCluster};
use ha_core::model::Tags;
use ha_core::pg::{PgObservation, PgRunState};
use hactl::config::BasicAuth;

const ADMIN: Option<(&str, &str)> = Some(("admin", "secret"));

fn auth() -> Option<BasicAuth> {
    Some(BasicAuth {
        username: "admin".into(),
        password: "secret".into(),
    })
}

fn dc_tags(dc: &str) -> Tags {
    serde_json::from_value(serde_json::json!({ "dc": dc })).unwrap()
}

/// node1 primary, node2 replica, node3 a replica whose PostgreSQL is reported stopped.
fn three_nodes() -> (TestCluster, axum::Router, axum::Router, axum::Router) {
    let c = TestCluster::new(
        3,
        auth(),
        &[dc_tags("east"), dc_tags("east"), dc_tags("west")],
    );
    c.settle();
    let mut stopped = c.report(3);
    stopped.pg = PgObservation {
        run_state: Some(PgRunState::Stopped),
        in_recovery: true,
        ..Default::default()
    };
    let r3 = hactl::api::router(fixed_context(&c.ctxs[2], Some(stopped)));
    let (r1, r2) = (c.router(1), c.router(2));
    (c, r1, r2, r3)
}
