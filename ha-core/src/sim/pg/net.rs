//! All simulated servers of a cluster in one place, so a replica can stream from its upstream and a clone can copy its
//! source; [`SimPgNet::replicate_step`] moves WAL one step, following timeline switches a replica did not write past.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{SimPg, SimPgState, SimRun};
use crate::sync::lock;

/// All simulated servers, by node name.
#[derive(Debug, Default)]
pub struct SimPgNetInner {
    /// Every server, by node name.
    pub servers: BTreeMap<String, SimPgState>,
    pub(super) next_sysid: u64,
    /// Bytes a replica receives per simulated step.
    pub stream_bytes_per_step: u64,
    /// Servers whose WAL stream to replicas is cut (not used by default).
    pub no_stream: BTreeSet<String>,
    /// Replicas whose replication connection is cut (their DCS and REST connections are not).
    pub no_receive: BTreeSet<String>,
    /// Replicas on a slower link: bytes they receive per step (less than the client writes: they fall behind).
    pub slow_link: BTreeMap<String, u64>,
}

/// Shared handle to all simulated servers.
#[derive(Debug, Clone, Default)]
pub struct SimPgNet(pub Arc<Mutex<SimPgNetInner>>);

impl SimPgNet {
    /// No server yet; replicas receive 64 KiB per step.
    pub fn new() -> SimPgNet {
        let net = SimPgNet::default();
        {
            let mut g = net.lock();
            g.next_sysid = 7_300_000_000_000_000_000;
            g.stream_bytes_per_step = 64 * 1024;
        }
        net
    }
    /// Locks every server at once, to read or change their state (tests, fault injection).
    pub fn lock(&self) -> MutexGuard<'_, SimPgNetInner> {
        lock(&self.0)
    }
    /// A server for `name`, with an empty data directory.
    pub fn server(&self, name: &str) -> SimPg {
        self.lock()
            .servers
            .entry(name.to_string())
            .or_insert_with(SimPgState::empty);
        SimPg {
            net: self.clone(),
            name: name.to_string(),
        }
    }
    /// A copy of `name`'s server state, if it has a server.
    pub fn state(&self, name: &str) -> Option<SimPgState> {
        self.lock().servers.get(name).cloned()
    }
    /// Runs `f` on `name`'s server state; `None` if it has no server.
    pub fn with<T>(&self, name: &str, f: impl FnOnce(&mut SimPgState) -> T) -> Option<T> {
        self.lock().servers.get_mut(name).map(f)
    }

    /// Replicates in real time, one [`SimPgNet::replicate_step`] every `every`, on a tokio task (drivers running on a
    /// real DCS over simulated servers: benchmarks, tests). Abort the handle to stop it.
    pub fn replicate_in_background(
        &self,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let net = self.clone();
        tokio::spawn(async move {
            loop {
                net.replicate_step();
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Moves WAL one step: each running replica receives from its running upstream what it can. A replica on an
    /// older timeline follows the switch only if it did not go past the fork point; otherwise it is diverged and
    /// stops streaming.
    pub fn replicate_step(&self) {
        let mut g = self.lock();
        let step = g.stream_bytes_per_step;
        let names: Vec<String> = g.servers.keys().cloned().collect();
        for n in names {
            let (up_name, rep_tl, rep_lsn) = match g.servers.get(&n) {
                Some(s) if s.run == SimRun::Running && s.standby && !g.no_receive.contains(&n) => {
                    match &s.upstream {
                        Some(u) => (u.clone(), s.timeline, s.lsn),
                        None => continue,
                    }
                }
                Some(_) if g.no_receive.contains(&n) => {
                    if let Some(r) = g.servers.get_mut(&n) {
                        r.streaming = false;
                    }
                    continue;
                }
                _ => continue,
            };
            let same_system = |up: &SimPgState| {
                g.servers
                    .get(&n)
                    .map_or(false, |r| r.system_id == up.system_id)
            };
            let streaming = match g.servers.get(&up_name) {
                Some(up)
                    if up.run == SimRun::Running
                        && same_system(up)
                        && !g.no_stream.contains(&up_name) =>
                {
                    if rep_tl == up.timeline {
                        Some((up.timeline, up.lsn, None))
                    } else if rep_tl < up.timeline
                        && up.end_of(rep_tl).map_or(false, |end| rep_lsn <= end)
                    {
                        Some((up.timeline, up.lsn, Some(up.history.clone())))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let slow = g.slow_link.get(&n).copied();
            if let Some(r) = g.servers.get_mut(&n) {
                match streaming {
                    Some((tl, up_lsn, switched_history)) => {
                        if let Some(hist) = switched_history {
                            r.timeline = tl;
                            r.history = hist;
                        }
                        if up_lsn > r.lsn {
                            r.lsn = (r.lsn + slow.unwrap_or(step)).min(up_lsn);
                        }
                        r.streaming = true;
                    }
                    None => r.streaming = false,
                }
            }
        }
    }
}
