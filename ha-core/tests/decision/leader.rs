//! This node holds the lock: renew it, restart or promote PostgreSQL, publish what changed.

use ha_core::decision::Action;
use ha_core::model::Status;
use ha_core::pg::{PgObservation, PgRunState};

use crate::support::{case, check, cluster, leading, primary, replica};

#[test]
fn leader_lock_renew_and_duties() {
    let mut lead = cluster();
    leading(&mut lead);
    let mut fresh = lead.clone();
    fresh.status = Some(Status {
        optime: Some(1200),
        ..Default::default()
    });
    check(vec![
        case(
            "healthy leader renews and publishes its position",
            lead.clone(),
            primary(1200),
            vec![
                Action::RenewLock,
                Action::WriteStatus {
                    optime: 1200,
                    slots: None,
                    retain_slots: None,
                },
            ],
            "the leader with the lock",
        ),
        case(
            "unchanged position is not rewritten",
            fresh,
            primary(1200),
            vec![Action::RenewLock],
            "the leader with the lock",
        ),
        case(
            "leader whose PostgreSQL crashed restarts it in place",
            lead.clone(),
            PgObservation {
                run_state: Some(PgRunState::Crashed),
                ..primary(1200)
            },
            vec![Action::RenewLock, Action::StartPrimary],
            "starting PostgreSQL as primary",
        ),
        case(
            "lock holder still in recovery promotes",
            lead,
            replica(1000, "node1"),
            vec![Action::RenewLock, Action::Promote],
            "promoting node2",
        ),
    ]);
}
