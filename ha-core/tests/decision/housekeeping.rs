//! What every healthy loop adds: a new config version, a requested restart; and a data directory of another
//! cluster left alone.

use std::collections::BTreeMap;

use ha_core::decision::{Action, LocalState, Requests};

use crate::support::{case, check, cluster, local, replica, Case};

#[test]
fn dynamic_config_restart_and_identity() {
    let mut params = serde_json::Map::new();
    params.insert("work_mem".into(), "8MB".into());
    let mut newer = cluster();
    let cfg = &mut newer.config.as_mut().unwrap();
    cfg.version = 8;
    let pg = cfg.value.postgresql.as_mut().unwrap();
    pg.parameters = Some(params);
    pg.extra.insert(
        "recovery_conf".into(),
        serde_json::json!({"restore_command": "cp /archive/%f %p", "recovery_min_apply_delay": 0}),
    );
    let mut other_cluster = cluster();
    other_cluster.initialize = Some("7399999999999999999".into());
    check(vec![
        case(
            "a new config version is applied, its recovery_conf with its parameters",
            newer,
            replica(1000, "node1"),
            vec![Action::ApplyConfig {
                version: 8,
                parameters: BTreeMap::from([("work_mem".into(), "8MB".into())]),
                recovery_conf: BTreeMap::from([
                    ("recovery_min_apply_delay".into(), "0".into()),
                    ("restore_command".into(), "cp /archive/%f %p".into()),
                ]),
            }],
            "following a leader",
        ),
        Case {
            local: LocalState {
                requests: Requests {
                    restart: true,
                    reinitialize: false,
                },
                ..local()
            },
            ..case(
                "a requested restart is carried out",
                cluster(),
                replica(1000, "node1"),
                vec![Action::Restart],
                "restarting",
            )
        },
        case(
            "a data directory of another cluster is left alone",
            other_cluster,
            replica(1000, "node1"),
            vec![],
            "system identifier mismatch",
        ),
    ]);
}
