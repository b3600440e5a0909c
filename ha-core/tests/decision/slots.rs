//! Replication slots: which slots each node keeps, how far the idle ones move, what is dropped and what never is,
//! and what the leader publishes in `status` (Patroni's permanent_slots, ignored_slots and member retention).

use ha_core::decision::slots::{plan, remember_members, wanted_slots};
use ha_core::decision::Action;
use ha_core::model::{GlobalConfig, SlotKind, Status, Tags};
use ha_core::pg::{LocalSlot, PgObservation, SlotPlan};
use ha_core::time::Millis;

use crate::support::{cluster, decide_with, leading, local, me, member, primary, replica, up, NOW};

fn with_config(c: &mut ha_core::model::Cluster, json: &str) {
    let extra: GlobalConfig = serde_json::from_str(json).unwrap();
    let cfg = &mut c.config.as_mut().unwrap().value;
    cfg.extra.extend(extra.extra);
    if extra.postgresql.is_some() {
        cfg.postgresql = extra.postgresql;
    }
    cfg.pause = extra.pause.or(cfg.pause);
}

fn physical(name: &str, restart: u64, managed: bool) -> LocalSlot {
    LocalSlot {
        name: name.into(),
        kind: SlotKind::Physical,
        restart_lsn: Some(restart),
        confirmed_flush_lsn: None,
        has_xmin: false,
        active: false,
        lost: false,
        managed,
    }
}

fn logical(name: &str, confirmed: u64, managed: bool) -> LocalSlot {
    LocalSlot {
        kind: SlotKind::Logical {
            database: "postgres".into(),
            plugin: "test_decoding".into(),
        },
        confirmed_flush_lsn: Some(confirmed),
        ..physical(name, confirmed, managed)
    }
}

const PERMANENT: &str = r#"{"slots":{"test_physical":0,"test_logical":{"type":"logical","database":"postgres","plugin":"test_decoding"}}}"#;

#[test]
fn the_leader_keeps_member_and_permanent_slots_and_publishes_their_positions() {
    let mut c = cluster();
    leading(&mut c);
    with_config(&mut c, PERMANENT);
    let pg = PgObservation {
        slots: Some(vec![
            physical("node1", 1000, true),
            physical("barman", 10, false),
        ]),
        ..primary(1200)
    };
    let mut l = local();
    l.lease_deadline = Some(NOW.plus_ms(10_000));
    l.member_slots_seen = [("node1", NOW), ("node2", NOW), ("node3", NOW)]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    let d = decide_with(&me(Tags::default()), Ok(&c), &pg, &l);
    assert_eq!(
        d.actions,
        vec![
            Action::RenewLock,
            Action::WriteStatus {
                optime: 1200,
                slots: Some([("node1".to_string(), 1000), ("node2".to_string(), 1200)].into()),
                retain_slots: Some(vec!["node1".into(), "node2".into(), "node3".into()]),
            },
            Action::SyncSlots(SlotPlan {
                create_physical: vec!["node3".into(), "test_physical".into()],
                create_logical: vec![(
                    "test_logical".into(),
                    "postgres".into(),
                    "test_decoding".into()
                )],
                ..Default::default()
            }),
        ],
        "{}",
        d.reason
    );
    assert!(
        d.is_heartbeat(),
        "keeping slots is a heartbeat, not a change to log"
    );
}

#[test]
fn a_standby_mirrors_member_and_permanent_slots_up_to_what_it_replayed() {
    let mut c = cluster();
    with_config(&mut c, PERMANENT);
    c.status = Some(Status {
        optime: Some(1000),
        slots: Some(
            [
                ("node1".to_string(), 1000),
                ("node3".to_string(), 900),
                ("test_physical".to_string(), 950),
                ("test_logical".to_string(), 990),
                ("gone".to_string(), 500),
            ]
            .into(),
        ),
        retain_slots: Some(vec!["node1".into(), "node2".into(), "gone".into()]),
        extra: Default::default(),
    });
    let pg = PgObservation {
        slots: Some(vec![
            physical("node1", 800, true),
            physical("node3", 900, true),
            logical("test_logical", 700, true),
            logical("someone_elses", 700, false),
        ]),
        replay_lsn: Some(980),
        ..replica(1000, "node1")
    };
    let d = decide_with(&me(Tags::default()), Ok(&c), &pg, &local());
    assert_eq!(
        d.actions,
        vec![Action::SyncSlots(SlotPlan {
            // A stale logical slot on a standby (left from when it was primary) cannot be consumed here.
            drop: vec!["someone_elses".into()],
            // The departed member `gone` keeps its slot while the leader retains it; nobody keeps one for itself.
            create_physical: vec!["gone".into(), "test_physical".into()],
            // Never past what this standby replayed (980 < 990).
            advance: vec![
                ("node1".into(), None, 1000),
                ("test_logical".into(), Some("postgres".into()), 980)
            ],
            ..Default::default()
        })],
        "{}",
        d.reason
    );
}

#[test]
fn a_standby_copies_a_permanent_logical_slot_once_the_leader_published_it() {
    let mut c = cluster();
    with_config(&mut c, PERMANENT);
    let pg = PgObservation {
        slots: Some(vec![
            physical("node1", 1000, true),
            physical("node3", 1000, true),
            physical("test_physical", 1000, true),
        ]),
        ..replica(1000, "node1")
    };
    let d = decide_with(&me(Tags::default()), Ok(&c), &pg, &local());
    assert_eq!(
        d.actions,
        vec![],
        "no position published yet: nothing to copy"
    );
    c.status.as_mut().unwrap().slots = Some([("test_logical".to_string(), 990)].into());
    let d = decide_with(&me(Tags::default()), Ok(&c), &pg, &local());
    assert_eq!(
        d.actions,
        vec![Action::CopyLogicalSlots {
            source: up("node1"),
            names: vec!["test_logical".into()]
        }]
    );
}

#[test]
fn nofailover_and_cascading_nodes_keep_only_the_slots_of_who_streams_from_them() {
    let mut c = cluster();
    with_config(&mut c, PERMANENT);
    c.members.push(member(
        "node4",
        "replica",
        "running",
        900,
        2,
        Tags {
            replicatefrom: Some("node2".into()),
            ..Default::default()
        },
    ));
    let nofailover = Tags {
        nofailover: Some(true),
        ..Default::default()
    };
    let cfg = c.config.as_ref().unwrap().value.clone();
    let (w, _) = wanted_slots(&c, "node2", &nofailover, &cfg, false);
    assert_eq!(w.keys().collect::<Vec<_>>(), vec!["node4"]);
    assert_eq!(w["node4"].expected_active, Some(true));
    assert_eq!(
        w["node4"].target,
        Some(900),
        "advanced to what the member reports"
    );
    // Without retention (member_slots_ttl 0) the leader keeps the slots of who streams from it: node4 streams from
    // node2, so its slot on the leader is not expected active (and advanced from node4's reported position).
    with_config(&mut c, r#"{"member_slots_ttl":0}"#);
    let cfg = c.config.as_ref().unwrap().value.clone();
    let (w, _) = wanted_slots(&c, "node1", &Tags::default(), &cfg, true);
    assert_eq!(
        w.keys().collect::<Vec<_>>(),
        vec!["node2", "node3", "test_logical", "test_physical"]
    );
    let (w, _) = wanted_slots(&c, "node2", &Tags::default(), &cfg, false);
    assert_eq!(
        w.keys().collect::<Vec<_>>(),
        vec!["node4", "test_logical", "test_physical"]
    );
    with_config(&mut c, r#"{"postgresql":{"use_slots":false}}"#);
    let cfg = c.config.as_ref().unwrap().value.clone();
    assert!(wanted_slots(&c, "node1", &Tags::default(), &cfg, true)
        .0
        .is_empty());
}

#[test]
fn what_is_never_dropped_and_what_is() {
    let cfg: GlobalConfig = serde_json::from_str(
        r#"{"ignore_slots":[{"name":"unmanaged_slot_0","type":"logical"},{"database":"app"}]}"#,
    )
    .unwrap();
    let app = LocalSlot {
        kind: SlotKind::Logical {
            database: "app".into(),
            plugin: "pgoutput".into(),
        },
        ..logical("debezium", 10, false)
    };
    let local = vec![
        physical("barman", 10, false),
        physical("old_member", 10, true),
        logical("unmanaged_slot_0", 10, false),
        app.clone(),
        LocalSlot {
            active: true,
            ..physical("in_use", 10, true)
        },
    ];
    let none = Default::default();
    let (p, _) = plan(&none, &local, &cfg, true, 0, true);
    assert_eq!(
        p.drop,
        vec!["old_member"],
        "on a primary: only what hactl made"
    );
    let (p, _) = plan(&none, &local, &cfg, false, 0, true);
    assert_eq!(
        p.drop,
        vec!["old_member"],
        "on a standby too: the ignored logical slots stay"
    );
    let (p, _) = plan(&none, &[logical("dummy", 10, false)], &cfg, false, 0, true);
    assert_eq!(
        p.drop,
        vec!["dummy"],
        "a stale logical slot on a standby goes"
    );
    let paused: GlobalConfig = serde_json::from_str(r#"{"pause":true}"#).unwrap();
    let (p, _) = plan(&none, &local, &paused, true, 0, true);
    assert!(p.drop.is_empty(), "nothing is dropped while paused");
}

#[test]
fn an_idle_member_slot_that_holds_an_xmin_is_made_again() {
    let mut c = cluster();
    let cfg = c.config.as_ref().unwrap().value.clone();
    // node2 is a standby: node1 (the leader) does not stream from it, so its slot here is idle.
    let (w, _) = wanted_slots(&c, "node2", &Tags::default(), &cfg, false);
    let held = LocalSlot {
        has_xmin: true,
        ..physical("node1", 500, true)
    };
    let (p, _) = plan(&w, &[held.clone()], &cfg, false, 1000, true);
    assert_eq!(p.drop, vec!["node1"]);
    // Without a leader nothing is cleaned: the slot may still be what a promoted node needs.
    c.leader = None;
    let (p, _) = plan(&w, &[held], &cfg, false, 1000, false);
    assert!(p.drop.is_empty());
}

#[test]
fn the_leader_remembers_departed_members_for_member_slots_ttl() {
    let mut c = cluster();
    leading(&mut c);
    c.status.as_mut().unwrap().retain_slots = Some(vec!["old".into()]);
    let cfg: GlobalConfig = serde_json::from_str(r#"{"member_slots_ttl":"1min"}"#).unwrap();
    let mut seen = Default::default();
    remember_members(&mut seen, &c, "node2", &cfg, Millis(0));
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        vec!["node1", "node2", "node3", "old"],
        "a new leader starts from its predecessor's list"
    );
    c.members.retain(|m| m.name != "node3");
    remember_members(&mut seen, &c, "node2", &cfg, Millis(59_000));
    assert!(seen.contains_key("node3"));
    remember_members(&mut seen, &c, "node2", &cfg, Millis(60_000));
    assert_eq!(seen.keys().collect::<Vec<_>>(), vec!["node1", "node2"]);
}

#[test]
fn a_slot_in_use_is_never_advanced_by_hand() {
    let c = cluster();
    let cfg = c.config.as_ref().unwrap().value.clone();
    let (w, _) = wanted_slots(&c, "node2", &Tags::default(), &cfg, false);
    assert_eq!(w["node1"].expected_active, Some(false));
    let in_use = LocalSlot {
        active: true,
        ..physical("node1", 500, true)
    };
    let mut published = w.clone();
    published.get_mut("node1").unwrap().target = Some(900);
    let (p, _) = plan(&published, &[in_use.clone()], &cfg, false, 1000, true);
    assert!(p.advance.is_empty() && p.drop.is_empty(), "{p:?}");
    let idle = LocalSlot {
        active: false,
        ..in_use
    };
    let (p, _) = plan(&published, &[idle], &cfg, false, 1000, true);
    assert_eq!(p.advance, vec![("node1".to_string(), None, 900)]);
}
