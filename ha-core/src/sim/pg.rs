//! A simulated PostgreSQL: enough of a server to exercise the HA logic — roles, timelines, WAL positions,
//! streaming, divergence, rewind, hangs and crashes — with every call completing at once on virtual time.
//!
//! All servers of a simulated cluster live in one [`SimPgNet`], so a replica can stream from its upstream and a
//! clone can copy its source.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::pg::{
    ParamChange, PgControl, PgError, PgObservation, PgRunState, StopMode, TimelineSwitch, Upstream,
};

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
    Stopped,
    /// Killed or crashed (pid file left behind).
    Crashed,
    Running,
    /// Alive but answering nothing (SIGSTOP): still serving the connections it has, as a stopped postmaster's
    /// backends do, so it still accepts writes.
    Hung,
}

/// One simulated server and its data directory.
#[derive(Debug, Clone)]
pub struct SimPgState {
    pub initialized: bool,
    pub system_id: String,
    pub run: SimRun,
    /// standby.signal present: starts (and runs) in recovery.
    pub standby: bool,
    pub timeline: u64,
    pub lsn: u64,
    pub history: Vec<TimelineSwitch>,
    pub upstream: Option<String>,
    pub streaming: bool,
    /// Parameters written to the configuration / in effect in the running server.
    pub configured: BTreeMap<String, String>,
    pub running_with: BTreeMap<String, String>,
    /// Number of times the server was promoted, fenced, rewound (for reports).
    pub promotions: u64,
    pub fences: u64,
    pub rewinds: u64,
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
        }
    }
    /// Running (or hung with live backends) and out of recovery: it takes writes.
    pub fn accepts_writes(&self) -> bool {
        matches!(self.run, SimRun::Running | SimRun::Hung) && !self.standby
    }
    pub fn alive(&self) -> bool {
        matches!(self.run, SimRun::Running | SimRun::Hung)
    }
    fn end_of(&self, timeline: u64) -> Option<u64> {
        self.history
            .iter()
            .find(|s| s.timeline == timeline)
            .map(|s| s.lsn)
    }
}

/// All simulated servers, by node name.
#[derive(Debug, Default)]
pub struct SimPgNetInner {
    pub servers: BTreeMap<String, SimPgState>,
    next_sysid: u64,
    /// Bytes a replica receives per simulated step.
    pub stream_bytes_per_step: u64,
    /// Servers whose WAL stream to replicas is cut (not used by default).
    pub no_stream: BTreeSet<String>,
}

/// Shared handle to all simulated servers.
#[derive(Debug, Clone, Default)]
pub struct SimPgNet(pub Arc<Mutex<SimPgNetInner>>);

impl SimPgNet {
    pub fn new() -> SimPgNet {
        let net = SimPgNet::default();
        {
            let mut g = net.lock();
            g.next_sysid = 7_300_000_000_000_000_000;
            g.stream_bytes_per_step = 64 * 1024;
        }
        net
    }
    pub fn lock(&self) -> MutexGuard<'_, SimPgNetInner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
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
    pub fn state(&self, name: &str) -> Option<SimPgState> {
        self.lock().servers.get(name).cloned()
    }
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
                Some(s) if s.run == SimRun::Running && s.standby => match &s.upstream {
                    Some(u) => (u.clone(), s.timeline, s.lsn),
                    None => continue,
                },
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
            if let Some(r) = g.servers.get_mut(&n) {
                match streaming {
                    Some((tl, up_lsn, switched_history)) => {
                        if let Some(hist) = switched_history {
                            r.timeline = tl;
                            r.history = hist;
                        }
                        if up_lsn > r.lsn {
                            r.lsn = (r.lsn + step).min(up_lsn);
                        }
                        r.streaming = true;
                    }
                    None => r.streaming = false,
                }
            }
        }
    }
}

/// One node's view of its simulated server: implements [`PgControl`].
#[derive(Debug, Clone)]
pub struct SimPg {
    net: SimPgNet,
    name: String,
}

impl SimPg {
    pub fn name(&self) -> &str {
        &self.name
    }
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

#[async_trait]
impl PgControl for SimPg {
    async fn observe(&self) -> PgObservation {
        self.with(|s| {
            let run_state = if !s.initialized {
                PgRunState::Uninitialized
            } else {
                match s.run {
                    SimRun::Stopped => PgRunState::Stopped,
                    SimRun::Crashed => PgRunState::Crashed,
                    SimRun::Running => PgRunState::Running,
                    SimRun::Hung => PgRunState::Unresponsive,
                }
            };
            let pending: Vec<String> = RESTART_PARAMETERS
                .iter()
                .filter(|p| s.configured.get(**p) != s.running_with.get(**p))
                .map(|p| p.to_string())
                .collect();
            PgObservation {
                run_state: Some(run_state),
                in_recovery: s.standby,
                timeline: s.timeline,
                lsn: s.lsn,
                receive_lsn: if s.standby { Some(s.lsn) } else { None },
                replay_lsn: if s.standby { Some(s.lsn) } else { None },
                system_id: if s.initialized {
                    Some(s.system_id.clone())
                } else {
                    None
                },
                upstream: s.upstream.clone(),
                streaming: s.streaming,
                pending_restart: if s.run == SimRun::Running {
                    pending
                } else {
                    Vec::new()
                },
                history: s.history.clone(),
                server_version: Some(150018),
                ..Default::default()
            }
        })
    }

    async fn bootstrap(&self) -> Result<String, PgError> {
        let mut g = self.net.lock();
        g.next_sysid += 1;
        let sysid = g.next_sysid.to_string();
        let s = g
            .servers
            .entry(self.name.clone())
            .or_insert_with(SimPgState::empty);
        if s.initialized {
            return Err(PgError::Refused {
                operation: "bootstrap".into(),
                reason: "data directory is not empty".into(),
            });
        }
        *s = SimPgState {
            initialized: true,
            system_id: sysid.clone(),
            run: SimRun::Running,
            timeline: 1,
            lsn: 0x0100_0000,
            ..SimPgState::empty()
        };
        Ok(sysid)
    }

    async fn clone_from(&self, source: &Upstream) -> Result<(), PgError> {
        self.copy_from(source, "clone")
    }

    async fn start_primary(&self) -> Result<(), PgError> {
        self.with(|s| {
            if !s.initialized {
                return Err(PgError::failed("start", "no data directory"));
            }
            if s.alive() {
                return Err(PgError::failed("start", "already running"));
            }
            if s.standby {
                // Starting a standby's data directory without standby.signal ends recovery: a new timeline.
                s.history.push(TimelineSwitch {
                    timeline: s.timeline,
                    lsn: s.lsn,
                });
                s.timeline += 1;
                s.standby = false;
                s.promotions += 1;
            }
            s.upstream = None;
            s.run = SimRun::Running;
            s.running_with = s.configured.clone();
            Ok(())
        })
    }

    async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<(), PgError> {
        self.with(|s| {
            if !s.initialized {
                return Err(PgError::failed("start", "no data directory"));
            }
            if s.alive() {
                return Err(PgError::failed("start", "already running"));
            }
            s.standby = true;
            s.upstream = upstream.map(|u| u.name.clone());
            s.run = SimRun::Running;
            s.running_with = s.configured.clone();
            Ok(())
        })
    }

    async fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        self.check_answers("stop")?;
        let mut g = self.net.lock();
        let me = match g.servers.get(&self.name) {
            Some(s) => s.clone(),
            None => return Ok(()),
        };
        if me.run != SimRun::Running {
            return Ok(());
        }
        // A clean shutdown of a primary sends all WAL to the replicas streaming from it.
        if mode != StopMode::Immediate && !me.standby {
            for (n, r) in g.servers.iter_mut() {
                if *n != self.name
                    && r.run == SimRun::Running
                    && r.standby
                    && r.upstream.as_deref() == Some(self.name.as_str())
                    && r.timeline == me.timeline
                    && r.system_id == me.system_id
                {
                    r.lsn = r.lsn.max(me.lsn);
                }
            }
        }
        if let Some(s) = g.servers.get_mut(&self.name) {
            s.run = if mode == StopMode::Immediate {
                SimRun::Crashed
            } else {
                SimRun::Stopped
            };
            s.streaming = false;
        }
        Ok(())
    }

    async fn restart(&self) -> Result<(), PgError> {
        self.check_answers("restart")?;
        self.with(|s| {
            if s.run != SimRun::Running {
                return Err(PgError::failed("restart", "not running"));
            }
            s.running_with = s.configured.clone();
            Ok(())
        })
    }

    async fn reload(&self) -> Result<(), PgError> {
        self.check_answers("reload")
    }

    async fn promote(&self) -> Result<(), PgError> {
        self.check_answers("promote")?;
        self.with(|s| {
            if s.run != SimRun::Running || !s.standby {
                return Err(PgError::failed("promote", "not a running standby"));
            }
            s.history.push(TimelineSwitch {
                timeline: s.timeline,
                lsn: s.lsn,
            });
            s.timeline += 1;
            s.standby = false;
            s.upstream = None;
            s.streaming = false;
            s.promotions += 1;
            Ok(())
        })
    }

    async fn follow(&self, upstream: &Upstream) -> Result<(), PgError> {
        self.check_answers("follow")?;
        self.with(|s| {
            if s.run != SimRun::Running || !s.standby {
                return Err(PgError::failed("follow", "not a running standby"));
            }
            s.upstream = Some(upstream.name.clone());
            Ok(())
        })
    }

    async fn rewind(&self, source: &Upstream) -> Result<(), PgError> {
        let mut g = self.net.lock();
        let src = match g.servers.get(&source.name) {
            Some(s) if s.run == SimRun::Running => s.clone(),
            _ => {
                return Err(PgError::failed(
                    "rewind",
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
                operation: "rewind".into(),
                reason: "PostgreSQL is running".into(),
            });
        }
        if s.system_id != src.system_id {
            return Err(PgError::Refused {
                operation: "rewind".into(),
                reason: "source belongs to another cluster".into(),
            });
        }
        // Back to the last common point, then on the source's timeline.
        let fork = src.end_of(s.timeline).unwrap_or(src.lsn).min(s.lsn);
        s.lsn = fork;
        s.timeline = src.timeline;
        s.history = src.history.clone();
        s.standby = true;
        s.run = SimRun::Stopped;
        s.upstream = Some(source.name.clone());
        s.rewinds += 1;
        Ok(())
    }

    async fn reinitialize(&self, source: &Upstream) -> Result<(), PgError> {
        self.copy_from(source, "reinitialize")
    }

    async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Result<ParamChange, PgError> {
        self.check_answers("reload")?;
        self.with(|s| {
            s.configured = parameters.clone();
            let pending = RESTART_PARAMETERS
                .iter()
                .filter(|p| s.configured.get(**p) != s.running_with.get(**p))
                .map(|p| p.to_string())
                .collect();
            Ok(ParamChange {
                pending_restart: pending,
            })
        })
    }

    async fn fence(&self) -> Result<(), PgError> {
        self.with(|s| {
            if s.alive() {
                s.run = SimRun::Crashed;
                s.streaming = false;
                s.fences += 1;
            }
            Ok(())
        })
    }
}
