//! Maintenance mode: no automatic action.

use ha_core::decision::Action;
use ha_core::model::{Cluster, Status};
use ha_core::pg::{PgObservation, PgRunState};

use crate::support::{case, check, cluster, leading, primary, replica, without_leader};

#[test]
fn pause_mode_takes_no_automatic_action() {
    let paused = |mut c: Cluster| {
        c.config.as_mut().unwrap().value.pause = Some(true);
        c
    };
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
            "paused leader with a crashed PostgreSQL does not restart it",
            lead,
            PgObservation {
                run_state: Some(PgRunState::Crashed),
                ..primary(1000)
            },
            vec![Action::RenewLock],
            "PAUSE",
        ),
        case(
            "paused replica never promotes",
            paused(without_leader(cluster())),
            replica(1000, "node1"),
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
    ]);
}
