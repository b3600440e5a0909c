//! **Once the faults are healed, every other node streams from the cluster again.** If this breaks, a replica is
//! silently lost to the cluster after a failover: it runs, answers, reports "following a leader", yet receives
//! nothing, so it is neither a failover candidate worth having nor a synchronous standby, and in `synchronous_mode:
//! strict` the writes stall. The case that found it: an asynchronous standby that had replayed WAL the promoted node
//! never had, left running on the old timeline (PostgreSQL refuses to stream a timeline that forked off before its
//! recovery point).
//!
//! Checked once, at the end of the run (at least `ttl` + 3 × `loop_wait` + `retry_timeout` + 2 × `ttl` after the
//! heal): each initialized server other than the leader's runs as a standby and streams.

use super::Violation;
use crate::sim::pg::{SimPgState, SimRun};
use crate::time::Millis;

/// This invariant's name in a [`Violation`].
pub const NAME: &str = "replicas_rejoin";

/// `servers`: every node's simulated server by name; `leader`: the lock holder's name, if any.
pub fn check<'a>(
    servers: impl IntoIterator<Item = (&'a String, &'a SimPgState)>,
    leader: Option<&str>,
    now: Millis,
) -> Option<Violation> {
    let servers: Vec<(&String, &SimPgState)> = servers.into_iter().collect();
    let lead = servers
        .iter()
        .find(|(name, _)| Some(name.as_str()) == leader)
        .map(|(name, s)| {
            format!(
                "; the leader {name} is on timeline {} at {}",
                s.timeline, s.lsn
            )
        })
        .unwrap_or_default();
    let stuck: Vec<String> = servers
        .iter()
        .filter(|(name, s)| Some(name.as_str()) != leader && s.initialized)
        .filter(|(_, s)| !(s.run == SimRun::Running && s.standby && s.streaming))
        .map(|(name, s)| {
            format!(
                "{name} ({:?}, {}, timeline {} at {}, upstream {:?}, history {:?})",
                s.run,
                if s.standby { "standby" } else { "primary" },
                s.timeline,
                s.lsn,
                s.upstream,
                s.history.last()
            )
        })
        .collect();
    (!stuck.is_empty()).then(|| Violation {
        at: now,
        invariant: NAME,
        detail: format!(
            "not streaming at the end of the run: {}{lead}",
            stuck.join(", ")
        ),
    })
}
