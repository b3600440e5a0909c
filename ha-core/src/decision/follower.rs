//! Another node holds the leader lock: demote a primary at once, rejoin the leader (as it is, or after a rewind or a
//! reinitialization when the timelines diverged), and stream from the leader or the member `replicatefrom` names.

use super::rejoin::{self, DivergedPlan, Rejoin};
use super::{upstream_of, Action, Decision, Observation};
use crate::model::{Cluster, GlobalConfig};
use crate::pg::{PgRunState, StopMode, Upstream};

pub(super) fn as_follower(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    leader: &str,
) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    if pg.is_primary()
        || (pg.state() == PgRunState::Starting
            && !pg.in_recovery
            && obs.local.lease_deadline.is_some())
    {
        return Decision::new(
            vec![
                super::stop_primary(cfg, StopMode::Fast),
                Action::ForgetLease,
            ],
            format!(
                "demoting self because {leader} holds the leader lock and I ({me}) was a primary"
            ),
        )
        .then_rerun();
    }
    let mut forget = Vec::new();
    if obs.local.lease_deadline.is_some() {
        forget.push(Action::ForgetLease);
    }
    let Some(leader_member) = cluster.member(leader) else {
        return Decision::new(
            forget,
            format!("the leader {leader} has no member key yet; waiting"),
        );
    };
    let Some(up) = upstream_of(leader_member) else {
        return Decision::new(
            forget,
            format!("the leader {leader} publishes no conn_url; waiting"),
        );
    };
    // A replicatefrom tag names an intermediate upstream when that member runs.
    let desired = obs
        .me
        .tags
        .replicatefrom
        .as_deref()
        .and_then(|n| cluster.member(n))
        .filter(|m| m.name != *me && m.is_running())
        .and_then(upstream_of)
        .unwrap_or_else(|| up.clone());
    let mut actions = forget;
    if obs.local.requests.reinitialize {
        actions.extend([
            Action::Stop(StopMode::Fast),
            Action::Reinitialize(up.clone()),
            Action::StartReplica(Some(desired)),
        ]);
        return Decision::new(
            actions,
            format!("reinitializing {me} from {leader} as requested"),
        );
    }
    match pg.state() {
        PgRunState::Stopped | PgRunState::Crashed => {
            let verdict = rejoin::check(
                pg,
                &rejoin::LeaderHistory {
                    cluster,
                    leader: leader_member,
                },
            );
            start_to_follow(obs, cfg, verdict, &up, desired, leader, actions)
        }
        PgRunState::Starting => {
            Decision::new(actions, format!("waiting for PostgreSQL on {me} to start"))
        }
        _ => {
            match if crate::mutants::active(crate::mutants::PlantedBug::LeaveDivergedStandbyRunning)
            {
                Rejoin::Follow
            } else {
                rejoin::check_running(
                    pg,
                    &rejoin::LeaderHistory {
                        cluster,
                        leader: leader_member,
                    },
                )
            } {
                Rejoin::Diverged(why) => stop_to_rejoin(obs, cfg, &why, leader, actions),
                _ if pg.upstream.as_deref() != Some(desired.name.as_str()) => {
                    let name = desired.name.clone();
                    actions.push(Action::Follow(desired));
                    Decision::new(
                        actions,
                        format!("following new leader {leader} (streaming from {name})"),
                    )
                }
                _ => Decision::new(
                    actions,
                    format!(
                        "no action. I am ({me}), a secondary, and following a leader ({leader})"
                    ),
                ),
            }
        }
    }
}

/// A stopped node about to stream from `up` (`whom` in the reasons): started as it is when the verdict lets it
/// follow, else by the diverged plan (rewind, reinitialize, or keep the data and start read-only).
pub(super) fn start_to_follow(
    obs: &Observation,
    cfg: &GlobalConfig,
    verdict: Rejoin,
    up: &Upstream,
    desired: Upstream,
    whom: &str,
    mut actions: Vec<Action>,
) -> Decision {
    let me = &obs.me.name;
    let why = match verdict {
        Rejoin::Follow => {
            actions.push(Action::StartReplica(Some(desired)));
            return Decision::new(actions, format!("starting {me} as a secondary of {whom}"));
        }
        Rejoin::Diverged(why) => why,
    };
    match rejoin::diverged_plan(obs.local, cfg) {
        DivergedPlan::Rewind => {
            actions.extend([
                Action::Rewind(up.clone()),
                Action::StartReplica(Some(desired)),
            ]);
            Decision::new(actions, format!("rewinding {me} from {whom}: {why}"))
        }
        DivergedPlan::Reinitialize(allowed) => {
            actions.extend([
                Action::Reinitialize(up.clone()),
                Action::StartReplica(Some(desired)),
            ]);
            Decision::new(
                actions,
                format!("reinitializing {me} from {whom} ({allowed}): {why}"),
            )
        }
        DivergedPlan::Keep(because) => {
            // As Patroni: started as a standby, read-only; PostgreSQL refuses to stream the diverged timeline, so
            // it waits for the operator.
            actions.push(Action::StartReplica(Some(desired)));
            Decision::warning(
                actions,
                format!("{me} diverged from {whom} ({why}); {because}: starting it read-only"),
            )
        }
    }
}

/// A running standby found diverged from `whom`: stopped, so the next loop rewinds or reinitializes it, unless it
/// may not be wiped or rewound (then left running read-only, not stopped in a loop).
pub(super) fn stop_to_rejoin(
    obs: &Observation,
    cfg: &GlobalConfig,
    why: &str,
    whom: &str,
    mut actions: Vec<Action>,
) -> Decision {
    let me = &obs.me.name;
    match rejoin::diverged_plan(obs.local, cfg) {
        DivergedPlan::Keep(because) => Decision::warning(
            actions,
            format!("{me} diverged from {whom} ({why}); {because}: left running read-only"),
        ),
        _ => {
            actions.push(Action::Stop(StopMode::Fast));
            Decision::new(actions, format!("stopping {me} to rejoin {whom}: {why}")).then_rerun()
        }
    }
}
