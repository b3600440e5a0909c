//! Maintenance mode: no automatic action, but what an operator asks for still runs, as in Patroni.

use ha_core::decision::{Action, LocalState, Requests};
use ha_core::model::{Cluster, Failover, Status, Versioned};
use ha_core::pg::{PgObservation, PgRunState, StopMode};

use crate::support::{
    case, check, cluster, leading, local, primary, replica, stopped, up, without_leader, Case,
};

fn paused(mut c: Cluster) -> Cluster {
    c.config.as_mut().unwrap().value.pause = Some(true);
    c
}

fn asked(restart: bool, reinitialize: bool) -> LocalState {
    LocalState {
        requests: Requests {
            restart,
            reinitialize,
        },
        ..local()
    }
}

fn switchover_to(c: &mut Cluster, leader: Option<&str>, candidate: &str) {
    c.failover = Some(Versioned {
        value: Failover {
            leader: leader.map(Into::into),
            member: Some(candidate.into()),
            ..Default::default()
        },
        version: 11,
    });
}

#[test]
fn pause_mode_takes_no_automatic_action() {
    let mut lead = paused(cluster());
    leading(&mut lead);
    lead.status = Some(Status {
        optime: Some(1000),
        ..Default::default()
    });
    check(vec![
        case(
            "paused leader only renews",
            lead.clone(),
            primary(1000),
            vec![Action::RenewLock],
            "PAUSE",
        ),
        case(
            "paused leader whose PostgreSQL crashed does not restart it and removes its leader key",
            lead,
            PgObservation {
                run_state: Some(PgRunState::Crashed),
                ..primary(1000)
            },
            vec![Action::ForgetLease, Action::ReleaseLock],
            "removed leader lock because postgres is not running",
        ),
        case(
            "paused replica never promotes",
            paused(without_leader(cluster())),
            replica(1000, "node1"),
            vec![],
            "PAUSE",
        ),
        case(
            "paused stopped replica stays stopped",
            paused(cluster()),
            stopped(1000, 2, true),
            vec![],
            "PAUSE",
        ),
        case(
            "paused running primary without a lock takes it",
            paused(without_leader(cluster())),
            primary(1000),
            vec![Action::AcquireLock],
            "PAUSE",
        ),
        case(
            "paused replica streaming from a former leader follows the current one",
            paused(cluster()),
            replica(1000, "node3"),
            vec![Action::Follow(up("node1"))],
            "follows the leader node1",
        ),
    ]);
}

#[test]
fn pause_mode_runs_what_the_operator_asks_for() {
    let mut lead = paused(cluster());
    leading(&mut lead);
    lead.status = Some(Status {
        optime: Some(1000),
        ..Default::default()
    });
    let mut handing_over = lead.clone();
    switchover_to(&mut handing_over, Some("node2"), "node1");
    let mut candidate = paused(without_leader(cluster()));
    switchover_to(&mut candidate, None, "node2");
    let mut not_candidate = paused(without_leader(cluster()));
    switchover_to(&mut not_candidate, None, "node3");
    check(vec![
        Case {
            local: asked(true, false),
            ..case(
                "a restart of a stopped replica starts it",
                paused(cluster()),
                stopped(1000, 2, true),
                vec![Action::Restart],
                "restarting PostgreSQL on node2 as requested",
            )
        },
        Case {
            local: asked(true, false),
            ..case(
                "a restart of the leader keeps its lock",
                lead.clone(),
                primary(1000),
                vec![Action::RenewLock, Action::Restart],
                "the leader, as requested",
            )
        },
        Case {
            local: asked(false, true),
            ..case(
                "a reinitialization clones the leader again",
                paused(cluster()),
                replica(1000, "node1"),
                vec![
                    Action::Stop(StopMode::Fast),
                    Action::Reinitialize(up("node1")),
                    Action::StartReplica(Some(up("node1"))),
                ],
                "reinitializing node2 from node1",
            )
        },
        case(
            "the paused leader hands over to the named candidate and comes back as a standby",
            handing_over,
            primary(1000),
            vec![
                Action::RenewLock,
                Action::WriteStatus {
                    optime: 1000,
                    slots: None,
                    retain_slots: None,
                },
                Action::Stop(StopMode::Fast),
                Action::ForgetLease,
                Action::ReleaseLock,
                Action::StartReplica(None),
            ],
            "switchover",
        ),
        case(
            "the candidate takes the free lock and promotes",
            candidate,
            replica(1000, "node1"),
            vec![
                Action::AcquireLock,
                Action::ClearFailover { version: 11 },
                Action::Promote,
            ],
            "switchover candidate",
        ),
        case(
            "a former primary that wrote past the new leader's fork point is rewound, even paused",
            paused(cluster()),
            PgObservation {
                timeline: 1,
                ..replica(700, "node1")
            },
            vec![
                Action::Stop(StopMode::Fast),
                Action::Rewind(up("node1")),
                Action::StartReplica(Some(up("node1"))),
            ],
            "rewinding node2 from node1",
        ),
        case(
            "a replica that is not the candidate does not race",
            not_candidate,
            replica(1000, "node1"),
            vec![],
            "not the leader",
        ),
    ]);
}
