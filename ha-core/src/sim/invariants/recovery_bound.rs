//! **A healed cluster has a primary again within a stated bound.** If this breaks, the cluster stays read-only
//! after every fault is gone: an outage the HA layer was supposed to end.
//!
//! The bound, from the moment the last fault healed: `ttl` (a dead holder's lease runs out) + 3 × `loop_wait`
//! (notice it, start PostgreSQL as a replica before the race, win the race and promote) + `retry_timeout`
//! (a call that was timing out when the fault healed); in failsafe mode one more `ttl`, because a restarted daemon
//! keeps out of the race for one ttl (it may have promised another node to).

use super::Violation;
use crate::model::Timing;
use crate::time::Millis;

/// This invariant's name in a [`Violation`].
pub const NAME: &str = "recovery_bound";

/// The bound in ms, as the module doc derives it.
pub fn bound_ms(t: &Timing, failsafe_mode: bool) -> u64 {
    t.ttl_ms + 3 * t.loop_wait_ms + t.retry_timeout_ms + if failsafe_mode { t.ttl_ms } else { 0 }
}

/// `first_primary_at`: the first instant after `healed_at` with a lock holder whose PostgreSQL takes writes.
pub fn check(
    healed_at: Millis,
    first_primary_at: Option<Millis>,
    now: Millis,
    t: &Timing,
    failsafe_mode: bool,
) -> Option<Violation> {
    let bound = bound_ms(t, failsafe_mode);
    let deadline = healed_at.plus_ms(bound);
    match first_primary_at {
        Some(at) if at <= deadline => None,
        Some(at) => Some(Violation {
            at,
            invariant: NAME,
            detail: format!(
                "a primary came back {} ms after healing, bound {} ms",
                at.since(healed_at),
                bound
            ),
        }),
        None if now > deadline => Some(Violation {
            at: now,
            invariant: NAME,
            detail: format!(
                "no primary {} ms after healing, bound {} ms",
                now.since(healed_at),
                bound
            ),
        }),
        None => None,
    }
}
