//! A switchover or manual failover request, seen from the leader and from the others.

use ha_core::decision::Action;
use ha_core::model::{Failover, Tags, Versioned};
use ha_core::pg::StopMode;

use crate::support::{case, check, cluster, leading, member, primary, replica, without_leader};

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
                Action::WriteStatus {
                    optime: 1000,
                    slots: None,
                    retain_slots: None,
                },
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
fn primary_stop_timeout_bounds_a_primary_stop_only_in_a_synchronous_mode() {
    use ha_core::decision::stop_primary;
    use ha_core::model::GlobalConfig;
    use ha_core::pg::StopMode;
    let mut cfg = GlobalConfig::default();
    cfg.extra.insert("primary_stop_timeout".into(), 5.into());
    assert_eq!(
        stop_primary(&cfg, StopMode::Fast),
        Action::Stop(StopMode::Fast),
        "asynchronous: no bound, as Patroni"
    );
    cfg.synchronous_mode = Some("quorum".into());
    let bounded = Action::StopOrKill {
        mode: StopMode::Fast,
        kill_after_ms: 5000,
    };
    assert_eq!(stop_primary(&cfg, StopMode::Fast), bounded);
    assert_eq!(
        stop_primary(&cfg, StopMode::Immediate),
        Action::Stop(StopMode::Immediate)
    );
    cfg.extra.remove("primary_stop_timeout");
    cfg.extra.insert("master_stop_timeout".into(), "5".into());
    assert_eq!(
        stop_primary(&cfg, StopMode::Fast),
        bounded,
        "the old name, as a string"
    );
    cfg.extra.insert("master_stop_timeout".into(), 0.into());
    assert_eq!(
        stop_primary(&cfg, StopMode::Fast),
        Action::Stop(StopMode::Fast),
        "0: does not apply"
    );
}
