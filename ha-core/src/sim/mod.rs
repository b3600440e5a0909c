//! A deterministic simulator: N nodes, each running the real [`Driver`](crate::driver::Driver) and
//! [`decide`](crate::decision::decide) over the [`MemoryDcs`] and a [`SimPg`], on virtual time, with faults drawn from
//! one seeded RNG. Invariants are checked at every step; the same seed replays the same run exactly.
//!
//! A run has three phases: the cluster bootstraps, a chaos phase injects faults (node crash, PostgreSQL crash or
//! hang, daemon freeze, kill or SIGTERM, DCS outage, one node cut off from the DCS, a DCS link slow and losing
//! replies, a replication connection cut, switchovers), then every fault heals and the cluster must converge within
//! [`invariants::recovery_bound::bound_ms`].
//!
//! Time and messages are part of the model (#11). The DCS server expires leases on the true clock; each machine
//! reads its own ([`clock::NodeClock`]: another origin, a rate error up to 0.5 %). A DCS call travels
//! ([`dcs_link`]): the server applies it when the request arrives, the reply may come late, after the client's
//! deadline or never, so a loop or a shutdown is a future in flight across steps, polled once a step. Watches
//! arrive late on a slow link, and each fencer kills a little after its deadline. [`invariants::lease_safety`]
//! checks the lease on that ground truth; a stability run ([`SimConfig::stability`]) injects latency alone and
//! expects no failover at all. Why a stepped simulator rather than a simulated runtime (turmoil, madsim): the
//! driver's only waits are its DCS, PostgreSQL and REST calls, all behind traits the simulator implements, so
//! polling the driver's own future on virtual time is the whole runtime it needs, a run stays single-threaded
//! and a seed costs milliseconds.
//!
//! # Layout
//! - `config`: [`SimConfig`], a run's parameters, all derived from its seed.
//! - [`clock`]: each machine's clock, and the wait for a moment of true time.
//! - [`dcs_link`]: the network between a node and the DCS (latency, deadline, lost replies).
//! - `node`: one simulated node (its daemon's state and in-flight loop, watchdog and failsafe inbox) and the REST
//!   network between nodes.
//! - `fault`: the [`Fault`]s, how the seed draws them, injects them and heals them.
//! - `step`: one step of virtual time (faults, due loops, watchdogs, replication, client writes, invariants).
//! - `commits`: the client's commits, acknowledged by the primary's replication rule.
//! - `outcome`: what a run found ([`SimOutcome`], [`SimStats`]) and the command that replays it.
//! - `mutation` (feature `mutants`): the mutation score, every planted bug and the seed that catches it.
//! - [`pg`]: the simulated PostgreSQL; [`invariants`]: one file per invariant.
//!
//! This file holds [`Simulation`] itself: building the cluster and running the three phases.
//!
//! ```
//! use ha_core::sim::{SimConfig, Simulation};
//! let outcome = Simulation::new(SimConfig::for_seed(42)).run();
//! assert!(outcome.violations.is_empty(), "{}", outcome.replay_command());
//! ```

pub mod clock;
mod commits;
mod config;
pub mod dcs_link;
mod fault;
pub mod invariants;
#[cfg(feature = "mutants")]
pub mod mutation;
mod node;
mod outcome;
pub mod pg;
mod step;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::driver::FailsafeInbox;
use crate::mock_dcs::MemoryDcs;
use crate::model::Timing;
use crate::sync::lock;
use crate::time::{Clock, ManualClock, Millis};

use clock::NodeClock;
use dcs_link::DcsLinks;
use node::{Daemon, RestNet, SimNode, SimWatchdog, Slot};

pub use config::{SimConfig, SimSync};
pub use fault::Fault;
pub use invariants::Violation;
pub use outcome::{SimOutcome, SimStats};
pub use pg::{SimPg, SimPgNet, SimPgState, SimRun};

/// Runs a future that must complete without waiting: a driver's loop over the simulated PostgreSQL and a
/// [`MemoryDcs`] client used directly (the simulator itself polls loops that wait for their DCS link).
pub fn now_or_never<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!(
            "a simulated call waited: calls made outside the simulator's steps must complete at once"
        ),
    }
}

/// One simulated cluster.
pub struct Simulation {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    clock: ManualClock,
    dcs: MemoryDcs,
    dcs_links: DcsLinks,
    net: SimPgNet,
    rest: RestNet,
    nodes: Vec<SimNode>,
    timing: Timing,
    dcs_down_until: Option<Millis>,
    /// Leader leases the server expired, by holder, not yet taken again (see [`invariants::lease_safety`]).
    expired_leases: std::collections::BTreeMap<String, Millis>,
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
            dcs_links: DcsLinks::default(),
            net,
            rest: RestNet::default(),
            nodes: Vec::new(),
            timing,
            dcs_down_until: None,
            expired_leases: Default::default(),
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
            // Each machine's clock: its own origin, and a rate error within the bound when the run has drift.
            let drift_ppm = if sim.cfg.clock_drift {
                sim.rng
                    .gen_range(-clock::MAX_DRIFT_PPM..=clock::MAX_DRIFT_PPM)
            } else {
                0
            };
            let offset_ms = sim.rng.gen_range(0..1_000_000_000);
            let node_clock = NodeClock::new(sim.clock.clone(), drift_ppm, offset_ms);
            let fence_delay_ms = sim.rng.gen_range(0..=sim.cfg.max_fence_delay_ms);
            lock(&sim.rest.0).insert(name.clone(), (true, inbox.clone(), node_clock.clone()));
            sim.nodes.push(SimNode {
                name,
                slot: Slot::Gone,
                stop_requested: None,
                clock: node_clock,
                fence_delay_ms,
                daemon: Daemon::Up,
                next_wake: Millis(0),
                watchdog,
                inbox,
                hung_until: None,
                partitioned_until: None,
                replication_cut_until: None,
                link_trouble_until: None,
                rest_cut_until: None,
                fencer_frozen_until: None,
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

    fn promotions_and_fences(&self) -> (u64, u64) {
        let g = self.net.lock();
        (
            g.servers.values().map(|s| s.promotions).sum(),
            g.servers.values().map(|s| s.fences).sum(),
        )
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
        let mut formed_counts = None;
        while self.now() < end {
            let now = self.now();
            let chaos = now >= settle_end && now < chaos_end;
            if chaos && formed_counts.is_none() {
                formed_counts = Some(self.promotions_and_fences());
            }
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
        if let (true, Some(before)) = (
            self.violations.is_empty() && self.cfg.stability_percent.is_some(),
            formed_counts,
        ) {
            let after = self.promotions_and_fences();
            if let Some(v) = invariants::stability::check(before, after, self.now()) {
                self.violations.push(v);
            }
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
        let counts = &self.dcs_links.1;
        self.stats.dcs_applied_unanswered = counts
            .applied_unanswered
            .load(std::sync::atomic::Ordering::Relaxed);
        self.stats.dcs_timed_out = counts.timed_out.load(std::sync::atomic::Ordering::Relaxed);
        self.stats.dcs_stale_reads = counts
            .stale_reads
            .load(std::sync::atomic::Ordering::Relaxed);
        SimOutcome {
            config: self.cfg,
            violations: self.violations,
            stats: self.stats,
            trace: self.trace,
        }
    }
}
