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

#[test]
fn the_leader_publishes_its_own_timeline_history_replacing_another_branchs() {
    use ha_core::model::HistoryEntry;
    use ha_core::pg::TimelineSwitch;
    let mut lead = cluster();
    leading(&mut lead);
    // The key says timeline 2 ended at 1000 (written by the leader of another branch); this leader's own server
    // left timeline 2 at 900 and runs on timeline 3.
    lead.history.as_mut().unwrap().value = vec![
        HistoryEntry::new(1, 600, "kept", "t0", "node1"),
        HistoryEntry::new(2, 1000, "", "", "node1"),
    ];
    let own = PgObservation {
        timeline: 3,
        history: vec![
            TimelineSwitch {
                timeline: 1,
                lsn: 600,
            },
            TimelineSwitch {
                timeline: 2,
                lsn: 900,
            },
        ],
        ..primary(1200)
    };
    let d = crate::support::run(&lead, &own);
    let written = d.actions.iter().find_map(|a| match a {
        Action::WriteHistory { history, .. } => Some(history.clone()),
        _ => None,
    });
    let written = written.expect("the disagreeing key is rewritten");
    assert_eq!(written.len(), 2);
    assert_eq!(
        written[0],
        HistoryEntry::new(1, 600, "kept", "t0", "node1"),
        "an agreeing entry is kept as it was"
    );
    assert_eq!(
        (written[1].timeline(), written[1].lsn()),
        (Some(2), Some(900))
    );
    assert_eq!(lead.timeline_end_lsn(2), Some(1000));

    // A key that agrees is left alone; one that is a prefix is extended.
    let mut agreeing = lead.clone();
    agreeing.history.as_mut().unwrap().value = written.clone();
    assert!(!crate::support::run(&agreeing, &own)
        .actions
        .iter()
        .any(|a| matches!(a, Action::WriteHistory { .. })));
    let mut prefix = lead.clone();
    prefix.history.as_mut().unwrap().value.truncate(1);
    assert!(crate::support::run(&prefix, &own)
        .actions
        .iter()
        .any(|a| matches!(a, Action::WriteHistory { history, .. } if history.len() == 2)));

    // max_timelines_history keeps the latest switches only, and a key so trimmed agrees.
    let mut trimmed = prefix.clone();
    trimmed
        .config
        .as_mut()
        .unwrap()
        .value
        .extra
        .insert("max_timelines_history".into(), 1.into());
    let d = crate::support::run(&trimmed, &own);
    let one = d.actions.iter().find_map(|a| match a {
        Action::WriteHistory { history, .. } => Some(history.clone()),
        _ => None,
    });
    let one = one.expect("trimmed to one entry");
    assert_eq!(one.len(), 1);
    assert_eq!((one[0].timeline(), one[0].lsn()), (Some(2), Some(900)));
    trimmed.history.as_mut().unwrap().value = one;
    assert!(!crate::support::run(&trimmed, &own)
        .actions
        .iter()
        .any(|a| matches!(a, Action::WriteHistory { .. })));

    // A history file of a later timeline than the server's is not its lineage: nothing is written from it.
    let foreign = PgObservation {
        timeline: 2,
        ..own.clone()
    };
    assert!(!crate::support::run(&lead, &foreign)
        .actions
        .iter()
        .any(|a| matches!(a, Action::WriteHistory { .. })));
}
