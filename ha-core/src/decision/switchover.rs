//! A switchover or manual failover request (`failover` key), seen from the leader and from the others.
//!
//! The lifecycle: an operator writes the key; at `scheduled_at` (or at once) the leader checks the candidate, stops
//! PostgreSQL cleanly (so streaming replicas receive everything) and releases the lock; the others leave the race to
//! a healthy candidate; the new leader clears the key after it took the lock. A request the leader cannot honour is
//! cleared with the reason logged, so it never lingers.

use std::collections::BTreeMap;

use crate::driver::PeerStatus;
use crate::model::{Cluster, Failover, GlobalConfig, Member, Role, Versioned};
use crate::pg::PgObservation;

use super::action::Action;
use crate::pg::StopMode;

/// What the leader does about a pending request.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaderPlan {
    /// Nothing now (scheduled for later); the text says when.
    Wait(String),
    /// Demote in favour of the candidate.
    HandOver {
        /// Write `status`, stop PostgreSQL cleanly, forget the lease and release the lock.
        actions: Vec<Action>,
        /// For the log: whom the leader hands over to.
        reason: String,
    },
    /// The request cannot be honoured: clear it.
    Reject {
        /// Clear the `failover` key.
        actions: Vec<Action>,
        /// For the log: why the request cannot be honoured.
        reason: String,
    },
}

/// Could `m` take over from a leader at `leader_lsn`? In synchronous mode (`on`) only a standby the `sync` key
/// names may (Patroni: "candidate does not match with sync_standbys"): the others may lack acknowledged commits,
/// and the election would refuse them anyway, leaving the cluster waiting for a candidate that never races.
pub fn viable_candidate(
    m: &Member,
    leader_lsn: u64,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> Result<(), String> {
    if m.tags().nofailover() {
        return Err(format!("{} is tagged nofailover", m.name));
    }
    if !super::election::sync_eligible(&m.name, cluster, cfg) {
        return Err(format!(
            "{} does not match with sync_standbys ({})",
            m.name,
            cluster
                .sync
                .as_ref()
                .and_then(|s| s.value.sync_standby.clone())
                .unwrap_or_default()
        ));
    }
    if !m.is_running() || m.role() != Some(Role::Replica) {
        return Err(format!("{} is not a running replica", m.name));
    }
    let lag = leader_lsn.saturating_sub(m.lsn());
    if lag > cfg.maximum_lag_on_failover() {
        return Err(format!(
            "{} lags {lag} bytes, over maximum_lag_on_failover",
            m.name
        ));
    }
    Ok(())
}

/// Seen from the leader `me`, whose PostgreSQL is `pg`: what to do about `request` at wall-clock `unix_ms`. A request
/// naming another leader, naming `me` as the candidate, with an unparsable `scheduled_at` or a candidate that is not
/// viable is rejected; one scheduled later waits; otherwise the leader hands over to the named candidate or, when
/// none is named, to the first viable replica.
pub fn leader_plan(
    me: &str,
    pg: &PgObservation,
    cluster: &Cluster,
    request: &Versioned<Failover>,
    cfg: &GlobalConfig,
    unix_ms: i64,
) -> LeaderPlan {
    let f = &request.value;
    let clear = vec![Action::ClearFailover {
        version: request.version,
    }];
    if let Some(leader) = &f.leader {
        if leader != me {
            return LeaderPlan::Reject {
                actions: clear,
                reason: format!(
                    "switchover request names {leader} as the leader, but I ({me}) am: cleared it"
                ),
            };
        }
    }
    if f.member.as_deref() == Some(me) {
        return LeaderPlan::Reject {
            actions: clear,
            reason: format!("switchover to {me}, already the leader: cleared it"),
        };
    }
    match f.scheduled_at_unix_ms() {
        Some(Err(e)) => {
            return LeaderPlan::Reject {
                actions: clear,
                reason: format!("switchover request rejected: {e}"),
            };
        }
        Some(Ok(at)) if at > unix_ms => {
            return LeaderPlan::Wait(format!(
                "switchover scheduled at {} ({} s from now)",
                f.scheduled_at.as_deref().unwrap_or(""),
                (at - unix_ms) / 1000
            ));
        }
        _ => {}
    }
    let candidate = match &f.member {
        Some(name) => match cluster.member(name) {
            None => {
                return LeaderPlan::Reject {
                    actions: clear,
                    reason: format!("switchover to {name} rejected: no such member"),
                }
            }
            Some(m) => match viable_candidate(m, pg.lsn, cluster, cfg) {
                Ok(()) => name.clone(),
                Err(why) => {
                    return LeaderPlan::Reject {
                        actions: clear,
                        reason: format!("switchover rejected: {why}"),
                    }
                }
            },
        },
        None => match cluster
            .members
            .iter()
            .find(|m| m.name != me && viable_candidate(m, pg.lsn, cluster, cfg).is_ok())
        {
            Some(m) => m.name.clone(),
            None => {
                return LeaderPlan::Reject {
                    actions: clear,
                    reason: "switchover rejected: no healthy replica to take over".to_string(),
                }
            }
        },
    };
    LeaderPlan::HandOver {
        actions: vec![
            Action::WriteStatus {
                optime: pg.lsn,
                slots: cluster.status.as_ref().and_then(|s| s.slots.clone()),
                retain_slots: cluster.status.as_ref().and_then(|s| s.retain_slots.clone()),
            },
            super::stop_primary(cfg, StopMode::Fast),
            Action::ForgetLease,
            Action::ReleaseLock,
        ],
        reason: format!(
            "switchover: stopping PostgreSQL cleanly and releasing the lock for {candidate}"
        ),
    }
}

/// Seen from a node without the lock while no leader exists: who should race, given a pending request?
#[derive(Debug, Clone, PartialEq)]
pub enum NoLeaderPlan {
    /// No request applies: the normal race.
    NormalRace,
    /// This node is the named candidate: race without comparing with the others.
    CandidateRace,
    /// Stay out of the race; the text says for whom.
    StandAside(String),
}

/// Seen from `me`, a node without the lock while no leader exists: whether the pending request, if any, makes it race
/// alone, stand aside or race as usual. A named candidate that is missing, not viable, barred from racing by the
/// `failsafe` key or (quorum mode) without a quorum's votes is not waited for.
///
/// `live`: the members' positions as they answered just now (this node's included), when the driver asked (quorum
/// mode); the candidate's votes are counted from them.
pub fn no_leader_plan(
    me: &str,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    live: Option<&BTreeMap<String, PeerStatus>>,
) -> NoLeaderPlan {
    let Some(req) = cluster.pending_failover() else {
        return NoLeaderPlan::NormalRace;
    };
    // In failsafe mode a member missing from a non-empty failsafe key may not race, so it is no candidate.
    let may_race = |name: &str| match cluster
        .failsafe
        .as_ref()
        .filter(|fs| !fs.is_empty() && cfg.failsafe_mode())
    {
        Some(fs) => fs.contains_key(name),
        None => true,
    };
    let f = &req.value;
    let leader_lsn = cluster.last_leader_lsn().unwrap_or(0);
    match &f.member {
        Some(c) if c == me => NoLeaderPlan::CandidateRace,
        // In quorum mode a candidate without a quorum's votes will not race: the others do not wait for it.
        Some(c) => match cluster.member(c) {
            Some(m)
                if may_race(c)
                    && viable_candidate(m, leader_lsn, cluster, cfg).is_ok()
                    && super::quorum::candidate_has_votes(c, m.lsn(), cluster, cfg, live) =>
            {
                NoLeaderPlan::StandAside(format!(
                    "waiting for the switchover candidate {c} to take the lock"
                ))
            }
            _ => NoLeaderPlan::NormalRace,
        },
        None => {
            let someone_else = cluster.members.iter().any(|m| {
                m.name != me
                    && may_race(&m.name)
                    && viable_candidate(m, leader_lsn, cluster, cfg).is_ok()
            });
            if f.leader.as_deref() == Some(me) && someone_else {
                NoLeaderPlan::StandAside(format!(
                    "I ({me}) was switched over away from: leaving the race to the others"
                ))
            } else {
                NoLeaderPlan::NormalRace
            }
        }
    }
}
