//! A simulated PostgreSQL: enough of a server to exercise the HA logic — roles, timelines, WAL positions,
//! streaming, divergence, rewind, hangs and crashes — with every call completing at once on virtual time.
//!
//! All servers of a simulated cluster live in one [`SimPgNet`], so a replica can stream from its upstream and a
//! clone can copy its source.
//!
//! # Layout
//! - this file: one server's state ([`SimPgState`], [`SimRun`]) and one node's handle on it ([`SimPg`]);
//! - `net`: all servers of a cluster ([`SimPgNet`]) and the WAL stream between them;
//! - `control`: [`SimPg`]'s [`PgControl`](crate::pg::PgControl), what each call does to the simulated server;
//! - `sync_rep`: synchronous replication on a primary (`pg_stat_replication`'s `sync_state`, which commits are
//!   acknowledged).

mod control;
mod net;
mod sync_rep;

pub use net::{SimPgNet, SimPgNetInner};

use std::collections::BTreeMap;

use crate::pg::{PgError, TimelineSwitch, Upstream};

/// Parameters that only a restart applies (a small sample of PostgreSQL's, enough for the pending-restart rule).
pub const RESTART_PARAMETERS: &[&str] = &[
    "max_connections",
    "shared_buffers",
    "max_wal_senders",
    "wal_level",
    "port",
];

/// Whether a simulated server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimRun {
    /// Not running: cleanly stopped, or never started.
    Stopped,
    /// Killed or crashed (pid file left behind).
    Crashed,
    /// Running and answering.
    Running,
    /// Alive but answering nothing (SIGSTOP): still serving the connections it has, as a stopped postmaster's
    /// backends do, so it still accepts writes.
    Hung,
}

/// One simulated server and its data directory.
#[derive(Debug, Clone)]
pub struct SimPgState {
    /// The data directory exists (bootstrapped or copied).
    pub initialized: bool,
    /// The system identifier of its data; empty before it is initialized.
    pub system_id: String,
    /// Running, stopped, crashed or hung.
    pub run: SimRun,
    /// standby.signal present: starts (and runs) in recovery.
    pub standby: bool,
    /// The timeline it is on; 0 before it is initialized.
    pub timeline: u64,
    /// Its WAL position in bytes (on a standby, received and replayed at once).
    pub lsn: u64,
    /// Its timeline switches, as its `.history` files would hold them.
    pub history: Vec<TimelineSwitch>,
    /// The node it replicates from, as a standby.
    pub upstream: Option<String>,
    /// Its WAL receiver streams from the upstream (as of the last replication step).
    pub streaming: bool,
    /// Parameters written to the configuration files.
    pub configured: BTreeMap<String, String>,
    /// In effect in the running server: the files' values as of its last start, and `synchronous_standby_names` as set.
    pub running_with: BTreeMap<String, String>,
    /// Times it left recovery: promoted, or a standby's data started as a primary (for reports).
    pub promotions: u64,
    /// Times it was fenced, by its driver or its watchdog.
    pub fences: u64,
    /// Times it was rewound.
    pub rewinds: u64,
    /// A stop never returns (a shutdown waiting on something that never comes). Only for tests that run the
    /// driver on a tokio runtime: the stepped simulator cannot wait.
    pub stop_hangs: bool,
}

impl SimPgState {
    fn empty() -> Self {
        SimPgState {
            initialized: false,
            system_id: String::new(),
            run: SimRun::Stopped,
            standby: false,
            timeline: 0,
            lsn: 0,
            history: Vec::new(),
            upstream: None,
            streaming: false,
            configured: BTreeMap::new(),
            running_with: BTreeMap::new(),
            promotions: 0,
            fences: 0,
            rewinds: 0,
            stop_hangs: false,
        }
    }
    /// Running (or hung with live backends) and out of recovery: it takes writes.
    pub fn accepts_writes(&self) -> bool {
        matches!(self.run, SimRun::Running | SimRun::Hung) && !self.standby
    }
    /// Running or hung: a process that still serves the connections it has.
    pub fn alive(&self) -> bool {
        matches!(self.run, SimRun::Running | SimRun::Hung)
    }
    /// Where this server's history left `timeline` (`None`: it never did, or never was on it).
    pub fn end_of(&self, timeline: u64) -> Option<u64> {
        crate::pg::timeline_end(&self.history, timeline)
    }
}

/// One node's view of its simulated server: implements [`PgControl`](crate::pg::PgControl).
#[derive(Debug, Clone)]
pub struct SimPg {
    net: SimPgNet,
    name: String,
}

impl SimPg {
    /// The node name of the server this handle drives.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// All the servers of the cluster this one belongs to.
    pub fn net(&self) -> &SimPgNet {
        &self.net
    }
    fn with<T>(&self, f: impl FnOnce(&mut SimPgState) -> T) -> T {
        let mut g = self.net.lock();
        let s = g
            .servers
            .entry(self.name.clone())
            .or_insert_with(SimPgState::empty);
        f(s)
    }
    fn check_answers(&self, op: &str) -> Result<(), PgError> {
        self.with(|s| {
            if s.run == SimRun::Hung {
                Err(PgError::Timeout {
                    operation: op.to_string(),
                    timeout_ms: 0,
                })
            } else {
                Ok(())
            }
        })
    }
    fn copy_from(&self, source: &Upstream, op: &str) -> Result<(), PgError> {
        let mut g = self.net.lock();
        let src = match g.servers.get(&source.name) {
            Some(s) if s.run == SimRun::Running => s.clone(),
            _ => {
                return Err(PgError::failed(
                    op,
                    format!("{} is not running", source.name),
                ))
            }
        };
        let s = g
            .servers
            .entry(self.name.clone())
            .or_insert_with(SimPgState::empty);
        if s.alive() {
            return Err(PgError::Refused {
                operation: op.into(),
                reason: "PostgreSQL is running".into(),
            });
        }
        s.initialized = true;
        s.system_id = src.system_id.clone();
        s.timeline = src.timeline;
        s.lsn = src.lsn;
        s.history = src.history.clone();
        s.standby = true;
        s.run = SimRun::Stopped;
        s.upstream = Some(source.name.clone());
        s.configured = src.configured.clone();
        Ok(())
    }
}
