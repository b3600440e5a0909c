//! PostgreSQL does not answer (a hung postmaster). Until `retry_timeout` the node waits (a leader keeps renewing);
//! after it, the server is fenced, and a lock holder releases the lock only once its hung primary is fenced.

use super::{Action, Decision, Observation};

pub(super) fn unresponsive(obs: &Observation, i_am_leader: bool) -> Decision {
    let timing = obs.local.timing;
    let since = obs.local.unresponsive_since.unwrap_or(obs.now);
    let hung_ms = obs.now.since(since);
    let holder = i_am_leader || obs.local.lease_deadline.is_some();
    if hung_ms >= timing.retry_timeout_ms {
        if holder {
            return Decision::new(
                vec![Action::Fence, Action::ForgetLease, Action::ReleaseLock],
                format!(
                    "PostgreSQL has not answered for {hung_ms} ms (retry_timeout {} ms): fenced it and released the leader lock",
                    timing.retry_timeout_ms
                ),
            )
            .then_rerun();
        }
        return Decision::new(
            vec![Action::Fence],
            format!("PostgreSQL has not answered for {hung_ms} ms: fenced it, it will be started again as a replica"),
        );
    }
    if i_am_leader {
        return Decision::new(
            vec![Action::RenewLock],
            format!("PostgreSQL has not answered for {hung_ms} ms; keeping the lock until retry_timeout"),
        );
    }
    Decision::none(format!(
        "PostgreSQL has not answered for {hung_ms} ms; waiting"
    ))
}
