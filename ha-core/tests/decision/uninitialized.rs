//! An empty data directory: bootstrap a new cluster, or clone a replica.

use ha_core::decision::{Action, LocalState};
use ha_core::model::{Cluster, Tags};
use ha_core::pg::{PgObservation, PgRunState};

use crate::support::{case, check, cluster, local, up, Case};

#[test]
fn bootstrap_and_clone() {
    let empty = PgObservation {
        run_state: Some(PgRunState::Uninitialized),
        ..Default::default()
    };
    let mut waiting = cluster();
    waiting.leader = None;
    check(vec![
        case(
            "empty cluster: race to initialize, initdb, then take the lock (as Patroni)",
            Cluster::default(),
            empty.clone(),
            vec![
                Action::RaceInitialize,
                Action::Bootstrap,
                Action::WriteInitialize,
                Action::WriteBootstrapConfig,
                Action::AcquireLock,
            ],
            "bootstrapping a new cluster",
        ),
        Case {
            // The first start runs with bootstrap.dcs's parameters (wal_level, max_connections...), not defaults.
            local: LocalState {
                applied_config_version: None,
                last_config: serde_json::from_str(
                    r#"{"postgresql":{"parameters":{"wal_level":"logical"}}}"#,
                )
                .unwrap(),
                ..local()
            },
            ..case(
                "a new cluster starts with the bootstrap parameters",
                Cluster::default(),
                empty.clone(),
                vec![
                    Action::RaceInitialize,
                    Action::ApplyConfig {
                        version: 0,
                        parameters: [("wal_level".to_string(), "logical".to_string())].into(),
                        recovery_conf: Default::default(),
                    },
                    Action::Bootstrap,
                    Action::WriteInitialize,
                    Action::WriteBootstrapConfig,
                    Action::AcquireLock,
                ],
                "bootstrapping a new cluster",
            )
        },
        case(
            "initialized cluster with a leader: clone from it",
            cluster(),
            empty.clone(),
            vec![
                Action::CloneFrom(up("node1")),
                Action::StartReplica(Some(up("node1"))),
            ],
            "creating a replica from node1",
        ),
        Case {
            local: LocalState {
                applied_config_version: None,
                ..local()
            },
            ..case(
                "a new replica writes the cluster-wide parameters before its first start",
                cluster(),
                empty.clone(),
                vec![
                    Action::ApplyConfig {
                        version: 7,
                        parameters: cluster().global_config().parameters(),
                        recovery_conf: Default::default(),
                    },
                    Action::CloneFrom(up("node1")),
                    Action::StartReplica(Some(up("node1"))),
                ],
                "creating a replica from node1",
            )
        },
        case(
            "initialized, no leader yet: wait",
            waiting.clone(),
            empty.clone(),
            vec![],
            "waiting for a leader",
        ),
        Case {
            local: LocalState {
                replica_without_leader: true,
                ..local()
            },
            ..case(
                "initialized, no leader, and a replica method that needs none (a restore): a replica from it",
                waiting,
                empty.clone(),
                vec![Action::RestoreReplica, Action::StartReplica(None)],
                "by a method that needs none",
            )
        },
        Case {
            tags: Tags {
                nofailover: Some(true),
                ..Default::default()
            },
            ..case(
                "nofailover node never bootstraps",
                Cluster::default(),
                empty,
                vec![],
                "nofailover",
            )
        },
    ]);
}
