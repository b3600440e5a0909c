//! The decision, rule by rule: each case is a scenario, the observation it gives, and the actions it must produce.

use std::collections::BTreeMap;

use ha_core::dcs::DcsError;
use ha_core::decision::{
    decide, Action, Decision, FailsafeInput, LocalState, NodeIdentity, Observation, Requests,
};
use ha_core::model::{
    Cluster, DynamicPostgresql, Failover, GlobalConfig, HistoryEntry, Leader, Member, MemberData,
    Status, Tags, Timing, Versioned,
};
use ha_core::pg::{PgObservation, PgRunState, StopMode, Upstream};
use ha_core::time::Millis;

const NOW: Millis = Millis(100_000);
const SYSID: &str = "7300000000000000001";

fn me(tags: Tags) -> NodeIdentity {
    NodeIdentity {
        name: "node2".into(),
        conn_url: "postgres://node2:5432/postgres".into(),
        api_url: "http://node2:8008/patroni".into(),
        tags,
        version: "0.1.0".into(),
    }
}

fn member(name: &str, role: &str, state: &str, lsn: u64, tl: u64, tags: Tags) -> Member {
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

fn up(name: &str) -> Upstream {
    Upstream {
        name: name.into(),
        conn_url: format!("postgres://{name}:5432/postgres"),
    }
}

/// A healthy 3-node cluster led by node1 at LSN 1000 on timeline 2.
fn cluster() -> Cluster {
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

fn without_leader(mut c: Cluster) -> Cluster {
    c.leader = None;
    c.members.retain(|m| m.name != "node1");
    c
}

fn replica(lsn: u64, upstream: &str) -> PgObservation {
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

fn primary(lsn: u64) -> PgObservation {
    PgObservation {
        in_recovery: false,
        upstream: None,
        streaming: false,
        ..replica(lsn, "")
    }
}

fn stopped(lsn: u64, tl: u64, standby: bool) -> PgObservation {
    PgObservation {
        run_state: Some(PgRunState::Stopped),
        timeline: tl,
        in_recovery: standby,
        ..replica(lsn, "")
    }
}

fn local() -> LocalState {
    LocalState {
        timing: Timing::default(),
        applied_config_version: Some(7),
        ..Default::default()
    }
}

fn decide_with(
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
        planted_bug: None,
    })
}

fn run(c: &Cluster, pg: &PgObservation) -> Decision {
    decide_with(&me(Tags::default()), Ok(c), pg, &local())
}

fn leading(c: &mut Cluster) {
    c.leader = Some(Leader {
        name: "node2".into(),
        version: 9,
        session: None,
    });
    c.members[0] = member("node1", "replica", "running", 1000, 2, Tags::default());
    c.members[1] = member("node2", "primary", "running", 1000, 2, Tags::default());
}

struct Case {
    name: &'static str,
    cluster: Cluster,
    pg: PgObservation,
    tags: Tags,
    local: LocalState,
    expect: Vec<Action>,
    reason_has: &'static str,
}

fn case(
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

fn check(cases: Vec<Case>) {
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
            "empty cluster: race to initialize, take the lock, initdb",
            Cluster::default(),
            empty.clone(),
            vec![
                Action::RaceInitialize,
                Action::AcquireLock,
                Action::Bootstrap,
                Action::WriteInitialize,
                Action::WriteBootstrapConfig,
            ],
            "bootstrapping a new cluster",
        ),
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
                    },
                    Action::CloneFrom(up("node1")),
                    Action::StartReplica(Some(up("node1"))),
                ],
                "creating a replica from node1",
            )
        },
        case(
            "initialized, no leader yet: wait",
            waiting,
            empty.clone(),
            vec![],
            "waiting for a leader",
        ),
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

#[test]
fn leader_lock_renew_and_duties() {
    let mut lead = cluster();
    leading(&mut lead);
    let mut fresh = lead.clone();
    fresh.status = Some(Status {
        optime: Some(1200),
        ..Default::default()
    });
    check(vec![
        case(
            "healthy leader renews and publishes its position",
            lead.clone(),
            primary(1200),
            vec![Action::RenewLock, Action::WriteStatus { optime: 1200 }],
            "the leader with the lock",
        ),
        case(
            "unchanged position is not rewritten",
            fresh,
            primary(1200),
            vec![Action::RenewLock],
            "the leader with the lock",
        ),
        case(
            "leader whose PostgreSQL crashed restarts it in place",
            lead.clone(),
            PgObservation {
                run_state: Some(PgRunState::Crashed),
                ..primary(1200)
            },
            vec![Action::RenewLock, Action::StartPrimary],
            "starting PostgreSQL as primary",
        ),
        case(
            "lock holder still in recovery promotes",
            lead,
            replica(1000, "node1"),
            vec![Action::RenewLock, Action::Promote],
            "promoting node2",
        ),
    ]);
}

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
fn manual_switchover_and_failover() {
    let failover = |leader: Option<&str>, member: &str, at: Option<&str>| {
        Some(Versioned {
            value: Failover {
                leader: leader.map(Into::into),
                member: Some(member.into()),
                scheduled_at: at.map(Into::into),
                ..Default::default()
            },
            version: 11,
        })
    };
    let mut to_node1 = cluster();
    leading(&mut to_node1);
    to_node1.failover = failover(Some("node2"), "node1", None);
    let mut later = to_node1.clone();
    later.failover = failover(Some("node2"), "node1", Some("2030-01-01T00:00:00+00:00"));
    let mut to_lagging = to_node1.clone();
    to_lagging.members[0] = member("node1", "replica", "running", 100, 2, Tags::default());
    let mut waiting_for_node3 = without_leader(cluster());
    waiting_for_node3.failover = failover(Some("node1"), "node3", None);
    let mut node2_is_candidate = without_leader(cluster());
    node2_is_candidate.members.push(member(
        "node4",
        "replica",
        "running",
        5000,
        2,
        Tags::default(),
    ));
    node2_is_candidate.failover = failover(None, "node2", None);
    check(vec![
        case(
            "switchover now: write the last position, stop cleanly, release the lock",
            to_node1,
            primary(1000),
            vec![
                Action::RenewLock,
                Action::WriteStatus { optime: 1000 },
                Action::Stop(StopMode::Fast),
                Action::ForgetLease,
                Action::ReleaseLock,
            ],
            "switchover",
        ),
        case(
            "scheduled switchover waits for its time",
            later,
            primary(1000),
            vec![Action::RenewLock],
            "switchover scheduled at 2030-01-01",
        ),
        case(
            "switchover to a lagging candidate is rejected and cleared",
            to_lagging,
            primary(1000),
            vec![Action::RenewLock, Action::ClearFailover { version: 11 }],
            "switchover rejected",
        ),
        case(
            "others stand aside for a healthy candidate",
            waiting_for_node3,
            replica(1000, "node1"),
            vec![],
            "waiting for the switchover candidate node3",
        ),
        case(
            "the candidate races even when someone is ahead, then clears the request",
            node2_is_candidate,
            replica(1000, "node1"),
            vec![
                Action::AcquireLock,
                Action::ClearFailover { version: 11 },
                Action::Promote,
            ],
            "promoted self",
        ),
    ]);
}

#[test]
fn pause_mode_takes_no_automatic_action() {
    let paused = |mut c: Cluster| {
        c.config.as_mut().unwrap().value.pause = Some(true);
        c
    };
    let mut lead = paused(cluster());
    leading(&mut lead);
    lead.status = Some(Status {
        optime: Some(1000),
        ..Default::default()
    });
    check(vec![
        case(
            "paused leader only renews",
            lead.clone(),
            primary(1000),
            vec![Action::RenewLock],
            "PAUSE",
        ),
        case(
            "paused leader with a crashed PostgreSQL does not restart it",
            lead,
            PgObservation {
                run_state: Some(PgRunState::Crashed),
                ..primary(1000)
            },
            vec![Action::RenewLock],
            "PAUSE",
        ),
        case(
            "paused replica never promotes",
            paused(without_leader(cluster())),
            replica(1000, "node1"),
            vec![],
            "PAUSE",
        ),
        case(
            "paused running primary without a lock takes it",
            paused(without_leader(cluster())),
            primary(1000),
            vec![Action::AcquireLock],
            "PAUSE",
        ),
    ]);
}

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

#[test]
fn dynamic_config_restart_and_identity() {
    let mut params = serde_json::Map::new();
    params.insert("work_mem".into(), "8MB".into());
    let mut newer = cluster();
    let cfg = &mut newer.config.as_mut().unwrap();
    cfg.version = 8;
    cfg.value.postgresql.as_mut().unwrap().parameters = Some(params);
    let mut other_cluster = cluster();
    other_cluster.initialize = Some("7399999999999999999".into());
    check(vec![
        case(
            "a new config version is applied",
            newer,
            replica(1000, "node1"),
            vec![Action::ApplyConfig {
                version: 8,
                parameters: BTreeMap::from([("work_mem".into(), "8MB".into())]),
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

#[test]
fn hung_postgres_on_the_primary_is_fenced_after_retry_timeout() {
    let mut lead = cluster();
    leading(&mut lead);
    let hung = PgObservation {
        run_state: Some(PgRunState::Unresponsive),
        ..primary(1000)
    };
    let since = |ms: u64| LocalState {
        unresponsive_since: Some(Millis(NOW.0 - ms)),
        ..local()
    };
    check(vec![
        Case {
            local: since(5_000),
            ..case(
                "hung for less than retry_timeout: keep the lock",
                lead.clone(),
                hung.clone(),
                vec![Action::RenewLock],
                "keeping the lock",
            )
        },
        Case {
            local: since(10_000),
            ..case(
                "hung past retry_timeout: fence, then release the lock",
                lead,
                hung.clone(),
                vec![Action::Fence, Action::ForgetLease, Action::ReleaseLock],
                "fenced it and released the leader lock",
            )
        },
        Case {
            local: since(10_000),
            ..case(
                "a hung replica is fenced and restarted",
                cluster(),
                hung,
                vec![Action::Fence],
                "fenced it",
            )
        },
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

    let mut not_listed = no_leader.clone();
    not_listed.failsafe = Some(BTreeMap::from([("node1".to_string(), "x".to_string())]));
    let d = decide_with(&id, Ok(&not_listed), &replica(1000, "node1"), &local());
    assert!(
        d.actions.is_empty() && d.reason.contains("not in the failsafe member list"),
        "{d:?}"
    );
}

#[test]
fn decision_is_a_pure_function_of_its_observation() {
    let c = without_leader(cluster());
    let pg = replica(1000, "node1");
    assert_eq!(run(&c, &pg), run(&c, &pg));
}
