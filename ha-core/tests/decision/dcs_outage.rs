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
        accepted_leader: None,
    };
    let d = decide_with(&id, Err(&err), &primary(1000), &l);
    assert_eq!(
        d.actions,
        vec![Action::ExtendLeaseByFailsafe { confirmed_at: NOW }],
        "{}",
        d.reason
    );

    // Without every member's confirmation it rides out its lease, then demotes like everyone else.
    l.failsafe.confirmed_at = None;
    assert!(decide_with(&id, Err(&err), &primary(1000), &l)
        .actions
        .is_empty());

    let mut no_leader = without_leader(cluster());
    no_leader.config.as_mut().unwrap().value.failsafe_mode = Some(true);
    no_leader.failsafe = Some(BTreeMap::from([
        ("node1".to_string(), "http://node1:8008/patroni".to_string()),
        ("node2".into(), "x".into()),
    ]));
    let promised = LocalState {
        failsafe: FailsafeInput {
            confirmed_at: None,
            accepted_leader: Some(("node1".into(), Millis(NOW.0 + 1))),
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
