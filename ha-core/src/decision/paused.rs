//! Maintenance mode (`pause` in the config): no automatic action, but what an operator asks for still runs, as in
//! Patroni: a restart (which starts a stopped server), a reinitialization, and a switchover to a named candidate.
//!
//! - The leader keeps its lock while its PostgreSQL runs. A leader whose PostgreSQL is stopped removes its leader
//!   key (Patroni: "removed leader lock because postgres is not running"), so `resume` finds a cluster without a
//!   leader and the usual election runs, instead of a lock held over nothing.
//! - A running primary without a leader takes the free lock; nothing else races.
//! - A running replica follows the current leader (its `primary_conninfo` is changed), and is rewound first when it
//!   wrote past the point where the leader's timeline forked; a stopped one stays stopped.
//! - A switchover (the REST API only accepts one with a candidate while paused): the leader stops cleanly, releases
//!   the lock and starts again as a standby (Patroni's graceful demote); the candidate takes the lock and promotes.

use super::leader::{leader_duties, with_note};
use super::switchover::{self, LeaderPlan};
use super::{upstream_of, Action, Decision, Observation};
use crate::model::{Cluster, GlobalConfig};
use crate::pg::{PgRunState, StopMode};

pub(super) fn paused(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    i_am_leader: bool,
) -> Decision {
    if i_am_leader {
        paused_leader(obs, cluster, cfg)
    } else {
        paused_other(obs, cluster, cfg)
    }
}

fn paused_leader(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    let restart = obs.local.requests.restart;
    if matches!(pg.state(), PgRunState::Stopped | PgRunState::Crashed) && !restart {
        return Decision::new(
            vec![Action::ForgetLease, Action::ReleaseLock],
            format!("PAUSE: removed leader lock because postgres is not running ({me})"),
        );
    }
    let mut actions = vec![Action::RenewLock];
    if pg.is_primary() {
        if let Some(req) = cluster.pending_failover() {
            match switchover::leader_plan(me, pg, cluster, req, cfg, obs.unix_ms) {
                LeaderPlan::HandOver {
                    actions: more,
                    reason,
                } => {
                    actions.extend(more);
                    // Patroni's graceful demote: the old primary comes back as a standby at once, even paused.
                    actions.push(Action::StartReplica(None));
                    return Decision::new(actions, format!("PAUSE: {reason}")).then_rerun();
                }
                LeaderPlan::Reject {
                    actions: more,
                    reason,
                } => {
                    actions.extend(more);
                    return Decision::new(actions, format!("PAUSE: {reason}"));
                }
                LeaderPlan::Wait(_) => {}
            }
        }
    }
    if restart {
        actions.push(Action::Restart);
        return Decision::new(
            actions,
            format!("PAUSE: restarting PostgreSQL on {me}, the leader, as requested"),
        );
    }
    // Position, system identifier, timeline history, synchronous standbys: a paused leader still manages them,
    // so a former primary can tell whether it must be rewound and commits keep their synchronous standbys.
    let note = if pg.is_primary() {
        leader_duties(obs, cluster, cfg, &mut actions)
    } else {
        None
    };
    with_note(
        Decision::new(
            actions,
            format!("PAUSE: no action. I am ({me}), the leader with the lock"),
        ),
        note,
    )
}

fn paused_other(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    let leader = cluster.leader_name().and_then(|l| cluster.member(l));
    let leader_up = leader.and_then(upstream_of);
    if obs.local.requests.reinitialize {
        if let Some(up) = &leader_up {
            return Decision::new(
                vec![
                    Action::Stop(StopMode::Fast),
                    Action::Reinitialize(up.clone()),
                    Action::StartReplica(Some(up.clone())),
                ],
                format!("PAUSE: reinitializing {me} from {} as requested", up.name),
            );
        }
    }
    if obs.local.requests.restart {
        return Decision::new(
            vec![Action::Restart],
            format!("PAUSE: restarting PostgreSQL on {me} as requested"),
        );
    }
    if cluster.leader.is_none() {
        if pg.is_primary() {
            return Decision::new(
                vec![Action::AcquireLock],
                format!("PAUSE: acquired session lock as a leader ({me})"),
            );
        }
        if let Some(req) = cluster.pending_failover() {
            let f = &req.value;
            if pg.is_replica()
                && f.member.as_deref() == Some(me.as_str())
                && f.scheduled_at.is_none()
            {
                let mut actions = vec![
                    Action::AcquireLock,
                    Action::ClearFailover {
                        version: req.version,
                    },
                ];
                actions.extend(super::sync::prepromote(obs, cluster, cfg));
                actions.push(Action::Promote);
                return Decision::new(
                    actions,
                    format!("PAUSE: promoted self ({me}) to leader by acquiring session lock: the switchover candidate"),
                );
            }
        }
        return Decision::none(format!("PAUSE: no action. I am ({me}), not the leader"));
    }
    if pg.is_replica() {
        // A former primary that wrote past the point where the new leader's timeline forked (its shutdown
        // checkpoint, when the candidate had not streamed it) cannot stream: Patroni rewinds it even paused.
        let past_fork = leader.and_then(|l| {
            let end = cluster.timeline_end_lsn(pg.timeline)?;
            (pg.timeline > 0 && pg.timeline < l.timeline().max(cluster.timeline()) && pg.lsn > end)
                .then_some(end)
        });
        if let (Some(end), Some(up)) = (past_fork, &leader_up) {
            let why = format!(
                "local WAL reaches {} past the end of timeline {} ({end}) in the leader's history",
                pg.lsn, pg.timeline
            );
            if !obs.local.use_pg_rewind(cfg) {
                return Decision::none(format!(
                    "PAUSE: {me} cannot follow {}: {why}; use_pg_rewind is off",
                    up.name
                ));
            }
            return Decision::new(
                vec![
                    Action::Stop(StopMode::Fast),
                    Action::Rewind(up.clone()),
                    Action::StartReplica(Some(up.clone())),
                ],
                format!("PAUSE: rewinding {me} from {}: {why}", up.name),
            );
        }
        if let Some(up) = leader_up {
            let same_timeline =
                leader.map_or(true, |l| l.timeline() == 0 || pg.timeline <= l.timeline());
            if pg.upstream.as_deref() != Some(up.name.as_str()) && same_timeline {
                let name = up.name.clone();
                return Decision::new(
                    vec![Action::Follow(up)],
                    format!("PAUSE: {me} follows the leader {name}"),
                );
            }
        }
    }
    Decision::none(format!("PAUSE: no action. I am ({me}), not the leader"))
}
