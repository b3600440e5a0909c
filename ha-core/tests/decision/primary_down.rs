//! The leader's PostgreSQL is down: restart it while `primary_start_timeout` runs, then hand the lock to a replica
//! that can take over, never to nobody.

use ha_core::decision::{Action, LocalState};
use ha_core::model::{Cluster, Tags};
use ha_core::pg::{PgObservation, PgRunState, StopMode};
use ha_core::time::Millis;

use crate::support::{case, check, cluster, leading, local, member, primary, Case, NOW};

fn down_for(secs: u64) -> LocalState {
    LocalState {
        primary_down_since: Some(Millis(NOW.0 - secs * 1000)),
        ..local()
    }
}

fn pg(state: PgRunState) -> PgObservation {
    PgObservation {
        run_state: Some(state),
        ..primary(1000)
    }
}

fn with_start_timeout(mut c: Cluster, key: &str, secs: f64) -> Cluster {
    let cfg = &mut c.config.as_mut().unwrap().value;
    if key == "primary_start_timeout" {
        cfg.primary_start_timeout = Some(secs);
    } else {
        cfg.extra.insert(key.into(), secs.into());
    }
    c
}

const HAND_OVER: [Action; 3] = [
    Action::Stop(StopMode::Immediate),
    Action::ForgetLease,
    Action::ReleaseLock,
];

#[test]
fn a_leader_restarts_its_postgres_until_primary_start_timeout_then_hands_over_if_someone_can_take_over(
) {
    let mut lead = cluster();
    leading(&mut lead);
    let mut alone = lead.clone();
    for i in [0, 2] {
        let name = alone.members[i].name.clone();
        alone.members[i] = member(
            &name,
            "replica",
            "running",
            1000,
            2,
            Tags {
                nofailover: Some(true),
                ..Default::default()
            },
        );
    }
    let zero = with_start_timeout(lead.clone(), "primary_start_timeout", 0.0);
    let legacy_zero = with_start_timeout(lead.clone(), "master_start_timeout", 0.0);
    check(vec![
        Case {
            local: down_for(0),
            ..case(
                "a crash is restarted in place, the lock kept (default timeout 300 s)",
                lead.clone(),
                pg(PgRunState::Crashed),
                vec![Action::RenewLock, Action::StartPrimary],
                "starting PostgreSQL as primary",
            )
        },
        Case {
            local: down_for(60),
            ..case(
                "a long crash recovery keeps the lock and says how long is left",
                lead.clone(),
                pg(PgRunState::Starting),
                vec![Action::RenewLock],
                "PostgreSQL is still starting up, 240 seconds until timeout",
            )
        },
        Case {
            local: down_for(301),
            ..case(
                "a start that outlasts primary_start_timeout hands the lock to a replica that can take over",
                lead.clone(),
                pg(PgRunState::Starting),
                HAND_OVER.to_vec(),
                "over primary_start_timeout (300 s); node1 can take over",
            )
        },
        Case {
            local: down_for(301),
            ..case(
                "a start that keeps failing hands over too (Patroni restarts it forever)",
                lead.clone(),
                pg(PgRunState::Stopped),
                HAND_OVER.to_vec(),
                "node1 can take over",
            )
        },
        Case {
            local: down_for(0),
            ..case(
                "primary_start_timeout 0 fails over at once after a crash",
                zero.clone(),
                pg(PgRunState::Crashed),
                HAND_OVER.to_vec(),
                "primary_start_timeout is 0; node1 can take over",
            )
        },
        Case {
            local: down_for(0),
            ..case(
                "so does the old name, master_start_timeout",
                legacy_zero,
                pg(PgRunState::Crashed),
                HAND_OVER.to_vec(),
                "primary_start_timeout is 0",
            )
        },
        Case {
            local: down_for(400),
            ..case(
                "with nobody to take over the lock is kept and the start retried",
                alone.clone(),
                pg(PgRunState::Crashed),
                vec![Action::RenewLock, Action::StartPrimary],
                "primary_start_timeout has run out, but failover is not possible",
            )
        },
        Case {
            local: down_for(400),
            ..case(
                "and a slow start is waited for",
                alone,
                pg(PgRunState::Starting),
                vec![Action::RenewLock],
                "continuing to wait because failover is not possible",
            )
        },
        Case {
            local: down_for(0),
            ..case(
                "a replica lagging past maximum_lag_on_failover cannot take over",
                {
                    let mut c = with_start_timeout(lead.clone(), "primary_start_timeout", 0.0);
                    c.members[0] = member("node1", "replica", "running", 100, 2, Tags::default());
                    c.members[2] = member("node3", "replica", "running", 100, 2, Tags::default());
                    c
                },
                pg(PgRunState::Crashed),
                vec![Action::RenewLock, Action::StartPrimary],
                "failover is not possible",
            )
        },
    ]);
}
