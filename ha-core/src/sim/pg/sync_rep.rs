//! Synchronous replication on a simulated primary, as PostgreSQL applies `synchronous_standby_names`: which
//! connected standbys are `sync`, `potential`, `quorum` or `async` (its `pg_stat_replication`), and up to which
//! position a commit is acknowledged (every commit at or below it; later ones wait).
//!
//! A standby is connected when it runs, streams from this primary and is on its timeline. `FIRST n (...)` makes
//! the first `n` connected standbys in list order synchronous and waits for all of them; `ANY n (...)` waits for
//! any `n` listed; an empty value waits for nobody. Fewer connected standbys than `n`: commits wait.

use super::net::SimPgNetInner;
use super::SimRun;
use crate::decision::standby_names::{self, SyncKind};
use crate::pg::ReplicationRow;

/// One connected standby: its name and flushed position.
struct Walsender {
    name: String,
    flush: u64,
}

impl SimPgNetInner {
    fn walsenders(&self, primary: &str) -> Vec<Walsender> {
        let Some(p) = self.servers.get(primary) else {
            return Vec::new();
        };
        self.servers
            .iter()
            .filter(|(n, s)| {
                n.as_str() != primary
                    && s.run == SimRun::Running
                    && s.standby
                    && s.streaming
                    && s.upstream.as_deref() == Some(primary)
                    && s.system_id == p.system_id
                    && s.timeline == p.timeline
            })
            .map(|(n, s)| Walsender {
                name: n.clone(),
                flush: s.lsn,
            })
            .collect()
    }

    /// `(name, sync_state, flush)` of each connected standby, as `pg_stat_replication` shows them.
    fn sync_states(&self, primary: &str) -> Vec<(String, &'static str, u64)> {
        let senders = self.walsenders(primary);
        let ssn = self
            .servers
            .get(primary)
            .and_then(|s| s.running_with.get("synchronous_standby_names"))
            .map(|v| standby_names::parse(v).unwrap_or_else(|_| standby_names::StandbyNames::off()))
            .unwrap_or_else(standby_names::StandbyNames::off);
        let listed = |name: &str| ssn.has_star || ssn.names.iter().any(|n| n == name);
        // FIRST n: the first n connected in list order (a standby `*` matches takes the order of its name).
        let mut first: Vec<&Walsender> = senders.iter().filter(|w| listed(&w.name)).collect();
        first.sort_by_key(|w| {
            ssn.names
                .iter()
                .position(|n| *n == w.name)
                .unwrap_or(usize::MAX)
        });
        let sync: Vec<&str> = first
            .iter()
            .take(ssn.num)
            .map(|w| w.name.as_str())
            .collect();
        senders
            .iter()
            .map(|w| {
                let state = match ssn.kind {
                    SyncKind::Off => "async",
                    _ if !listed(&w.name) => "async",
                    SyncKind::Quorum => "quorum",
                    SyncKind::Priority if sync.contains(&w.name.as_str()) => "sync",
                    SyncKind::Priority => "potential",
                };
                (w.name.clone(), state, w.flush)
            })
            .collect()
    }

    /// `pg_stat_replication` on `primary`.
    pub fn replication_rows(&self, primary: &str) -> Vec<ReplicationRow> {
        self.sync_states(primary)
            .into_iter()
            .map(|(name, state, flush)| ReplicationRow {
                application_name: name,
                state: "streaming".into(),
                sync_state: state.into(),
                write_lsn: Some(flush),
                flush_lsn: Some(flush),
                replay_lsn: Some(flush),
                ..Default::default()
            })
            .collect()
    }

    /// Every commit on `primary` at or below this position is acknowledged to its client; `None` when commits wait
    /// (the rule is not met by the standbys connected now).
    pub fn acknowledged_upto(&self, primary: &str) -> Option<u64> {
        let p = self.servers.get(primary)?;
        let ssn = p
            .running_with
            .get("synchronous_standby_names")
            .map(|v| standby_names::parse(v).unwrap_or_else(|_| standby_names::StandbyNames::off()))
            .unwrap_or_else(standby_names::StandbyNames::off);
        if ssn.kind == SyncKind::Off || ssn.num == 0 {
            return Some(p.lsn);
        }
        let states = self.sync_states(primary);
        let mut waited: Vec<u64> = states
            .iter()
            .filter(|(_, s, _)| matches!(*s, "sync" | "quorum"))
            .map(|(_, _, f)| *f)
            .collect();
        if waited.len() < ssn.num {
            return None;
        }
        // FIRST n: all n synchronous ones; ANY n: the n-th furthest.
        waited.sort_unstable_by(|a, b| b.cmp(a));
        let upto = match ssn.kind {
            SyncKind::Quorum => waited[ssn.num - 1],
            _ => waited.iter().copied().min().unwrap_or(0),
        };
        Some(upto.min(p.lsn))
    }
}
