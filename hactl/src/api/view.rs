//! What a request sees of the node: the latest loop report turned into Patroni's vocabulary (role, state, xlog...),
//! and the JSON bodies built from it. Pure functions of their inputs, so each shape is tested without a server.

use ha_core::decision::NodeIdentity;
use ha_core::driver::{member_data, CycleReport};
use ha_core::model::{Cluster, GlobalConfig, MemberData, SyncMode};
use ha_core::pg::PgObservation;
use serde_json::{json, Map, Value};

/// Moved to [`crate::json`], shared with the CLI; re-exported so `api::view::cluster_json` keeps working.
pub use crate::json::{cluster_json, format_lsn};

/// One consistent view of this node for one request.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// The latest loop report, `None` before the first loop ran.
    pub report: Option<CycleReport>,
    pub pg: PgObservation,
    /// The DCS snapshot of the latest loop, `None` when the DCS was unreachable (or no loop ran yet).
    pub cluster: Option<Cluster>,
    pub config: GlobalConfig,
    /// What this node publishes in its member key: `state` and `role` in Patroni's words.
    pub member: MemberData,
    /// Holds the leader lock (or, with the DCS unreachable, still acts as primary within its lease).
    pub is_leader: bool,
    pub paused: bool,
    /// Listed in the `sync` key of the current leader while `synchronous_mode` is on.
    pub sync_standby: bool,
    /// Listed in the `sync` key of the current leader while `synchronous_mode` is `quorum` (a voter).
    pub quorum_standby: bool,
}

impl NodeView {
    pub fn new(identity: &NodeIdentity, report: Option<CycleReport>) -> NodeView {
        NodeView::at(identity, report, None)
    }

    /// The view at monotonic time `now` (the driver's clock): a leader whose lease has run out since its last loop
    /// (a daemon frozen, then resumed) is not reported as the leader, even before its next loop runs.
    pub fn at(
        identity: &NodeIdentity,
        report: Option<CycleReport>,
        now: Option<ha_core::time::Millis>,
    ) -> NodeView {
        let lease_ok = match (now, report.as_ref()) {
            (Some(now), Some(r)) => r.lease_deadline.map_or(false, |d| now < d),
            _ => true,
        };
        let pg = report.as_ref().map(|r| r.pg.clone()).unwrap_or_default();
        let cluster = report.as_ref().and_then(|r| r.cluster.clone().ok());
        // Without the DCS, the configuration the loop last knew (failsafe mode, pause) still holds.
        let config = match (&cluster, &report) {
            (Some(c), _) if c.config.is_some() => c.global_config(),
            // No `config` key yet (before the first leader writes it): the driver's, i.e. bootstrap.dcs.
            (_, Some(r)) => r.config.clone(),
            (Some(c), None) => c.global_config(),
            (None, None) => GlobalConfig::default(),
        };
        let paused = config.is_paused();
        // The snapshot a loop decided on predates the lock that loop took: the lock taken counts as well, so a
        // new primary answers `/primary` (HAProxy's check) at the end of its promoting loop, not a loop later.
        let took_lock = report.as_ref().map_or(false, CycleReport::took_lock);
        let is_leader = lease_ok
            && match &cluster {
                Some(c) => took_lock || c.leader_name() == Some(identity.name.as_str()),
                // The driver stops PostgreSQL when its lease runs out: until then a running primary is still the leader.
                None => report.is_some() && pg.is_primary(),
            };
        let member = member_data(
            identity,
            &pg,
            paused,
            is_leader && config.standby_cluster().is_some(),
        );
        // Patroni's `is_sync_standby`: the key must be the current leader's.
        let listed = cluster.as_ref().map_or(false, |c| {
            c.sync.as_ref().map_or(false, |s| {
                c.leader_name().is_some()
                    && s.value.leader.as_deref() == c.leader_name()
                    && s.value.matches(&identity.name, false)
            })
        });
        let sync_standby = listed && config.sync_mode() == SyncMode::On;
        let quorum_standby = listed && config.sync_mode() == SyncMode::Quorum;
        NodeView {
            report,
            pg,
            cluster,
            config,
            member,
            is_leader,
            paused,
            sync_standby,
            quorum_standby,
        }
    }

    pub fn role(&self) -> &str {
        self.member.role.as_deref().unwrap_or("uninitialized")
    }
    pub fn state(&self) -> &str {
        self.member.state.as_deref().unwrap_or("stopped")
    }
    pub fn is_running(&self) -> bool {
        self.state() == "running"
    }
    pub fn replication_state(&self) -> Option<&str> {
        self.member.replication_state.as_deref()
    }
    /// The replica's replayed position (0 on a primary or a stopped node).
    pub fn replayed_location(&self) -> u64 {
        if self.pg.is_replica() {
            self.pg.replay_lsn.unwrap_or(self.pg.lsn)
        } else {
            0
        }
    }
    pub fn received_location(&self) -> u64 {
        if self.pg.is_replica() {
            self.pg.receive_lsn.unwrap_or(self.pg.lsn)
        } else {
            0
        }
    }
    /// The leader's last known position (`status.optime`).
    pub fn leader_optime(&self) -> u64 {
        self.cluster
            .as_ref()
            .and_then(Cluster::last_leader_lsn)
            .unwrap_or(0)
    }
    /// The DCS is unreachable and this leader goes on by failsafe mode (Patroni's `failsafe_mode_is_active`).
    pub fn failsafe_mode_is_active(&self) -> bool {
        self.cluster.is_none() && self.is_leader && self.config.failsafe_mode()
    }

    pub fn cluster_unlocked(&self) -> bool {
        self.cluster.as_ref().map_or(false, |c| c.leader.is_none())
    }
}

/// Patroni's `parse_int(value, 'B')` for lag limits: `1048576`, `16kB`, `64MB`, `1GB`, `1TB` (binary multiples).
pub fn parse_size_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    Some((n * mult as f64).round() as u64)
}

/// Extra facts the REST layer knows but the loop report does not.
#[derive(Debug, Clone, Default)]
pub struct StatusExtras {
    /// Epoch seconds of the last successful DCS read.
    pub dcs_last_seen: Option<i64>,
    /// `{"schedule": ISO, ...}` of a scheduled restart.
    pub scheduled_restart: Option<Value>,
}

/// A timestamp as Patroni's JSON shows a Python datetime: `2026-12-01 10:00:00.123000+00:00`.
pub fn python_datetime(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string())
        .unwrap_or_default()
}

/// The `/patroni` body (and the body of every GET health check), keys in Patroni's order.
pub fn patroni_json(
    view: &NodeView,
    identity: &NodeIdentity,
    scope: &str,
    extras: &StatusExtras,
) -> Value {
    let mut m = Map::new();
    m.insert("state".into(), json!(view.state()));
    m.insert("role".into(), json!(view.role()));
    let alive = view.pg.is_alive();
    if alive {
        if let Some(t) = view.pg.postmaster_start_unix_ms {
            m.insert("postmaster_start_time".into(), json!(python_datetime(t)));
        }
        if let Some(v) = view.pg.server_version {
            m.insert("server_version".into(), json!(v));
        }
        if view.pg.in_recovery {
            m.insert(
                "xlog".into(),
                json!({
                    "received_location": view.received_location(),
                    "replayed_location": view.replayed_location(),
                    "replayed_timestamp": view.pg.replayed_unix_ms.map(python_datetime),
                    "paused": view.pg.replay_paused,
                }),
            );
        } else {
            m.insert("xlog".into(), json!({ "location": view.pg.lsn }));
        }
        m.insert("timeline".into(), json!(view.pg.timeline));
        if let Some(rs) = view.replication_state() {
            m.insert("replication_state".into(), json!(rs));
        }
        if !view.pg.in_recovery && !view.pg.replication.is_empty() {
            // pg_stat_replication as Patroni shows it.
            let reps: Vec<Value> = view
                .pg
                .replication
                .iter()
                .map(|r| {
                    json!({
                        "usename": r.usename,
                        "application_name": r.application_name,
                        "client_addr": r.client_addr,
                        "state": r.state,
                        "sync_state": r.sync_state,
                        "sync_priority": r.sync_priority,
                    })
                })
                .collect();
            m.insert("replication".into(), Value::Array(reps));
        } else if !view.pg.in_recovery && !view.pg.replicas.is_empty() {
            let sync: Vec<String> = view
                .cluster
                .as_ref()
                .and_then(|c| c.sync.as_ref())
                .and_then(|s| s.value.sync_standby.clone())
                .map(|l| l.split(',').map(|x| x.trim().to_string()).collect())
                .unwrap_or_default();
            let reps: Vec<Value> = view
                .pg
                .replicas
                .iter()
                .map(|r| {
                    let is_sync = view.config.synchronous_mode() && sync.contains(r);
                    let sync_state = match view.config.sync_mode() {
                        _ if !is_sync => "async",
                        SyncMode::Quorum => "quorum",
                        _ => "sync",
                    };
                    json!({
                        "application_name": r,
                        "state": "streaming",
                        "sync_state": sync_state,
                        "sync_priority": if is_sync { 1 } else { 0 },
                    })
                })
                .collect();
            m.insert("replication".into(), Value::Array(reps));
        }
    }
    if view.sync_standby {
        m.insert("sync_standby".into(), json!(true));
    }
    if view.quorum_standby {
        m.insert("quorum_standby".into(), json!(true));
    }
    if view.paused {
        m.insert("pause".into(), json!(true));
    }
    if view.failsafe_mode_is_active() {
        m.insert("failsafe_mode_is_active".into(), json!(true));
    }
    if view.cluster_unlocked() {
        m.insert("cluster_unlocked".into(), json!(true));
    }
    if let Some(t) = extras.dcs_last_seen {
        m.insert("dcs_last_seen".into(), json!(t));
    }
    let tags = identity.tags.for_member_key();
    if !tags.is_empty() {
        m.insert(
            "tags".into(),
            serde_json::to_value(tags).unwrap_or(Value::Null),
        );
    }
    if let Some(sysid) = &view.pg.system_id {
        m.insert("database_system_identifier".into(), json!(sysid));
    }
    if !view.pg.pending_restart.is_empty() {
        m.insert("pending_restart".into(), json!(true));
        let reasons: Map<String, Value> = view
            .pg
            .pending_restart
            .iter()
            .map(|p| {
                let reason = match view.pg.pending_restart_values.get(p) {
                    Some((old, new)) => json!({"old_value": old, "new_value": new}),
                    None => json!({}),
                };
                (p.clone(), reason)
            })
            .collect();
        m.insert("pending_restart_reason".into(), Value::Object(reasons));
    }
    if let Some(s) = &extras.scheduled_restart {
        m.insert("scheduled_restart".into(), s.clone());
    }
    m.insert(
        "patroni".into(),
        json!({ "version": identity.version, "scope": scope, "name": identity.name }),
    );
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha_core::decision::Action;
    use ha_core::driver::Outcome;

    use ha_core::decision::Decision;
    use ha_core::model::Leader;
    use ha_core::pg::{PgObservation, PgRunState};
    use ha_core::time::Millis;

    fn node(name: &str) -> NodeIdentity {
        NodeIdentity {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The report of a loop at 1 s that saw `leader` hold the lock, ran `executed`, and left PostgreSQL running
    /// with a lease until 9 s.
    fn report(leader: &str, executed: Vec<(Action, Outcome)>) -> CycleReport {
        CycleReport {
            now: Millis(1_000),
            decision: Decision::none("a loop"),
            executed,
            cluster: Ok(Cluster {
                leader: Some(Leader {
                    name: leader.into(),
                    version: 1,
                    session: None,
                }),
                ..Default::default()
            }),
            pg: PgObservation {
                run_state: Some(PgRunState::Running),
                ..Default::default()
            },
            next_wake: Millis(3_000),
            lease_deadline: Some(Millis(9_000)),
            tags: Default::default(),
            config: Default::default(),
        }
    }

    #[test]
    fn a_leader_whose_lease_ran_out_since_its_last_loop_is_not_reported_leader() {
        let r = report("node1", Vec::new());
        assert!(NodeView::at(&node("node1"), Some(r.clone()), Some(Millis(8_999))).is_leader);
        // The daemon was frozen past its lease and has not looped since: not the leader any more.
        assert!(!NodeView::at(&node("node1"), Some(r), Some(Millis(9_000))).is_leader);
    }

    #[test]
    fn a_node_that_took_the_lock_in_its_last_loop_is_the_leader_before_its_snapshot_says_so() {
        // The snapshot was loaded while node1 still held the lock; then this loop took it and promoted.
        let took = vec![
            (Action::AcquireLock, Outcome::Done),
            (Action::Promote, Outcome::Done),
        ];
        let at = Some(Millis(1_001));
        assert!(NodeView::at(&node("node2"), Some(report("node1", took)), at).is_leader);
        let lost = vec![(Action::AcquireLock, Outcome::Lost)];
        assert!(!NodeView::at(&node("node2"), Some(report("node1", lost)), at).is_leader);
    }

    #[test]
    fn lag_sizes_like_patroni() {
        assert_eq!(parse_size_bytes("1048576"), Some(1_048_576));
        assert_eq!(parse_size_bytes("16kB"), Some(16 * 1024));
        assert_eq!(parse_size_bytes("64MB"), Some(64 << 20));
        assert_eq!(parse_size_bytes("1GB"), Some(1 << 30));
        assert_eq!(parse_size_bytes("lots"), None);
        assert_eq!(parse_size_bytes("1XB"), None);
    }
}
