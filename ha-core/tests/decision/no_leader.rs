//! Nobody holds the lock: who races for it, and who leaves the race to the others.

use ha_core::decision::{Action, LocalState};
use ha_core::model::{HistoryEntry, Tags, Timing};
use ha_core::time::Millis;

use crate::support::{
    case, check, cluster, local, member, replica, stopped, up, without_leader, Case, NOW,
};

#[test]
fn automatic_failover_picks_the_healthiest_eligible_member() {
    let no_leader = without_leader(cluster());
    let mut behind_timeline = no_leader.clone();
    behind_timeline
        .config
        .as_mut()
        .unwrap()
        .value
        .check_timeline = Some(true);
    behind_timeline
        .history
        .as_mut()
        .unwrap()
        .value
        .push(HistoryEntry::new(2, 900, "", "", "node3"));
    let mut node3_ahead = no_leader.clone();
    node3_ahead.members[1] = member("node3", "replica", "running", 1100, 2, Tags::default());
    let mut node3_preferred = no_leader.clone();
    node3_preferred.members[1] = member(
        "node3",
        "replica",
        "running",
        1000,
        2,
        Tags {
            failover_priority: Some(5),
            ..Default::default()
        },
    );
    let mut node3_ahead_but_nofailover = no_leader.clone();
    node3_ahead_but_nofailover.members[1] = member(
        "node3",
        "replica",
        "running",
        1100,
        2,
        Tags {
            nofailover: Some(true),
            ..Default::default()
        },
    );
    check(vec![
        case(
            "leader gone, I am the most advanced: take the lock, then promote",
            no_leader.clone(),
            replica(1000, "node1"),
            vec![Action::AcquireLock, Action::Promote],
            "promoted self (node2) to leader",
        ),
        Case {
            tags: Tags {
                nofailover: Some(true),
                ..Default::default()
            },
            ..case(
                "nofailover tag: never race",
                no_leader.clone(),
                replica(1000, "node1"),
                vec![],
                "nofailover",
            )
        },
        case(
            "lagging past maximum_lag_on_failover: never race",
            no_leader.clone(),
            replica(400, "node1"),
            vec![],
            "over maximum_lag_on_failover",
        ),
        case(
            "check_timeline: behind the cluster's timeline",
            behind_timeline,
            replica(1000, "node1"),
            vec![],
            "timeline",
        ),
        case(
            "another member is ahead",
            node3_ahead,
            replica(1000, "node1"),
            vec![],
            "node3 is ahead",
        ),
        case(
            "same position, higher failover_priority elsewhere",
            node3_preferred,
            replica(1000, "node1"),
            vec![],
            "goes first",
        ),
        case(
            "a nofailover member ahead does not count",
            node3_ahead_but_nofailover,
            replica(1000, "node1"),
            vec![Action::AcquireLock, Action::Promote],
            "promoted self",
        ),
        case(
            "stopped replica without a leader starts before racing",
            no_leader,
            stopped(1000, 2, true),
            vec![Action::StartReplica(None)],
            "starting node2 as a secondary before the leader race",
        ),
    ]);
}

#[test]
fn a_node_that_fenced_its_hung_primary_leaves_the_next_race_to_the_others() {
    let fenced = |ago_ms: u64| LocalState {
        fenced_at: Some(Millis(NOW.0 - ago_ms)),
        ..local()
    };
    let ttl_ms = Timing::default().ttl_ms;
    let down = stopped(1000, 2, false);
    check(vec![
        Case {
            local: fenced(2_000),
            ..case(
                "no leader a moment after fencing: PostgreSQL stays stopped, so it neither races nor looks like a \
                 running member the others would wait for",
                without_leader(cluster()),
                down.clone(),
                vec![],
                "leaving the race to the others",
            )
        },
        Case {
            local: fenced(ttl_ms),
            ..case(
                "no leader one ttl after fencing (nobody else took over): it starts again and may race",
                without_leader(cluster()),
                down.clone(),
                vec![Action::StartReplica(None)],
                "before the leader race",
            )
        },
        Case {
            local: fenced(2_000),
            ..case(
                "another member leads: rejoins it at once",
                cluster(),
                down,
                vec![Action::StartReplica(Some(up("node1")))],
                "",
            )
        },
    ]);
}

#[test]
fn primary_race_backoff_holds_a_replica_whose_wal_still_moves() {
    let mut no_leader = without_leader(cluster());
    no_leader
        .config
        .as_mut()
        .unwrap()
        .value
        .extra
        .insert("primary_race_backoff".into(), 6.into());
    // loop_wait 2 s, as in Patroni's scenario: the first 2 s after the key vanished always wait.
    let backing_off = |since_ms: u64, prev: u64| LocalState {
        prev_wal_lsn: Some(prev),
        no_leader_since: Some(Millis(NOW.0 - since_ms)),
        timing: Timing {
            ttl_ms: 30_000,
            loop_wait_ms: 2_000,
            retry_timeout_ms: 10_000,
        },
        ..local()
    };
    check(vec![
        Case {
            local: backing_off(3_000, 900),
            ..case(
                "the leader key vanished 3 s ago and WAL still arrives: the primary is alive, hold back",
                no_leader.clone(),
                replica(1000, "node1"),
                vec![],
                "wal position moved since last heart beat loop, 3 seconds until leader race",
            )
        },
        Case {
            local: backing_off(3_000, 1000),
            ..case(
                "WAL stopped arriving: race at once",
                no_leader.clone(),
                replica(1000, "node1"),
                vec![Action::AcquireLock, Action::Promote],
                "promoted self",
            )
        },
        Case {
            local: backing_off(7_000, 900),
            ..case(
                "the backoff is over: race even though WAL moved",
                no_leader,
                replica(1000, "node1"),
                vec![Action::AcquireLock, Action::Promote],
                "promoted self",
            )
        },
    ]);
}
