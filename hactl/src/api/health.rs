//! The health checks load balancers route on. HAProxy's `option httpchk` against `/primary` and `/replica` must get
//! exactly Patroni's answers, so this follows Patroni's `do_GET` rule for rule: the path is matched by substring in
//! the same order (`/standby-leader` before `/leader` before `/primary`...), anything else is a health check that
//! fails, and `tag_<key>=<value>` filters apply to the replica paths only.

use ha_core::model::Tags;
use serde_json::Value;

use super::view::{parse_size_bytes, NodeView};

/// 200 or 503 for a GET/HEAD/OPTIONS on `path` with the query pairs `query`.
pub fn health_status(path: &str, query: &[(String, String)], view: &NodeView, tags: &Tags) -> u16 {
    let path = if path == "/" { "/primary" } else { path };
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());

    let leader_optime = view.leader_optime();
    let max_lag = q("lag").and_then(parse_size_bytes).unwrap_or(u64::MAX);
    let is_lagging =
        leader_optime > 0 && leader_optime > view.replayed_location().saturating_add(max_lag);
    let replication_ok = match q("replication_state") {
        None => true,
        Some(want) => view.replication_state() == Some(want),
    };
    let replica_code = if !tags.noloadbalance()
        && !is_lagging
        && view.role() == "replica"
        && view.is_running()
        && replication_ok
    {
        200
    } else {
        503
    };

    let (leader_code, primary_code, standby_leader_code) = if view.cluster.is_none() && view.paused
    {
        let role = view.role();
        (
            if role == "primary" || role == "standby_leader" {
                200
            } else {
                503
            },
            if role == "primary" { 200 } else { 503 },
            if role == "standby_leader" { 200 } else { 503 },
        )
    } else if view.is_leader {
        // The lock holder is the primary, or in a standby cluster the standby leader (in recovery); one still in
        // recovery that is neither (promoting) is not yet a primary.
        match view.role() {
            "standby_leader" => (200, 503, 200),
            "primary" => (200, 200, 503),
            _ => (200, 503, 503),
        }
    } else {
        (503, 503, 503)
    };

    let mut ignore_tags = false;
    let mut code = 503;
    if path.contains("standby_leader") || path.contains("standby-leader") {
        code = standby_leader_code;
        ignore_tags = true;
    } else if path.contains("leader") {
        code = leader_code;
        ignore_tags = true;
    } else if path.contains("master") || path.contains("primary") || path.contains("read-write") {
        code = primary_code;
        ignore_tags = true;
    } else if path.contains("replica") {
        code = replica_code;
    } else if path.contains("read-only") && !path.contains("sync") && !path.contains("quorum") {
        code = if primary_code == 200 || standby_leader_code == 200 {
            200
        } else {
            replica_code
        };
    } else if path.contains("health") {
        code = if view.is_running() { 200 } else { 503 };
    } else if view.cluster.is_some() {
        let is_sync = view.sync_standby;
        let is_quorum = view.quorum_standby;
        let leaderish = primary_code == 200 || standby_leader_code == 200;
        match path {
            "/sync" | "/synchronous" if is_sync => code = replica_code,
            "/quorum" if is_quorum => code = replica_code,
            "/async" | "/asynchronous" if !is_sync && !is_quorum => code = replica_code,
            "/read-only-sync" | "/read-only-synchronous" => {
                if leaderish {
                    code = 200
                } else if is_sync {
                    code = replica_code
                }
            }
            "/read-only-quorum" => {
                if leaderish {
                    code = 200
                } else if is_quorum {
                    code = replica_code
                }
            }
            _ => {}
        }
    }

    if !ignore_tags && code == 200 {
        let tag_values = serde_json::to_value(tags).unwrap_or(Value::Null);
        for (k, want) in query {
            let Some(key) = k.strip_prefix("tag_") else {
                continue;
            };
            let have = match tag_values.get(key) {
                None | Some(Value::Null) => {
                    code = 503;
                    break;
                }
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string().to_lowercase(),
            };
            if &have != want {
                code = 503;
                break;
            }
        }
    }
    code
}

/// `/liveness`: 200 while paused or while the loop ran within `ttl` (primary) or `2 * ttl` (replica).
pub fn liveness_status(view: &NodeView, now_ms: u64, ttl_ms: u64) -> u16 {
    if view.paused {
        return 200;
    }
    let Some(report) = &view.report else {
        return 503;
    };
    let threshold = if view.pg.is_primary() {
        ttl_ms
    } else {
        2 * ttl_ms
    };
    if now_ms.saturating_sub(report.now.0) < threshold {
        200
    } else {
        503
    }
}

/// `/readiness?lag=&mode=apply|write`: the leader is ready; a replica when running, streaming and within the lag
/// (default `maximum_lag_on_failover`). `Err` carries the reason for the log.
pub fn readiness(view: &NodeView, query: &[(String, String)]) -> Result<(), String> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if view.is_leader && view.pg.is_alive() {
        return Ok(());
    }
    if !view.is_running() {
        return Err("PostgreSQL is not running".into());
    }
    if view.replication_state() != Some("streaming") {
        return Err("PostgreSQL replication state is not streaming".into());
    }
    if view.cluster.is_none() {
        return Err("DCS is not accessible".into());
    }
    let write = q("mode") == Some("write");
    let location = if write {
        view.received_location()
    } else {
        view.replayed_location()
    };
    let lag = view.leader_optime().saturating_sub(location);
    let max = q("lag")
        .and_then(parse_size_bytes)
        .unwrap_or_else(|| view.config.maximum_lag_on_failover());
    if lag > max {
        return Err(format!(
            "Replication {} lag {lag} exceeds maximum allowable {max}",
            if write { "write" } else { "apply" }
        ));
    }
    Ok(())
}
