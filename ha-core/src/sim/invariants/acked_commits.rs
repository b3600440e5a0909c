//! **No acknowledged commit is missing from a later primary** (synchronous modes), or, asynchronous, no more is
//! missing than `maximum_lag_on_failover` and the writes of one lease allow. If this breaks, a client was told its
//! transaction committed and the cluster then went on without it.
//!
//! A primary on timeline `t` holds the commits acknowledged on an earlier timeline `e` up to where its history
//! left `e`; of a later timeline's, it holds what precedes the point where that timeline's lineage left `t`.

use std::collections::BTreeMap;

use super::Violation;
use crate::sim::commits::Acked;
use crate::sim::pg::SimPgNet;
use crate::time::Millis;

/// The bytes of acknowledged commits the worst writable server lacks, and which.
pub fn missing(net: &SimPgNet, acked: &BTreeMap<u64, Acked>) -> Option<(u64, String)> {
    let g = net.lock();
    let mut worst: Option<(u64, String)> = None;
    for (name, s) in g.servers.iter().filter(|(_, s)| s.accepts_writes()) {
        for (tl, a) in acked {
            let held = match (*tl).cmp(&s.timeline) {
                std::cmp::Ordering::Equal => continue,
                std::cmp::Ordering::Less => s.end_of(*tl).unwrap_or(0),
                std::cmp::Ordering::Greater => a
                    .history
                    .iter()
                    .find(|sw| sw.timeline == s.timeline)
                    .map_or(0, |sw| sw.lsn.min(s.lsn)),
            };
            let lost = a.lsn.saturating_sub(held);
            if lost > 0 && worst.as_ref().map_or(true, |(w, _)| lost > *w) {
                worst = Some((
                    lost,
                    format!(
                        "{name} takes writes on timeline {} holding timeline {tl} up to {held}, but {} acknowledged \
                         commits on it up to {}: {lost} bytes of acknowledged commits lost",
                        s.timeline, a.by, a.lsn
                    ),
                ));
            }
        }
    }
    worst
}

/// In a synchronous mode any loss is a violation; asynchronous, a loss over `bound` bytes is.
pub fn check(
    net: &SimPgNet,
    acked: &BTreeMap<u64, Acked>,
    synchronous: bool,
    bound: u64,
    now: Millis,
) -> (Option<Violation>, u64) {
    match missing(net, acked) {
        Some((lost, detail)) if synchronous || lost > bound => (
            Some(Violation {
                at: now,
                invariant: "acked_commits",
                detail,
            }),
            lost,
        ),
        Some((lost, _)) => (None, lost),
        None => (None, 0),
    }
}
