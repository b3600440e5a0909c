//! The member key this node publishes every loop (Patroni's `touch_member`): its role and state as PostgreSQL shows
//! them, its WAL positions, its tags and the pause flag.

use super::Driver;
use crate::dcs::Dcs;
use crate::decision::NodeIdentity;
use crate::model::{MemberData, PgStateName, Role};
use crate::pg::{PgControl, PgObservation, PgRunState};

impl<D: Dcs, P: PgControl> Driver<D, P> {
    /// The member key value, as Patroni's `touch_member` writes it.
    pub fn member_data(&self, pg: &PgObservation) -> MemberData {
        let mut d = member_data(
            &self.settings.identity,
            pg,
            self.local.last_config.is_paused(),
            self.local.lease_deadline.is_some()
                && self.local.last_config.standby_cluster().is_some(),
        );
        // An extra never shadows a field the driver writes.
        let own = serde_json::to_value(&d).unwrap_or_default();
        for (k, v) in self.requests.member_extras() {
            if own.get(&k).is_none() {
                d.extra.insert(k, v);
            }
        }
        d
    }
}

/// The member key for a node in the state `pg`; `standby_leader`: it holds the lock of a standby cluster (its
/// server in recovery is then reported as `standby_leader`).
pub fn member_data(
    id: &NodeIdentity,
    pg: &PgObservation,
    paused: bool,
    standby_leader: bool,
) -> MemberData {
    let in_recovery_role = if standby_leader {
        Role::StandbyLeader
    } else {
        Role::Replica
    };
    let (state, role) = match pg.state() {
        PgRunState::Uninitialized => (PgStateName::Stopped, Role::Uninitialized),
        PgRunState::Stopped => (
            PgStateName::Stopped,
            if pg.in_recovery {
                Role::Replica
            } else {
                Role::Demoted
            },
        ),
        // Paused, nothing restarts a dead server: Patroni reports it stopped, in the role it had.
        PgRunState::Crashed if paused => (
            PgStateName::Stopped,
            if pg.in_recovery {
                Role::Replica
            } else {
                Role::Demoted
            },
        ),
        PgRunState::Crashed => (PgStateName::Crashed, Role::Demoted),
        PgRunState::Starting => (
            PgStateName::Starting,
            if pg.in_recovery {
                in_recovery_role
            } else {
                Role::Primary
            },
        ),
        PgRunState::Running | PgRunState::Unresponsive => (
            PgStateName::Running,
            if pg.in_recovery {
                in_recovery_role
            } else {
                Role::Primary
            },
        ),
    };
    let mut d = MemberData {
        conn_url: Some(id.conn_url.clone()),
        api_url: Some(id.api_url.clone()),
        state: Some(state.as_str().to_string()),
        role: Some(role.as_str().to_string()),
        version: Some(id.version.clone()),
        ..Default::default()
    };
    if pg.is_alive() {
        d.xlog_location = Some(pg.lsn);
        d.timeline = Some(pg.timeline);
        if pg.in_recovery {
            d.replay_lsn = pg.replay_lsn.or(Some(pg.lsn));
            d.receive_lsn = pg.receive_lsn.or(Some(pg.lsn));
            d.replication_state = Some(
                if pg.streaming {
                    "streaming"
                } else {
                    "in archive recovery"
                }
                .to_string(),
            );
        }
    }
    let tags = id.tags.for_member_key();
    if !tags.is_empty() {
        d.tags = Some(tags);
    }
    if !pg.pending_restart.is_empty() {
        d.pending_restart = Some(true);
        // Patroni 4's `pending_restart_reason`: what changed, as far as the server tells (patronictl's `list`).
        let reasons: serde_json::Map<String, serde_json::Value> = pg
            .pending_restart
            .iter()
            .map(|p| {
                let reason = match pg.pending_restart_values.get(p) {
                    Some((old, new)) => serde_json::json!({"old_value": old, "new_value": new}),
                    None => serde_json::json!({}),
                };
                (p.clone(), reason)
            })
            .collect();
        d.extra
            .insert("pending_restart_reason".into(), reasons.into());
    }
    if paused {
        d.pause = Some(true);
    }
    d
}
