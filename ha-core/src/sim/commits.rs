//! The client's commits: written to whoever accepts writes, acknowledged when the primary's replication rule allows
//! ([`SimPgNetInner::acknowledged_upto`](super::pg::SimPgNetInner::acknowledged_upto)), abandoned (the client
//! gets an error) when that server stops taking writes first. What was acknowledged is what
//! [`invariants::acked_commits`](super::invariants::acked_commits) holds every later primary to.

use std::collections::BTreeMap;

use super::pg::SimPgNet;

/// The furthest acknowledged commit on one timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub lsn: u64,
    /// The primary that acknowledged it.
    pub by: String,
    /// That primary's timeline history then: where each earlier timeline of its lineage ended.
    pub history: Vec<crate::pg::TimelineSwitch>,
}

#[derive(Debug, Default)]
pub(super) struct Commits {
    /// Per server: the timeline its waiting commits were written on, and their positions.
    waiting: BTreeMap<String, (u64, Vec<u64>)>,
    /// Per timeline: the furthest acknowledged commit.
    pub(super) acked: BTreeMap<u64, Acked>,
    /// How many commits were acknowledged.
    pub(super) count: u64,
}

impl Commits {
    /// A commit of `bytes` on every server that takes writes, then every acknowledgement now due.
    pub(super) fn write_and_settle(&mut self, net: &SimPgNet, bytes: u64) {
        let mut g = net.lock();
        for (name, s) in g.servers.iter_mut() {
            if s.accepts_writes() {
                s.lsn += bytes;
                let w = self
                    .waiting
                    .entry(name.clone())
                    .or_insert((s.timeline, Vec::new()));
                if w.0 != s.timeline {
                    *w = (s.timeline, Vec::new());
                }
                w.1.push(s.lsn);
            }
        }
        let names: Vec<String> = self.waiting.keys().cloned().collect();
        for name in names {
            let (writable, timeline, history) = match g.servers.get(&name) {
                Some(s) => (s.accepts_writes(), s.timeline, s.history.clone()),
                None => (false, 0, Vec::new()),
            };
            let Some((tl, lsns)) = self.waiting.get_mut(&name) else {
                continue;
            };
            if !writable || *tl != timeline {
                // The server stopped taking writes (or was promoted anew): its waiting clients get errors.
                self.waiting.remove(&name);
                continue;
            }
            let Some(upto) = g.acknowledged_upto(&name) else {
                continue;
            };
            let done = lsns.iter().take_while(|l| **l <= upto).count();
            if done == 0 {
                continue;
            }
            let last = lsns[done - 1];
            lsns.drain(..done);
            self.count += done as u64;
            let tl = *tl;
            let e = self.acked.entry(tl).or_insert(Acked {
                lsn: 0,
                by: name.clone(),
                history: Vec::new(),
            });
            if last > e.lsn {
                *e = Acked {
                    lsn: last,
                    by: name.clone(),
                    history,
                };
            }
        }
        drop(g);
    }
}
