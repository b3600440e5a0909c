//! Another node holds the lock: demote, rejoin by rewind or reinitialization, follow.

use ha_core::decision::Action;
use ha_core::model::{HistoryEntry, Leader, Tags};
use ha_core::pg::{PgObservation, StopMode};

use ha_core::decision::{LocalState, RemoveData};

use crate::support::{case, check, cluster, local, member, primary, replica, stopped, up, Case};

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
            "without use_pg_rewind it keeps its data and starts read-only, as Patroni does",
            no_rewind.clone(),
            stopped(1100, 2, false),
            vec![Action::StartReplica(Some(up("node3")))],
            "remove_data_directory_on_diverged_timelines is not set: the data directory is kept",
        ),
        Case {
            local: LocalState {
                remove_data: RemoveData {
                    on_diverged_timelines: true,
                    ..Default::default()
                },
                ..local()
            },
            ..case(
                "without use_pg_rewind, remove_data_directory_on_diverged_timelines reinitializes it",
                no_rewind.clone(),
                stopped(1100, 2, false),
                vec![
                    Action::Reinitialize(up("node3")),
                    Action::StartReplica(Some(up("node3"))),
                ],
                "remove_data_directory_on_diverged_timelines is set",
            )
        },
        Case {
            local: LocalState {
                own_use_pg_rewind: Some(true),
                ..local()
            },
            ..case(
                "the node's own use_pg_rewind wins over the cluster's, as Patroni's local configuration does",
                no_rewind.clone(),
                stopped(1100, 2, false),
                vec![
                    Action::Rewind(up("node3")),
                    Action::StartReplica(Some(up("node3"))),
                ],
                "rewinding node2 from node3",
            )
        },
        Case {
            local: LocalState {
                own_use_pg_rewind: Some(false),
                ..local()
            },
            ..case(
                "a node whose own use_pg_rewind is off keeps its data although the cluster's is on",
                new_leader.clone(),
                stopped(1100, 2, false),
                vec![Action::StartReplica(Some(up("node3")))],
                "use_pg_rewind is off and remove_data_directory_on_diverged_timelines is not set",
            )
        },
        Case {
            local: LocalState {
                rewind_failed: true,
                ..local()
            },
            ..case(
                "after a failed pg_rewind nothing is wiped without remove_data_directory_on_rewind_failure",
                new_leader.clone(),
                stopped(1100, 2, false),
                vec![Action::StartReplica(Some(up("node3")))],
                "pg_rewind failed and remove_data_directory_on_rewind_failure is not set",
            )
        },
        Case {
            local: LocalState {
                rewind_failed: true,
                remove_data: RemoveData {
                    on_rewind_failure: true,
                    ..Default::default()
                },
                ..local()
            },
            ..case(
                "after a failed pg_rewind, remove_data_directory_on_rewind_failure reinitializes it",
                new_leader.clone(),
                stopped(1100, 2, false),
                vec![
                    Action::Reinitialize(up("node3")),
                    Action::StartReplica(Some(up("node3"))),
                ],
                "remove_data_directory_on_rewind_failure is set",
            )
        },
        case(
            "a diverged node that runs and may not be wiped is left running read-only, not stopped in a loop",
            no_rewind,
            PgObservation {
                timeline: 4,
                ..replica(1100, "node1")
            },
            vec![],
            "left running read-only",
        ),
        case(
            "a running standby that replayed past the fork point and cannot stream is stopped to be rewound",
            new_leader.clone(),
            PgObservation {
                replay_lsn: Some(1100),
                streaming: false,
                ..replica(1100, "node3")
            },
            vec![Action::Stop(StopMode::Fast)],
            "stopping node2 to rejoin node3: local WAL replayed to 0/44C past the end of timeline 2 (0/3E8)",
        ),
        case(
            "a standby that streams the new timeline is not stopped, though its reported timeline lags",
            new_leader.clone(),
            PgObservation {
                replay_lsn: Some(1100),
                ..replica(1100, "node3")
            },
            vec![],
            "a secondary, and following a leader (node3)",
        ),
        case(
            "a standby that received past the fork point but replayed only up to it is not stopped",
            new_leader.clone(),
            PgObservation {
                replay_lsn: Some(1000),
                streaming: false,
                ..replica(1100, "node3")
            },
            vec![],
            "a secondary, and following a leader (node3)",
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
