//! The DCS is unreachable: a primary demotes before its lease could expire, unless failsafe mode confirms it.

use std::collections::BTreeMap;

use ha_core::dcs::DcsError;
use ha_core::decision::{Action, FailsafeInput, LocalState};
use ha_core::model::Tags;
use ha_core::pg::StopMode;
use ha_core::time::Millis;

use crate::support::{cluster, decide_with, local, me, primary, replica, without_leader, NOW};

#[test]
fn dcs_unreachable_primary_demotes_before_its_lease_could_expire() {
    let err = DcsError::Unreachable("connection refused".into());
    let id = me(Tags::default());
    let pg = primary(1000);
    let lease = |until: u64| LocalState {
        lease_deadline: Some(Millis(until)),
        ..local()
    };

    let d = decide_with(&id, Err(&err), &pg, &lease(NOW.0 + 5_000));
    assert!(
        d.actions.is_empty() && d.reason.contains("still the primary for 5000 ms"),
        "{d:?}"
    );

    let d = decide_with(&id, Err(&err), &pg, &lease(NOW.0));
    assert_eq!(
        d.actions,
        vec![Action::Stop(StopMode::Immediate), Action::ForgetLease],
        "{}",
        d.reason
    );

    let d = decide_with(&id, Err(&err), &replica(1000, "node1"), &local());
    assert!(d.actions.is_empty() && d.reason.contains("no action as a secondary"));
}

#[test]
fn failsafe_mode_keeps_a_confirmed_primary_and_holds_replicas_back() {
    let err = DcsError::Unreachable("timeout".into());
    let id = me(Tags::default());
    let mut l = LocalState {
        lease_deadline: Some(Millis(NOW.0 + 1_000)),
        ..local()
    };
    l.last_config.failsafe_mode = Some(true);
    l.failsafe = FailsafeInput {
        confirmed_at: Some(NOW),
        ..Default::default()
    };
    let d = decide_with(&id, Err(&err), &primary(1000), &l);
    assert_eq!(
        d.actions,
        vec![Action::ExtendLeaseByFailsafe { confirmed_at: NOW }],
        "{}",
        d.reason
    );

    // Without every member's confirmation failsafe mode ends at once, as Patroni's does: a clean stop while the
    // lease still holds (without failsafe mode the same primary rides out its lease: the test above).
    l.failsafe.confirmed_at = None;
    let d = decide_with(&id, Err(&err), &primary(1000), &l);
    assert_eq!(
        d.actions,
        vec![
            Action::Stop(StopMode::Fast),
            Action::ForgetLease,
            Action::StartReplica(None)
        ],
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("not every failsafe member accepts me"),
        "{}",
        d.reason
    );

    let mut no_leader = without_leader(cluster());
    no_leader.config.as_mut().unwrap().value.failsafe_mode = Some(true);
    no_leader.failsafe = Some(BTreeMap::from([
        ("node1".to_string(), "http://node1:8008/patroni".to_string()),
        ("node2".into(), "x".into()),
    ]));
    let promised = LocalState {
        failsafe: FailsafeInput {
            accepted_leader: Some(("node1".into(), Millis(NOW.0 + 1))),
            ..Default::default()
        },
        ..local()
    };
    let d = decide_with(&id, Ok(&no_leader), &replica(1000, "node1"), &promised);
    assert!(
        d.actions.is_empty() && d.reason.contains("failsafe: node1 asked"),
        "{d:?}"
    );

    // A daemon that just started cannot know what it promised before its restart: it sits out one ttl, unless its
    // embedder keeps promises across restarts (then the inbox above already holds any that still binds it).
    let just_started = LocalState {
        started_at: NOW,
        ..local()
    };
    let d = decide_with(&id, Ok(&no_leader), &replica(1000, "node1"), &just_started);
    assert!(
        d.actions.is_empty() && d.reason.contains("started less than ttl ago"),
        "{d:?}"
    );
    let kept = LocalState {
        failsafe_promises_kept: true,
        ..just_started
    };
    let d = decide_with(&id, Ok(&no_leader), &replica(1000, "node1"), &kept);
    assert!(d.actions.contains(&Action::AcquireLock), "{d:?}");

    let mut not_listed = no_leader.clone();
    not_listed.failsafe = Some(BTreeMap::from([("node1".to_string(), "x".to_string())]));
    let d = decide_with(&id, Ok(&not_listed), &replica(1000, "node1"), &local());
    assert!(
        d.actions.is_empty() && d.reason.contains("not in the failsafe member list"),
        "{d:?}"
    );
}

#[test]
fn failsafe_a_standby_moves_its_permanent_slots_to_the_positions_the_leader_sent() {
    use ha_core::model::SlotKind;
    use ha_core::pg::{LocalSlot, PgObservation, SlotPlan};
    let err = DcsError::Unreachable("timeout".into());
    let id = me(Tags::default());
    let mut l = local();
    l.last_config.failsafe_mode = Some(true);
    l.last_config.extra.insert(
        "slots".into(),
        serde_json::json!({"cdc": {"type": "logical", "database": "postgres", "plugin": "test_decoding"},
                           "keep_me": {"type": "physical"}}),
    );
    let slot = |name: &str, kind: SlotKind, lsn: u64| LocalSlot {
        name: name.into(),
        confirmed_flush_lsn: matches!(kind, SlotKind::Logical { .. }).then_some(lsn),
        kind,
        restart_lsn: Some(lsn),
        has_xmin: false,
        active: false,
        lost: false,
        managed: true,
    };
    let logical = SlotKind::Logical {
        database: "postgres".into(),
        plugin: "test_decoding".into(),
    };
    let pg = PgObservation {
        slots: Some(vec![
            slot("cdc", logical, 500),
            slot("keep_me", SlotKind::Physical, 400),
            slot("backup_tool", SlotKind::Physical, 100),
        ]),
        replay_lsn: Some(900),
        ..replica(1000, "node1")
    };
    l.failsafe = FailsafeInput {
        accepted_leader: Some(("node1".into(), Millis(NOW.0 + 5_000))),
        leader_slots: Some(BTreeMap::from([
            ("cdc".to_string(), 950),
            ("keep_me".to_string(), 700),
            ("backup_tool".to_string(), 800),
        ])),
        ..Default::default()
    };
    let d = decide_with(&id, Err(&err), &pg, &l);
    // The logical copy stops at what this standby replayed; a slot the configuration does not name is not touched,
    // and nothing is dropped or created without the DCS.
    assert_eq!(
        d.actions,
        vec![Action::SyncSlots(SlotPlan {
            advance: vec![
                ("cdc".into(), Some("postgres".into()), 900),
                ("keep_me".into(), None, 700)
            ],
            ..Default::default()
        })],
        "{}",
        d.reason
    );
    // Once the promise has run out, nothing moves.
    l.failsafe.accepted_leader = Some(("node1".into(), NOW));
    let d = decide_with(&id, Err(&err), &pg, &l);
    assert!(d.actions.is_empty(), "{d:?}");
}

#[test]
fn failsafe_the_leader_moves_the_slot_of_a_member_that_streams_from_another_member() {
    use ha_core::model::SlotKind;
    use ha_core::pg::{LocalSlot, PgObservation, SlotPlan};
    let err = DcsError::Unreachable("timeout".into());
    let id = me(Tags::default());
    let mut l = LocalState {
        lease_deadline: Some(Millis(NOW.0 + 1_000)),
        ..local()
    };
    l.last_config.failsafe_mode = Some(true);
    l.failsafe = FailsafeInput {
        confirmed_at: Some(NOW),
        member_lsns: BTreeMap::from([("node1".to_string(), 900), ("node3".to_string(), 800)]),
        ..Default::default()
    };
    let slot = |name: &str, restart: u64, active: bool| LocalSlot {
        name: name.into(),
        kind: SlotKind::Physical,
        restart_lsn: Some(restart),
        confirmed_flush_lsn: None,
        has_xmin: false,
        active,
        lost: false,
        managed: true,
    };
    // node1 streams from this leader (its slot is active and moves by itself); node3 cascades from node1.
    let pg = PgObservation {
        slots: Some(vec![slot("node1", 400, true), slot("node3", 500, false)]),
        ..primary(1000)
    };
    let d = decide_with(&id, Err(&err), &pg, &l);
    assert_eq!(
        d.actions,
        vec![
            Action::ExtendLeaseByFailsafe { confirmed_at: NOW },
            Action::SyncSlots(SlotPlan {
                advance: vec![("node3".into(), None, 800)],
                ..Default::default()
            })
        ],
        "{}",
        d.reason
    );
}
