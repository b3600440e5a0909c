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

#[test]
fn a_leader_writes_its_bootstrap_config_only_into_an_absent_key_never_over_an_unreadable_one() {
    let mut absent = cluster();
    leading(&mut absent);
    absent.config = None;
    let d = crate::support::run(&absent, &primary(1000));
    assert!(
        d.actions.contains(&Action::WriteBootstrapConfig),
        "{:?}",
        d.actions
    );

    // An operator's typo in `config`: the key is there (version 12) but is no configuration.
    let mut unreadable = absent.clone();
    unreadable.config_unparsable = Some(12);
    let d = crate::support::run(&unreadable, &primary(1000));
    assert!(
        !d.actions.contains(&Action::WriteBootstrapConfig),
        "{:?}",
        d.actions
    );
    assert!(d.actions.contains(&Action::RenewLock), "{:?}", d.actions);
}
