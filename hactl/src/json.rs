//! The JSON views the REST API serves and the CLI reads: Patroni's `cluster_as_json` (the `/cluster` body that
//! `hactl list` renders) and `patch_config` (the merge that `PATCH /config` and `hactl edit-config --apply` apply).
//! They live outside both `api` and `cli` so that the CLI does not import the REST server; pure functions of
//! their inputs, tested here without a server.

use ha_core::model::{Cluster, SyncMode};
use serde_json::{json, Map, Value};

pub use ha_core::pg::format_lsn;

/// Patroni's `patch_config`: a JSON merge patch where `null` deletes the key.
pub fn merge_patch(target: &mut Value, patch: &Map<String, Value>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object");
    for (k, v) in patch {
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(p) if t.get(k).map_or(false, Value::is_object) => {
                merge_patch(t.get_mut(k).expect("checked"), p)
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
}

/// `host` and `port` of a `postgres://host:port/db` URL.
pub fn host_port_of(conn_url: &str) -> (Option<String>, Option<u16>) {
    let rest = conn_url
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(conn_url);
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() => (
            Some(h.trim_matches(|c| c == '[' || c == ']').to_string()),
            p.parse().ok(),
        ),
        _ if !authority.is_empty() => (Some(authority.to_string()), None),
        _ => (None, None),
    }
}

/// Patroni's `cluster_as_json`: members sorted by name, lags against `status.optime`, pause and scheduled
/// switchover at the top level.
pub fn cluster_json(cluster: &Cluster) -> Value {
    let cfg = cluster.global_config();
    let leader = cluster.leader_name();
    let cluster_lsn = cluster.last_leader_lsn();
    let sync_list: Vec<String> = cluster
        .sync
        .as_ref()
        .and_then(|s| s.value.sync_standby.clone())
        .map(|l| l.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let mut members = Vec::new();
    for m in &cluster.members {
        let is_leader = Some(m.name.as_str()) == leader;
        let role = if is_leader && cfg.standby_cluster().is_some() {
            "standby_leader"
        } else if is_leader {
            "leader"
        } else if cfg.sync_mode() == SyncMode::Quorum && sync_list.contains(&m.name) {
            "quorum_standby"
        } else if cfg.synchronous_mode() && sync_list.contains(&m.name) {
            "sync_standby"
        } else {
            "replica"
        };
        let state = if is_leader {
            m.data.state.clone()
        } else {
            m.data
                .replication_state
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| m.data.state.clone())
        }
        .unwrap_or_default();
        let mut o = Map::new();
        o.insert("name".into(), json!(m.name));
        o.insert("role".into(), json!(role));
        o.insert("state".into(), json!(state));
        o.insert("api_url".into(), json!(m.data.api_url));
        if let Some(url) = &m.data.conn_url {
            let (host, port) = host_port_of(url);
            if let Some(h) = host {
                o.insert("host".into(), json!(h));
                if let Some(p) = port {
                    o.insert("port".into(), json!(p));
                }
            }
        }
        if let Some(t) = m.data.timeline {
            o.insert("timeline".into(), json!(t));
        }
        if m.data.pending_restart == Some(true) {
            o.insert("pending_restart".into(), json!(true));
        }
        for k in ["pending_restart_reason", "scheduled_restart"] {
            if let Some(v) = m.data.extra.get(k) {
                o.insert(k.into(), v.clone());
            }
        }
        if let Some(tags) = &m.data.tags {
            o.insert(
                "tags".into(),
                serde_json::to_value(tags).unwrap_or(Value::Null),
            );
        }
        if !is_leader {
            for (lsn_key, lag_key, lsn) in [
                ("receive_lsn", "receive_lag", m.data.receive_lsn),
                ("replay_lsn", "replay_lag", m.data.replay_lsn),
                ("lsn", "lag", m.data.xlog_location),
            ] {
                match lsn {
                    None => {
                        o.insert(lsn_key.into(), json!("unknown"));
                        o.insert(lag_key.into(), json!("unknown"));
                    }
                    Some(l) => {
                        o.insert(lsn_key.into(), json!(format_lsn(l)));
                        match cluster_lsn {
                            Some(c) => o.insert(lag_key.into(), json!(c.saturating_sub(l))),
                            None => o.insert(lag_key.into(), json!("unknown")),
                        };
                    }
                }
            }
        }
        members.push(Value::Object(o));
    }
    members.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let mut ret = Map::new();
    ret.insert("members".into(), Value::Array(members));
    if cfg.is_paused() {
        ret.insert("pause".into(), json!(true));
    }
    if let Some(f) = cluster.pending_failover() {
        if let Some(at) = &f.value.scheduled_at {
            let mut s = Map::new();
            s.insert("at".into(), json!(at));
            if let Some(l) = &f.value.leader {
                s.insert("from".into(), json!(l));
            }
            if let Some(c) = &f.value.member {
                s.insert("to".into(), json!(c));
            }
            ret.insert("scheduled_switchover".into(), Value::Object(s));
        }
    }
    Value::Object(ret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_matches_postgres() {
        assert_eq!(format_lsn(0x4000060), "0/4000060");
        assert_eq!(format_lsn((1 << 32) + 0xA0), "1/A0");
    }

    #[test]
    fn conn_url_host_and_port() {
        assert_eq!(
            host_port_of("postgres://10.0.0.1:5433/postgres"),
            (Some("10.0.0.1".into()), Some(5433))
        );
        assert_eq!(
            host_port_of("postgres://u:p@[::1]:5432/postgres"),
            (Some("::1".into()), Some(5432))
        );
    }
}
