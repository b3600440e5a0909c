//! A deterministic simulator: N nodes, each running the real [`Driver`](crate::driver::Driver) and
//! [`decide`](crate::decision::decide) over the [`MemoryDcs`] and a [`SimPg`], on virtual time, with faults drawn from
//! one seeded RNG. Invariants are checked at every step; the same seed replays the same run exactly.
//!
//! A run has three phases: the cluster bootstraps, a chaos phase injects faults (node crash, PostgreSQL crash or
//! hang, daemon freeze or kill, DCS outage, one node cut off from the DCS, a replication connection cut, switchovers), then every fault heals and
//! the cluster must converge within [`invariants::recovery_bound::bound_ms`].
//!
//! # Layout
//! - `config`: [`SimConfig`], a run's parameters, all derived from its seed.
//! - `node`: one simulated node (its daemon's state, watchdog and failsafe inbox) and the REST network between nodes.
//! - `fault`: the [`Fault`]s, how the seed draws them, injects them and heals them.
//! - `step`: one step of virtual time (faults, due loops, watchdogs, replication, client writes, invariants).
//! - `commits`: the client's commits, acknowledged by the primary's replication rule.
//! - `outcome`: what a run found ([`SimOutcome`], [`SimStats`]) and the command that replays it.
//! - [`pg`]: the simulated PostgreSQL; [`invariants`]: one file per invariant.
//!
//! This file holds [`Simulation`] itself: building the cluster and running the three phases.
//!
//! ```
//! use ha_core::sim::{SimConfig, Simulation};
//! let outcome = Simulation::new(SimConfig::for_seed(42)).run();
//! assert!(outcome.violations.is_empty(), "{}", outcome.replay_command());
//! ```

mod commits;
mod config;
mod fault;
pub mod invariants;
mod node;
mod outcome;
pub mod pg;
mod step;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::driver::FailsafeInbox;
use crate::mock_dcs::MemoryDcs;
use crate::model::Timing;
use crate::sync::lock;
use crate::time::{Clock, ManualClock, Millis};

use node::{Daemon, RestNet, SimNode, SimWatchdog};

pub use config::{SimConfig, SimSync};
pub use fault::Fault;
pub use invariants::Violation;
pub use outcome::{SimOutcome, SimStats};
pub use pg::{SimPg, SimPgNet, SimPgState, SimRun};

/// Runs a future that must complete without waiting (every simulated call does).
pub fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!(
            "a simulated call waited: simulated DCS and PostgreSQL calls must complete at once"
        ),
    }
}

/// One simulated cluster.
pub struct Simulation {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    clock: ManualClock,
    dcs: MemoryDcs,
    net: SimPgNet,
    rest: RestNet,
    nodes: Vec<SimNode>,
    timing: Timing,
    dcs_down_until: Option<Millis>,
    last_leader_version: Option<u64>,
    violations: Vec<Violation>,
    stats: SimStats,
    trace: Vec<String>,
    commits: commits::Commits,
}

impl Simulation {
    /// A cluster of `cfg.nodes` nodes with empty data directories and their daemons started, at virtual time 0
    /// (the wall clock reads 2026-01-01T00:00:00Z).
    pub fn new(cfg: SimConfig) -> Simulation {
        let clock = ManualClock::new(1_767_225_600_000); // 2026-01-01T00:00:00Z
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let dcs = MemoryDcs::new(shared);
        let net = SimPgNet::new();
        let timing = cfg.timing();
        let mut sim = Simulation {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            clock,
            dcs,
            net,
            rest: RestNet::default(),
            nodes: Vec::new(),
            timing,
            dcs_down_until: None,
            last_leader_version: None,
            violations: Vec::new(),
            stats: SimStats::default(),
            trace: Vec::new(),
            commits: commits::Commits::default(),
            cfg,
        };
        for i in 0..sim.cfg.nodes {
            let name = format!("node{}", i + 1);
            sim.net.server(&name);
            if let Some((slow, bytes)) = sim.cfg.slow_replica.filter(|(n, _)| *n == i) {
                debug_assert_eq!(slow, i);
                sim.net.lock().slow_link.insert(name.clone(), bytes);
            }
            let inbox = FailsafeInbox::default();
            let watchdog = SimWatchdog::default();
            lock(&sim.rest.0).insert(name.clone(), (true, inbox.clone()));
            sim.nodes.push(SimNode {
                name,
                driver: None,
                daemon: Daemon::Up,
                next_wake: Millis(0),
                watchdog,
                inbox,
                hung_until: None,
                partitioned_until: None,
                replication_cut_until: None,
                last_reason: String::new(),
            });
            sim.start_daemon(i);
        }
        sim
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    fn log(&mut self, line: String) {
        if self.cfg.trace {
            self.trace
                .push(format!("{:>9.1}s {line}", self.now().0 as f64 / 1000.0));
        }
    }

    fn has_primary(&self) -> bool {
        match self.dcs.leader() {
            Some((name, _)) => self
                .net
                .with(&name, |s| s.accepts_writes() && s.run == SimRun::Running)
                .unwrap_or(false),
            None => false,
        }
    }

    /// Runs the whole scenario and reports.
    pub fn run(mut self) -> SimOutcome {
        // The run's planted bug, if any, is on for this thread (the simulation runs on it) until the run ends.
        let _planted = crate::mutants::plant(self.cfg.planted_bug);
        let step = self.cfg.step_ms;
        let settle_end = Millis(self.cfg.settle_ms);
        let chaos_end = settle_end.plus_ms(self.cfg.chaos_ms);
        let bound = invariants::recovery_bound::bound_ms(&self.timing, self.cfg.failsafe_mode);
        let end = chaos_end.plus_ms(bound + 2 * self.timing.ttl_ms);
        let mut formed_at = None;
        let mut last_write = None;
        let mut first_primary_after_heal = None;
        let mut healed = false;
        while self.now() < end {
            let now = self.now();
            let chaos = now >= settle_end && now < chaos_end;
            if !healed && now >= chaos_end {
                self.heal(true);
                healed = true;
                self.log("HEAL every fault".into());
            }
            self.step(chaos);
            let writable = self.net.lock().servers.values().any(|s| s.accepts_writes());
            if writable {
                if formed_at.is_none() {
                    formed_at = Some(now);
                }
                if let Some(lw) = last_write {
                    self.stats.longest_write_gap_ms =
                        self.stats.longest_write_gap_ms.max(now.since(lw));
                }
                last_write = Some(now);
            }
            if healed && first_primary_after_heal.is_none() && self.has_primary() {
                first_primary_after_heal = Some(now);
            }
            if healed {
                if let Some(v) = invariants::recovery_bound::check(
                    chaos_end,
                    first_primary_after_heal,
                    now,
                    &self.timing,
                    self.cfg.failsafe_mode,
                ) {
                    self.violations.push(v);
                    break;
                }
            }
            if !self.violations.is_empty() {
                break;
            }
            self.clock.advance_ms(step);
        }
        if self.violations.is_empty() {
            let leader = self.dcs.leader().map(|(name, _)| name);
            let g = self.net.lock();
            if let Some(v) =
                invariants::replicas_rejoin::check(&g.servers, leader.as_deref(), self.now())
            {
                self.violations.push(v);
            }
        }
        {
            let g = self.net.lock();
            self.stats.promotions = g.servers.values().map(|s| s.promotions).sum();
            self.stats.fences = g.servers.values().map(|s| s.fences).sum();
            self.stats.rewinds = g.servers.values().map(|s| s.rewinds).sum();
        }
        SimOutcome {
            config: self.cfg,
            violations: self.violations,
            stats: self.stats,
            trace: self.trace,
        }
    }
}
