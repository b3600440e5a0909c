//! PostgreSQL does not answer: fenced after retry_timeout, the lock released only after.

use ha_core::decision::{Action, LocalState};
use ha_core::pg::{PgObservation, PgRunState};
use ha_core::time::Millis;

use crate::support::{case, check, cluster, leading, local, primary, Case, NOW};

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
