//! Quorum commit in the decision: the leader's steps (`ANY n` and the `sync` key's quorum, in the order that keeps
//! every acknowledged commit on a node the election may choose) and the election's votes.

use ha_core::decision::sync::STRICT_PLACEHOLDER;
use ha_core::decision::Action;
use ha_core::model::{Cluster, Status, SyncState, Tags};
use ha_core::time::Millis;

use crate::support::{
    case, check, cluster, leader_pg, leading, local, member, replica, sync_key, without_leader,
    Case, NOW,
};

fn key(c: &mut Cluster, leader: &str, voters: &str, quorum: u64) {
    sync_key(c, leader, voters, Some(quorum))
}

fn quorum_mode(mut c: Cluster, node_count: usize, strict: bool) -> Cluster {
    let cfg = &mut c.config.as_mut().unwrap().value;
    cfg.synchronous_mode = Some("quorum".into());
    cfg.synchronous_mode_strict = Some(strict);
    cfg.extra
        .insert("synchronous_node_count".into(), node_count.into());
    c
}

fn led_by_me(node_count: usize, strict: bool) -> Cluster {
    let mut c = quorum_mode(cluster(), node_count, strict);
    leading(&mut c);
    c.status = Some(Status {
        optime: Some(1000),
        ..Default::default()
    });
    c
}

fn with_key(mut c: Cluster, voters: &str, quorum: u64) -> Cluster {
    key(&mut c, "node2", voters, quorum);
    c
}

fn writes(voters: &str, quorum: u64, version: Option<u64>) -> Action {
    Action::WriteSync {
        state: SyncState {
            leader: Some("node2".into()),
            sync_standby: (!voters.is_empty()).then(|| voters.into()),
            quorum: Some(quorum),
            ..Default::default()
        },
        version,
    }
}

fn ssn(value: &str) -> Action {
    Action::SetSyncStandbyNames(Some(value.into()))
}

#[test]
fn the_leader_moves_standbys_into_the_quorum_in_a_safe_order() {
    check(vec![
        case(
            "quorum mode starts by recording this leader in the sync key, quorum 0",
            led_by_me(1, false),
            leader_pg("", &[]),
            vec![Action::RenewLock, writes("", 0, None)],
            "Enabled synchronous replication",
        ),
        case(
            "a first standby is listed in ANY 1 before the key names it",
            with_key(led_by_me(1, false), "", 0),
            leader_pg("", &[("node1", "async", 1000)]),
            vec![Action::RenewLock, ssn("ANY 1 (\"node1\")")],
            "Assigning synchronous_standby_names to ANY 1 (\"node1\")",
        ),
        case(
            "listed, reported quorum and caught up with the published position: it becomes a voter",
            with_key(led_by_me(1, false), "", 0),
            leader_pg("ANY 1 (\"node1\")", &[("node1", "quorum", 1000)]),
            vec![Action::RenewLock, writes("node1", 0, Some(5))],
            "Setting leader to node2, quorum to 0 of (node1)",
        ),
        case(
            "listed but not yet caught up: nothing is written",
            with_key(led_by_me(1, false), "", 0),
            leader_pg("ANY 1 (\"node1\")", &[("node1", "quorum", 900)]),
            vec![Action::RenewLock],
            "the leader with the lock",
        ),
        case(
            "a second standby joins the voters (quorum 1) before ANY 1 lists it",
            with_key(led_by_me(1, false), "node1", 0),
            leader_pg(
                "ANY 1 (\"node1\")",
                &[("node1", "quorum", 1000), ("node3", "async", 900)],
            ),
            vec![
                Action::RenewLock,
                writes("node1,node3", 1, Some(5)),
                ssn("ANY 1 (\"node1\",\"node3\")"),
            ],
            "quorum to 1 of (node1, node3)",
        ),
        case(
            "synchronous_node_count 2: ANY 2 first, then the quorum lowered to 0",
            with_key(led_by_me(2, false), "node1,node3", 1),
            leader_pg(
                "ANY 1 (\"node1\",\"node3\")",
                &[("node1", "quorum", 1000), ("node3", "quorum", 1000)],
            ),
            vec![
                Action::RenewLock,
                ssn("ANY 2 (\"node1\",\"node3\")"),
                writes("node1,node3", 0, Some(5)),
            ],
            "quorum to 0 of (node1, node3)",
        ),
        case(
            "a voter stops streaming: the key drops it before ANY 1 does",
            with_key(led_by_me(1, false), "node1,node3", 1),
            leader_pg("ANY 1 (\"node1\",\"node3\")", &[("node1", "quorum", 1000)]),
            vec![
                Action::RenewLock,
                ssn("ANY 1 (\"node1\")"),
                writes("node1", 0, Some(5)),
            ],
            "quorum to 0 of (node1)",
        ),
        case(
            "from synchronous_mode on: the same standbys, now any of them acknowledging",
            with_key(led_by_me(1, false), "node1", 0),
            leader_pg("\"node1\"", &[("node1", "sync", 1000)]),
            vec![Action::RenewLock, ssn("ANY 1 (\"node1\")")],
            "Assigning synchronous_standby_names to ANY 1",
        ),
        case(
            "strict with no standby: commits wait for a name no standby has",
            with_key(led_by_me(1, true), "", 0),
            leader_pg("", &[]),
            vec![
                Action::RenewLock,
                ssn(&format!("ANY 1 ({STRICT_PLACEHOLDER})")),
            ],
            "No active replication connections from Patroni members and synchronous_mode_strict is requested",
        ),
        case(
            "strict, the voter gone: commits keep waiting for it",
            with_key(led_by_me(1, true), "node1", 0),
            leader_pg("ANY 1 (\"node1\")", &[]),
            vec![Action::RenewLock],
            "Commits will be delayed",
        ),
    ]);
}

#[test]
fn a_nosync_standby_leaves_the_voters_and_the_list() {
    let mut c = with_key(led_by_me(1, false), "node1,node3", 1);
    c.members[2] = member(
        "node3",
        "replica",
        "running",
        1000,
        2,
        Tags {
            nosync: Some(true),
            ..Default::default()
        },
    );
    check(vec![case(
        "node3 tagged nosync",
        c,
        leader_pg(
            "ANY 1 (\"node1\",\"node3\")",
            &[("node1", "quorum", 1000), ("node3", "quorum", 1000)],
        ),
        vec![
            Action::RenewLock,
            ssn("ANY 1 (\"node1\")"),
            writes("node1", 0, Some(5)),
        ],
        "quorum to 0 of (node1)",
    )]);
}

/// node1 (the old leader) is gone; node2 (this node, at 1000) and node3 (at `node3_lsn`, running or not) remain.
fn failed_over(voters: &str, quorum: u64, node3_running: bool, node3_lsn: u64) -> Cluster {
    let mut c = without_leader(quorum_mode(cluster(), 1, false));
    key(&mut c, "node1", voters, quorum);
    let state = if node3_running { "running" } else { "stopped" };
    c.members[1] = member("node3", "replica", state, node3_lsn, 2, Tags::default());
    c
}

fn race(
    name: &'static str,
    c: Cluster,
    settled: bool,
    expect: Vec<Action>,
    reason: &'static str,
) -> Case {
    let mut k = case(name, c, replica(1000, "node1"), expect, reason);
    k.local = local();
    k.local.no_leader_since = Some(if settled { Millis(NOW.0 - 60_000) } else { NOW });
    k
}

#[test]
fn a_node_is_elected_only_with_the_votes_of_a_quorum() {
    check(vec![
        race(
            "a voter with the vote of the other voter: it lists the old set, records itself and promotes",
            failed_over("node2,node3", 1, true, 900),
            true,
            vec![
                Action::AcquireLock,
                ssn("ANY 1 (\"node1\",\"node3\")"),
                writes("node1,node3", 1, Some(5)),
                Action::Promote,
            ],
            "promoted self",
        ),
        race(
            "the other voter is down: one vote short, no race",
            failed_over("node2,node3", 1, false, 900),
            true,
            vec![],
            "quorum commit needs the votes of 1",
        ),
        race(
            "not a voter: its own vote does not count, one short",
            failed_over("node1,node3", 1, true, 900),
            true,
            vec![],
            "quorum commit needs the votes of 1",
        ),
        race(
            "a voter ahead: it goes first",
            failed_over("node2,node3", 1, true, 1100),
            true,
            vec![],
            "node3 is ahead",
        ),
        race(
            "right after the leader key vanished, published positions may be stale: wait a loop",
            failed_over("node2,node3", 1, true, 900),
            false,
            vec![],
            "waiting 10000 ms for the voters to publish their positions",
        ),
    ]);
}

/// After a clean switchover to node3, node3's member key may predate WAL it has long received (it published a loop
/// before the voters did): counted from the keys, node3 lacks node2's vote and node2 races for itself. The live
/// answers the driver gathered show every voter at the old leader's last position, so node2 waits for node3.
#[test]
fn the_others_wait_for_a_switchover_candidate_whose_member_key_is_a_loop_old() {
    use ha_core::decision::{decide, Observation};
    use ha_core::driver::PeerStatus;
    use ha_core::model::{Failover, Versioned};

    use crate::support::me;

    let mut c = failed_over("node2,node3", 1, true, 900);
    c.failover = Some(Versioned {
        value: Failover {
            leader: Some("node1".into()),
            member: Some("node3".into()),
            ..Default::default()
        },
        version: 11,
    });
    let pg = replica(1000, "node1");
    let mut l = local();
    l.no_leader_since = Some(Millis(NOW.0 - 60_000));
    let answered = |node3: Option<(u64, bool)>| {
        node3
            .map(|(lsn, in_recovery)| {
                [("node3".to_string(), PeerStatus { lsn, in_recovery })].into()
            })
            .unwrap_or_default()
    };
    let decide_with_peers = |peers: Option<&std::collections::BTreeMap<String, PeerStatus>>| {
        decide(&Observation {
            me: &me(Tags::default()),
            now: NOW,
            unix_ms: 1_767_225_600_000,
            dcs: Ok(&c),
            pg: &pg,
            local: &l,
            peers,
        })
    };

    let caught_up = answered(Some((1000, true)));
    let d = decide_with_peers(Some(&caught_up));
    assert_eq!(d.actions, vec![], "{}", d.reason);
    assert!(
        d.reason
            .contains("waiting for the switchover candidate node3"),
        "{}",
        d.reason
    );

    // node3 answers from behind node2: it would not get node2's vote, so node2 races (and wins with node3's).
    let behind = answered(Some((900, true)));
    let d = decide_with_peers(Some(&behind));
    assert!(d.actions.contains(&Action::Promote), "{}", d.reason);

    // node3 does not answer: it is not waited for (Patroni asks the candidate too).
    let silent = answered(None);
    let d = decide_with_peers(Some(&silent));
    assert!(
        !d.reason.contains("waiting for the switchover candidate"),
        "{}",
        d.reason
    );
}
