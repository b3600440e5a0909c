//! **No failover and no fencing without a fault.** In a stability run (see [`crate::sim::SimConfig::stability`])
//! only latency below the bound the timing allows is injected: a primary demoted or fenced there is an outage the
//! configuration promised not to cause (the price of a margin or a deadline set too tight).

use super::Violation;
use crate::time::Millis;

/// This invariant's name in a [`Violation`].
pub const NAME: &str = "stability";

/// A violation if servers were promoted or fenced after the cluster formed (`before` the counts then, `after` now).
pub fn check(before: (u64, u64), after: (u64, u64), now: Millis) -> Option<Violation> {
    let (promotions, fences) = (after.0 - before.0, after.1 - before.1);
    (promotions + fences > 0).then(|| Violation {
        at: now,
        invariant: NAME,
        detail: format!(
            "{promotions} promotions and {fences} fencings with nothing but DCS latency within the bound"
        ),
    })
}
