//! **No PostgreSQL takes writes after the DCS server expired its node's leader lease.** Checked on ground truth:
//! the moment the server's own clock ended the lease, not what any node believes. Once the lease is gone another node
//! may take the lock and promote; a primary still committing past that moment writes what the next rewind throws
//! away. This is the claim the lease margin, the send-time lease and the fencer exist for, so it must hold against
//! latency, lost replies, drifting clocks and a fencer that kills a little late.

use std::collections::BTreeMap;

use super::Violation;
use crate::sim::pg::SimPgNet;
use crate::time::Millis;

/// This invariant's name in a [`Violation`].
pub const NAME: &str = "lease_safety";

/// A violation if a server whose node's leader lease the DCS expired (at `expired[node]`, true time, and not taken
/// again since) still accepts writes at `now`.
pub fn check(net: &SimPgNet, expired: &BTreeMap<String, Millis>, now: Millis) -> Option<Violation> {
    let g = net.lock();
    expired.iter().find_map(|(node, at)| {
        let writable = g.servers.get(node).map_or(false, |s| s.accepts_writes());
        (writable && now >= *at).then(|| Violation {
            at: now,
            invariant: NAME,
            detail: format!(
                "{node} still accepts writes {} ms after the DCS server expired its leader lease",
                now.since(*at)
            ),
        })
    })
}
