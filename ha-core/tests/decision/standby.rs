//! A standby cluster (`standby_cluster`): its leader holds the lock but stays in recovery, following the source
//! cluster; it is never promoted while the configuration names a source, and promoted once it no longer does.

use ha_core::decision::Action;
use ha_core::model::{Cluster, GlobalConfig, Tags};
use ha_core::pg::{Lineage, PgObservation, PgRunState, StopMode, TimelineSwitch, Upstream};

use crate::support::{cluster, decide_with, leading, local, me, primary, replica, without_leader};

const SOURCE: &str = r#"{"standby_cluster":{"host":"dc1","port":5433,"primary_slot_name":"pm_1"},"synchronous_mode":true}"#;

fn standby(mut c: Cluster) -> Cluster {
    let extra: GlobalConfig = serde_json::from_str(SOURCE).unwrap();
    let cfg = &mut c.config.as_mut().unwrap().value;
    cfg.extra.extend(extra.extra);
    cfg.synchronous_mode = extra.synchronous_mode;
    c
}

fn source() -> Upstream {
    let cfg: GlobalConfig = serde_json::from_str(SOURCE).unwrap();
    cfg.standby_cluster().unwrap().upstream()
}

fn lease() -> ha_core::decision::LocalState {
    let mut l = local();
    l.lease_deadline = Some(crate::support::NOW.plus_ms(10_000));
    l
}

#[test]
fn the_standby_leader_follows_the_source_and_is_never_promoted() {
    let mut c = standby(cluster());
    leading(&mut c);
    let id = me(Tags::default());
    // In recovery, holding the lock: it follows the source instead of promoting.
    let d = decide_with(&id, Ok(&c), &replica(1000, "node1"), &lease());
    assert_eq!(
        d.actions,
        vec![Action::RenewLock, Action::Follow(source())],
        "{}",
        d.reason
    );
    let following = replica(1000, &source().name);
    let d = decide_with(&id, Ok(&c), &following, &lease());
    assert_eq!(d.actions, vec![Action::RenewLock], "{}", d.reason);
    assert!(
        d.reason.contains("the standby leader with the lock"),
        "{}",
        d.reason
    );
    // Stopped: started again as the source's standby, not as a primary.
    let stopped = PgObservation {
        run_state: Some(PgRunState::Stopped),
        ..following.clone()
    };
    let d = decide_with(&id, Ok(&c), &stopped, &lease());
    assert_eq!(
        d.actions,
        vec![Action::RenewLock, Action::StartReplica(Some(source()))]
    );
    // A primary cluster told to follow another (demote-cluster) stops and becomes its standby, lock kept.
    let d = decide_with(&id, Ok(&c), &primary(1200), &lease());
    assert_eq!(
        d.actions,
        vec![
            Action::RenewLock,
            Action::Stop(StopMode::Fast),
            Action::StartReplica(Some(source()))
        ]
    );
    // promote-cluster: without `standby_cluster` the same node is promoted.
    let mut promoted = c.clone();
    promoted
        .config
        .as_mut()
        .unwrap()
        .value
        .extra
        .insert("standby_cluster".into(), serde_json::Value::Null);
    let d = decide_with(&id, Ok(&promoted), &following, &lease());
    assert!(d.actions.contains(&Action::Promote), "{d:?}");
}

#[test]
fn a_new_standby_leader_follows_the_source_and_synchronous_mode_is_ignored() {
    let c = standby(without_leader(cluster()));
    let d = decide_with(
        &me(Tags::default()),
        Ok(&c),
        &replica(1000, "node1"),
        &local(),
    );
    assert_eq!(
        d.actions,
        vec![Action::AcquireLock, Action::Follow(source())],
        "{}",
        d.reason
    );
    assert!(d.reason.contains("standby leader"), "{}", d.reason);
}

#[test]
fn a_standby_cluster_is_bootstrapped_by_copying_its_source() {
    let mut c = standby(without_leader(cluster()));
    c.initialize = None;
    c.members.clear();
    let empty = PgObservation {
        run_state: Some(PgRunState::Uninitialized),
        ..Default::default()
    };
    let d = decide_with(&me(Tags::default()), Ok(&c), &empty, &local());
    assert_eq!(
        d.actions,
        vec![
            Action::RaceInitialize,
            Action::AcquireLock,
            Action::CloneFrom(source()),
            Action::StartReplica(Some(source())),
        ],
        "{}",
        d.reason
    );
}

#[test]
fn a_standby_leader_past_the_sources_fork_point_is_rewound_from_the_source() {
    let mut c = standby(cluster());
    leading(&mut c);
    let id = me(Tags::default());
    // The source cluster failed over: it is on timeline 3 and its timeline 2 ended at 900; this site had already
    // replayed to 1000 of timeline 2, WAL the source's new primary never had.
    let lineage = Lineage {
        timeline: 3,
        switches: vec![
            TimelineSwitch {
                timeline: 1,
                lsn: 500,
            },
            TimelineSwitch {
                timeline: 2,
                lsn: 900,
            },
        ],
    };
    let cut_off = PgObservation {
        streaming: false,
        replay_lsn: Some(1000),
        source_lineage: Some(lineage),
        ..replica(1000, &source().name)
    };
    let d = decide_with(&id, Ok(&c), &cut_off, &lease());
    assert_eq!(
        d.actions,
        vec![Action::RenewLock, Action::Stop(StopMode::Fast)],
        "{}",
        d.reason
    );
    assert!(
        d.reason.contains("to rejoin the source cluster")
            && d.reason.contains("in the source's history"),
        "{}",
        d.reason
    );
    let stopped = PgObservation {
        run_state: Some(PgRunState::Stopped),
        ..cut_off.clone()
    };
    let d = decide_with(&id, Ok(&c), &stopped, &lease());
    assert_eq!(
        d.actions,
        vec![
            Action::RenewLock,
            Action::Rewind(source()),
            Action::StartReplica(Some(source()))
        ],
        "{}",
        d.reason
    );

    // Behind the fork point it only lost its connection: left alone, or started as it is.
    let behind = PgObservation {
        lsn: 800,
        replay_lsn: Some(800),
        ..cut_off.clone()
    };
    let d = decide_with(&id, Ok(&c), &behind, &lease());
    assert!(left_running(&d), "{d:?}");
    let d = decide_with(
        &id,
        Ok(&c),
        &PgObservation {
            run_state: Some(PgRunState::Stopped),
            ..behind
        },
        &lease(),
    );
    assert_eq!(
        d.actions,
        vec![Action::RenewLock, Action::StartReplica(Some(source()))],
        "{}",
        d.reason
    );

    // Without an answer from the source nothing is guessed.
    let d = decide_with(
        &id,
        Ok(&c),
        &PgObservation {
            source_lineage: None,
            ..cut_off
        },
        &lease(),
    );
    assert!(left_running(&d), "{d:?}");
}

/// The standby leader renewed its lock and neither stopped nor rewound its PostgreSQL.
fn left_running(d: &ha_core::decision::Decision) -> bool {
    d.actions.first() == Some(&Action::RenewLock)
        && !d.actions.iter().any(|a| {
            matches!(
                a,
                Action::Stop(_) | Action::Rewind(_) | Action::Reinitialize(_)
            )
        })
}
