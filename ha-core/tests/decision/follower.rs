//! Another node holds the lock: demote, rejoin by rewind or reinitialization, follow.

use ha_core::decision::Action;
use ha_core::model::{HistoryEntry, Leader, Tags};
use ha_core::pg::StopMode;

use crate::support::{case, check, cluster, member, primary, replica, stopped, up};

#[test]
fn demote_and_rejoin() {
    let mut new_leader = cluster();
    new_leader.leader = Some(Leader {
        name: "node3".into(),
        version: 12,
        session: None,
    });
    new_leader.members[2] = member("node3", "primary", "running", 1500, 3, Tags::default());
    new_leader
        .history
        .as_mut()
        .unwrap()
        .value
        .push(HistoryEntry::new(2, 1000, "", "", "node3"));
    let mut no_rewind = new_leader.clone();
    no_rewind.config.as_mut().unwrap().value.postgresql = None;
    check(vec![
        case(
            "a primary that lost the lock demotes at once",
            new_leader.clone(),
            primary(1100),
            vec![Action::Stop(StopMode::Fast), Action::ForgetLease],
            "demoting self because node3 holds the leader lock",
        ),
        case(
            "old primary that wrote past the fork point is rewound",
            new_leader.clone(),
            stopped(1100, 2, false),
            vec![
                Action::Rewind(up("node3")),
                Action::StartReplica(Some(up("node3"))),
            ],
            "rewinding node2 from node3",
        ),
        case(
            "without use_pg_rewind it is reinitialized",
            no_rewind,
            stopped(1100, 2, false),
            vec![
                Action::Reinitialize(up("node3")),
                Action::StartReplica(Some(up("node3"))),
            ],
            "use_pg_rewind is off",
        ),
        case(
            "a node stopped before the fork point simply follows",
            new_leader.clone(),
            stopped(1000, 2, false),
            vec![Action::StartReplica(Some(up("node3")))],
            "starting node2 as a secondary of node3",
        ),
        case(
            "a running replica follows the new leader",
            new_leader,
            replica(1000, "node1"),
            vec![Action::Follow(up("node3"))],
            "following new leader node3",
        ),
        case(
            "a replica already following the leader does nothing",
            cluster(),
            replica(1000, "node1"),
            vec![],
            "a secondary, and following a leader (node1)",
        ),
    ]);
}
