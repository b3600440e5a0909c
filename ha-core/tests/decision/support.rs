//! What every case builds on: this node (node2), a healthy 3-node cluster led by node1, PostgreSQL observations,
//! and [`check`], which runs a list of cases through the decision.

use ha_core::dcs::DcsError;
use ha_core::decision::{decide, Action, Decision, LocalState, NodeIdentity, Observation};
use ha_core::model::{
    Cluster, DynamicPostgresql, GlobalConfig, HistoryEntry, Leader, Member, MemberData, Status,
    Tags, Timing, Versioned,
};
use ha_core::pg::{PgObservation, PgRunState, Upstream};
use ha_core::time::Millis;

pub const NOW: Millis = Millis(1_000_000);
pub const SYSID: &str = "7300000000000000001";

pub fn me(tags: Tags) -> NodeIdentity {
    NodeIdentity {
        name: "node2".into(),
        conn_url: "postgres://node2:5432/postgres".into(),
        api_url: "http://node2:8008/patroni".into(),
        tags,
        version: "0.1.0".into(),
    }
}

pub fn member(name: &str, role: &str, state: &str, lsn: u64, tl: u64, tags: Tags) -> Member {
    Member {
        name: name.into(),
        data: MemberData {
            conn_url: Some(format!("postgres://{name}:5432/postgres")),
            api_url: Some(format!("http://{name}:8008/patroni")),
            state: Some(state.into()),
            role: Some(role.into()),
            xlog_location: Some(lsn),
            timeline: Some(tl),
            tags: if tags.is_empty() { None } else { Some(tags) },
            ..Default::default()
        },
        version: 1,
    }
}

pub fn up(name: &str) -> Upstream {
    Upstream::member(name, format!("postgres://{name}:5432/postgres"))
}

/// A healthy 3-node cluster led by node1 at LSN 1000 on timeline 2.
pub fn cluster() -> Cluster {
    Cluster {
        initialize: Some(SYSID.into()),
        config: Some(Versioned {
            value: GlobalConfig {
                ttl: Some(30.0),
                loop_wait: Some(10.0),
                retry_timeout: Some(10.0),
                maximum_lag_on_failover: Some(500),
                postgresql: Some(DynamicPostgresql {
                    use_pg_rewind: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            },
            version: 7,
        }),
        leader: Some(Leader {
            name: "node1".into(),
            version: 3,
            session: None,
        }),
        members: vec![
            member("node1", "primary", "running", 1000, 2, Tags::default()),
            member("node2", "replica", "running", 1000, 2, Tags::default()),
            member("node3", "replica", "running", 900, 2, Tags::default()),
        ],
        history: Some(Versioned {
            value: vec![HistoryEntry::new(1, 600, "", "", "node1")],
            version: 2,
        }),
        status: Some(Status {
            optime: Some(1000),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn without_leader(mut c: Cluster) -> Cluster {
    c.leader = None;
    c.members.retain(|m| m.name != "node1");
    c
}

pub fn replica(lsn: u64, upstream: &str) -> PgObservation {
    PgObservation {
        run_state: Some(PgRunState::Running),
        in_recovery: true,
        timeline: 2,
        lsn,
        system_id: Some(SYSID.into()),
        upstream: Some(upstream.into()),
        streaming: true,
        ..Default::default()
    }
}

pub fn primary(lsn: u64) -> PgObservation {
    PgObservation {
        in_recovery: false,
        upstream: None,
        streaming: false,
        ..replica(lsn, "")
    }
}

pub fn stopped(lsn: u64, tl: u64, standby: bool) -> PgObservation {
    PgObservation {
        run_state: Some(PgRunState::Stopped),
        timeline: tl,
        in_recovery: standby,
        ..replica(lsn, "")
    }
}

pub fn local() -> LocalState {
    LocalState {
        timing: Timing::default(),
        applied_config_version: Some(7),
        ..Default::default()
    }
}

pub fn decide_with(
    id: &NodeIdentity,
    dcs: Result<&Cluster, &DcsError>,
    pg: &PgObservation,
    local: &LocalState,
) -> Decision {
    decide(&Observation {
        me: id,
        now: NOW,
        unix_ms: 1_767_225_600_000,
        dcs,
        pg,
        local,
        peers: None,
    })
}

pub fn run(c: &Cluster, pg: &PgObservation) -> Decision {
    decide_with(&me(Tags::default()), Ok(c), pg, &local())
}

pub fn leading(c: &mut Cluster) {
    c.leader = Some(Leader {
        name: "node2".into(),
        version: 9,
        session: None,
    });
    c.members[0] = member("node1", "replica", "running", 1000, 2, Tags::default());
    c.members[1] = member("node2", "primary", "running", 1000, 2, Tags::default());
}

pub struct Case {
    pub name: &'static str,
    pub cluster: Cluster,
    pub pg: PgObservation,
    pub tags: Tags,
    pub local: LocalState,
    pub expect: Vec<Action>,
    pub reason_has: &'static str,
}

pub fn case(
    name: &'static str,
    cluster: Cluster,
    pg: PgObservation,
    expect: Vec<Action>,
    reason_has: &'static str,
) -> Case {
    Case {
        name,
        cluster,
        pg,
        tags: Tags::default(),
        local: local(),
        expect,
        reason_has,
    }
}

pub fn check(cases: Vec<Case>) {
    for c in cases {
        let d = decide_with(&me(c.tags.clone()), Ok(&c.cluster), &c.pg, &c.local);
        assert_eq!(
            d.actions, c.expect,
            "case `{}`: reason was {:?}",
            c.name, d.reason
        );
        assert!(
            d.reason.contains(c.reason_has),
            "case `{}`: reason {:?} lacks {:?}",
            c.name,
            d.reason,
            c.reason_has
        );
    }
}

/// The `sync` key (version 5): `leader`, its standbys (comma-separated), and `quorum` as written in quorum mode.
pub fn sync_key(c: &mut Cluster, leader: &str, standbys: &str, quorum: Option<u64>) {
    c.sync = Some(Versioned {
        value: ha_core::model::SyncState {
            leader: Some(leader.into()),
            sync_standby: (!standbys.is_empty()).then(|| standbys.into()),
            quorum,
            ..Default::default()
        },
        version: 5,
    });
}

/// node2 leads at LSN 1000 (published), with `synchronous_standby_names` `ssn` in force and these walsenders:
/// `(name, sync_state, flush)`.
pub fn leader_pg(ssn: &str, rows: &[(&str, &str, u64)]) -> PgObservation {
    PgObservation {
        synchronous_standby_names: Some(ssn.into()),
        replication: rows
            .iter()
            .map(|(name, sync_state, flush)| ha_core::pg::ReplicationRow {
                application_name: name.to_string(),
                state: "streaming".into(),
                sync_state: sync_state.to_string(),
                flush_lsn: Some(*flush),
                ..Default::default()
            })
            .collect(),
        ..primary(1000)
    }
}
