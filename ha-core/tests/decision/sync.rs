//! Synchronous replication: the leader's steps (the `sync` key and `synchronous_standby_names`, one per loop, in
//! the order that keeps every acknowledged commit on an electable node) and the election it restricts.

use ha_core::decision::sync::STRICT_PLACEHOLDER;
use ha_core::decision::Action;
use ha_core::model::{Cluster, Status, SyncState, Tags};

use crate::support::{
    case, check, cluster, leader_pg, leading, member, replica, sync_key, without_leader,
};

fn key(c: &mut Cluster, leader: &str, standbys: &str) {
    sync_key(c, leader, standbys, None)
}

fn sync_on(mut c: Cluster, strict: bool) -> Cluster {
    let cfg = &mut c.config.as_mut().unwrap().value;
    cfg.synchronous_mode = Some(true.into());
    cfg.synchronous_mode_strict = Some(strict);
    c
}

fn writes(standbys: &str) -> Action {
    Action::WriteSync {
        state: SyncState {
            leader: Some("node2".into()),
            sync_standby: (!standbys.is_empty()).then(|| standbys.into()),
            quorum: Some(0),
            ..Default::default()
        },
        version: Some(5),
    }
}

fn led_by_me(strict: bool) -> Cluster {
    let mut c = sync_on(cluster(), strict);
    leading(&mut c);
    c.status = Some(Status {
        optime: Some(1000),
        ..Default::default()
    });
    c
}

#[test]
fn the_leader_sets_up_synchronous_standbys_one_step_per_loop() {
    let fresh = led_by_me(false);
    let mut mine = led_by_me(false);
    key(&mut mine, "node2", "");
    let mut strict = led_by_me(true);
    key(&mut strict, "node2", "");
    let mut strict_names_node1 = led_by_me(true);
    key(&mut strict_names_node1, "node2", "node1");
    let mut names_node1 = led_by_me(false);
    key(&mut names_node1, "node2", "node1");
    let mut node1_nosync = mine.clone();
    node1_nosync.members[0] = member(
        "node1",
        "replica",
        "running",
        1000,
        2,
        Tags {
            nosync: Some(true),
            ..Default::default()
        },
    );
    check(vec![
        case(
            "a new leader first records itself in the sync key, naming nobody",
            fresh,
            leader_pg("", &[]),
            vec![
                Action::RenewLock,
                Action::WriteSync {
                    state: SyncState {
                        leader: Some("node2".into()),
                        quorum: Some(0),
                        ..Default::default()
                    },
                    version: None,
                },
            ],
            "takes over the sync key",
        ),
        case(
            "no standby and not strict: asynchronous, nothing to do",
            mine.clone(),
            leader_pg("", &[]),
            vec![Action::RenewLock],
            "the leader with the lock",
        ),
        case(
            "no standby and strict: commits wait for a name no standby has",
            strict,
            leader_pg("", &[]),
            vec![
                Action::RenewLock,
                Action::SetSyncStandbyNames(Some(STRICT_PLACEHOLDER.into())),
            ],
            "synchronous_mode_strict is requested",
        ),
        case(
            "strict, and the named standby is gone: the key keeps it and commits wait for it",
            strict_names_node1,
            leader_pg("\"node1\"", &[]),
            vec![Action::RenewLock],
            "Commits will be delayed",
        ),
        case(
            "a streaming standby is made synchronous in PostgreSQL first",
            mine.clone(),
            leader_pg("", &[("node1", "async", 1000), ("node3", "async", 900)]),
            vec![
                Action::RenewLock,
                Action::SetSyncStandbyNames(Some("\"node1\"".into())),
            ],
            "assigning synchronous standby status to [\"node1\"]",
        ),
        case(
            "then, once PostgreSQL reports it synchronous and caught up, the key names it",
            mine.clone(),
            leader_pg(
                "\"node1\"",
                &[("node1", "sync", 1000), ("node3", "async", 900)],
            ),
            vec![Action::RenewLock, writes("node1")],
            "assigned to [\"node1\"]",
        ),
        case(
            "a synchronous standby behind the published position is not named yet",
            mine.clone(),
            leader_pg("\"node1\"", &[("node1", "sync", 999)]),
            vec![Action::RenewLock],
            "the leader with the lock",
        ),
        case(
            "a named standby that disconnected leaves the key before anything else changes",
            names_node1,
            leader_pg("\"node1\"", &[("node3", "async", 900)]),
            vec![Action::RenewLock, writes("")],
            "temporarily from [\"node1\"] to []",
        ),
        case(
            "a standby tagged nosync is never picked",
            node1_nosync,
            leader_pg("", &[("node1", "async", 1000), ("node3", "async", 900)]),
            vec![
                Action::RenewLock,
                Action::SetSyncStandbyNames(Some("\"node3\"".into())),
            ],
            "[\"node3\"]",
        ),
    ]);
}

#[test]
fn only_a_synchronous_standby_may_be_elected() {
    let mut names_node3 = sync_on(without_leader(cluster()), false);
    key(&mut names_node3, "node1", "node3");
    let mut names_me = sync_on(without_leader(cluster()), false);
    key(&mut names_me, "node1", "node2");
    let mut empty_key = sync_on(without_leader(cluster()), false);
    empty_key.sync = None;
    let mut strict_names_me = sync_on(without_leader(cluster()), true);
    key(&mut strict_names_me, "node1", "node2,node3");
    // Before it accepts a write, the new leader records itself in the key and sets its standbys.
    let prepromote = |version: Option<u64>, keep: Option<&str>, names: &str| {
        vec![
            Action::AcquireLock,
            Action::WriteSync {
                state: SyncState {
                    leader: Some("node2".into()),
                    sync_standby: keep.map(Into::into),
                    quorum: Some(0),
                    ..Default::default()
                },
                version,
            },
            Action::SetSyncStandbyNames(Some(names.into())),
            Action::Promote,
        ]
    };
    check(vec![
        case(
            "the sync key names another standby: this one does not race, however far along",
            names_node3,
            replica(1000, "node1"),
            vec![],
            "not a synchronous standby",
        ),
        case(
            "the sync key names this standby: it takes the lock, takes over the key asynchronously, promotes",
            names_me,
            replica(1000, "node1"),
            prepromote(Some(5), None, ""),
            "promoted self",
        ),
        case(
            "strict: the new leader keeps the old leader and the other standby synchronous before promoting",
            strict_names_me,
            replica(1000, "node1"),
            prepromote(Some(5), Some("node1,node3"), "2 (\"node1\",\"node3\")"),
            "promoted self",
        ),
        case(
            "before the leader set synchronous replication up, any node may be elected",
            empty_key,
            replica(1000, "node1"),
            prepromote(None, None, ""),
            "promoted self",
        ),
    ]);
}

/// A multi-loop change does not wait a loop_wait between its steps where nothing has to be observed first: once the
/// key stops naming a standby that left, `synchronous_standby_names` moves on in a loop run at once (after a
/// failover in strict mode, the commits wait for exactly that). The step that renames waits for PostgreSQL to
/// report the new standby synchronous, so it does not hurry the next loop.
#[test]
fn after_the_key_lets_a_standby_go_the_next_step_follows_at_once() {
    use crate::support::{decide_with, local, me};
    let mut names_node1 = led_by_me(true);
    key(&mut names_node1, "node2", "node1");
    let gone = leader_pg("\"node1\"", &[("node3", "async", 900)]);
    let d = decide_with(&me(Tags::default()), Ok(&names_node1), &gone, &local());
    assert_eq!(
        d.actions,
        vec![Action::RenewLock, writes("")],
        "{}",
        d.reason
    );
    assert!(d.rerun_now, "{}", d.reason);

    let mut names_nobody = led_by_me(true);
    key(&mut names_nobody, "node2", "");
    let d = decide_with(&me(Tags::default()), Ok(&names_nobody), &gone, &local());
    assert_eq!(
        d.actions,
        vec![
            Action::RenewLock,
            Action::SetSyncStandbyNames(Some("\"node3\"".into()))
        ],
        "{}",
        d.reason
    );
    assert!(!d.rerun_now, "{}", d.reason);
}
