//! **Never two nodes accepting writes at the same moment.** If this breaks, clients write to two primaries and one
//! side's acknowledged transactions are thrown away by the rewind that follows: silent data loss (split brain).

use super::Violation;
use crate::sim::pg::SimPgNet;
use crate::time::Millis;

/// This invariant's name in a [`Violation`].
pub const NAME: &str = "single_writer";

/// A violation if more than one server accepts writes at `now` (a hung primary counts: its backends still commit).
pub fn check(net: &SimPgNet, now: Millis) -> Option<Violation> {
    let g = net.lock();
    let writers: Vec<&String> = g
        .servers
        .iter()
        .filter(|(_, s)| s.accepts_writes())
        .map(|(n, _)| n)
        .collect();
    if writers.len() > 1 {
        return Some(Violation {
            at: now,
            invariant: NAME,
            detail: format!("{} accept writes at once: {writers:?}", writers.len()),
        });
    }
    None
}
