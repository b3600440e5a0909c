//! A deterministic simulator: N nodes, each running the real [`Driver`] and [`decide`](crate::decision::decide)
//! over the [`MemoryDcs`] and a [`SimPg`], on virtual time, with faults drawn from one seeded RNG. Invariants are
//! checked at every step; the same seed replays the same run exactly.
//!
//! A run has three phases: the cluster bootstraps, a chaos phase injects faults (node crash, PostgreSQL crash or
//! hang, daemon freeze or kill, DCS outage, one node cut off from the DCS, switchovers), then every fault heals and
//! the cluster must converge within [`invariants::recovery_bound::bound_ms`].
//!
//! ```
//! use ha_core::sim::{SimConfig, Simulation};
//! let outcome = Simulation::new(SimConfig::for_seed(42)).run();
//! assert!(outcome.violations.is_empty(), "{}", outcome.replay_command());
//! ```

pub mod invariants;
pub mod pg;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::decision::{NodeIdentity, PlantedBug};
use crate::driver::{CycleReport, Driver, DriverSettings, FailsafeInbox, FailsafeProbe};
use crate::mock_dcs::{MemoryDcs, MemoryDcsClient};
use crate::model::{DynamicPostgresql, Failover, GlobalConfig, Timing};
use crate::time::{Clock, ManualClock, Millis};
use crate::watchdog::Watchdog;

pub use invariants::Violation;
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

/// One simulated run's parameters. [`SimConfig::for_seed`] derives all of them from the seed, so a seed alone
/// replays a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub ttl_s: f64,
    pub loop_wait_s: f64,
    pub retry_timeout_s: f64,
    pub maximum_lag_on_failover: u64,
    pub failsafe_mode: bool,
    /// Whether nodes run a watchdog that fences PostgreSQL when the lease runs out without a renewal.
    pub watchdog: bool,
    pub step_ms: u64,
    /// Time for the cluster to form before faults start.
    pub settle_ms: u64,
    /// Length of the chaos phase.
    pub chaos_ms: u64,
    /// Mean time between two faults during chaos.
    pub fault_gap_ms: u64,
    /// Client writes per step to whoever accepts them, in bytes.
    pub write_bytes_per_step: u64,
    /// Keep a human-readable trace of every decision (for replays).
    pub trace: bool,
    #[doc(hidden)]
    pub planted_bug: Option<PlantedBug>,
}

impl SimConfig {
    /// The run for `seed`: its timing profile (ttl 30/10/10, 10/2/3, or 5/1/2), failsafe mode and node count
    /// come from the seed too.
    pub fn for_seed(seed: u64) -> SimConfig {
        let (ttl_s, loop_wait_s, retry_timeout_s) = match seed % 3 {
            0 => (30.0, 10.0, 10.0),
            1 => (10.0, 2.0, 3.0),
            _ => (5.0, 1.0, 2.0),
        };
        SimConfig {
            seed,
            nodes: if seed % 7 == 3 { 5 } else { 3 },
            ttl_s,
            loop_wait_s,
            retry_timeout_s,
            maximum_lag_on_failover: 1_048_576,
            failsafe_mode: seed % 4 == 1,
            watchdog: true,
            step_ms: 100,
            settle_ms: 40_000,
            chaos_ms: 240_000,
            fault_gap_ms: (ttl_s * 1000.0) as u64,
            write_bytes_per_step: 8 * 1024,
            trace: false,
            planted_bug: None,
        }
    }

    pub fn timing(&self) -> Timing {
        Timing::from_seconds(self.ttl_s, self.loop_wait_s, self.retry_timeout_s)
            .expect("simulator timings are valid")
    }
}

/// A fault the simulator injects.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The machine dies: daemon and PostgreSQL killed; both come back after `down_ms`.
    NodeCrash { node: usize, down_ms: u64 },
    /// PostgreSQL is SIGKILLed; the daemon lives.
    PgCrash { node: usize },
    /// PostgreSQL stops answering (SIGSTOP of the postmaster) for `ms`; its backends keep serving.
    PgHang { node: usize, ms: u64 },
    /// The daemon is frozen (SIGSTOP) for `ms`; PostgreSQL runs on.
    DaemonFreeze { node: usize, ms: u64 },
    /// The daemon is SIGKILLed and restarted after `down_ms`; PostgreSQL runs on.
    DaemonKill { node: usize, down_ms: u64 },
    /// Nobody reaches the DCS for `ms`.
    DcsOutage { ms: u64 },
    /// One node cannot reach the DCS for `ms` (it still reaches the other nodes' REST APIs).
    DcsPartition { node: usize, ms: u64 },
    /// An operator asks for a switchover to `candidate`.
    Switchover { candidate: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Daemon {
    Up,
    Frozen { until: Millis },
    Down { until: Millis },
}

#[derive(Clone, Default)]
struct SimWatchdog(Arc<Mutex<Option<Millis>>>);

impl Watchdog for SimWatchdog {
    fn arm(&self, deadline: Millis) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
    }
    fn disarm(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Which daemons answer REST calls, and their failsafe inboxes: the simulated network between nodes.
#[derive(Clone, Default)]
struct RestNet(Arc<Mutex<BTreeMap<String, (bool, FailsafeInbox)>>>);

struct SimProbe {
    rest: RestNet,
    clock: Arc<dyn Clock>,
    timing: Timing,
}

#[async_trait]
impl FailsafeProbe for SimProbe {
    async fn confirm_all(&self, leader: &str, members: &BTreeMap<String, String>) -> bool {
        let g = self.rest.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now();
        let mut all = true;
        for name in members.keys() {
            match g.get(name) {
                Some((true, inbox)) => Driver::<MemoryDcsClient, SimPg>::accept_failsafe_leader(
                    inbox,
                    leader,
                    now,
                    self.timing,
                ),
                _ => all = false,
            }
        }
        all
    }
}

struct SimNode {
    name: String,
    driver: Option<Driver<MemoryDcsClient, SimPg>>,
    daemon: Daemon,
    next_wake: Millis,
    watchdog: SimWatchdog,
    inbox: FailsafeInbox,
    hung_until: Option<Millis>,
    partitioned_until: Option<Millis>,
    last_reason: String,
}

/// Figures from one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimStats {
    pub steps: u64,
    pub cycles: u64,
    pub promotions: u64,
    pub fences: u64,
    pub rewinds: u64,
    pub faults: Vec<(Millis, Fault)>,
    /// Longest time without any node accepting writes after the cluster first formed, in ms.
    pub longest_write_gap_ms: u64,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub config: SimConfig,
    pub violations: Vec<Violation>,
    pub stats: SimStats,
    /// Decision log lines (only with `config.trace`).
    pub trace: Vec<String>,
}

impl SimOutcome {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let bug = match self.config.planted_bug {
            Some(PlantedBug::PromoteWithoutLock) => " --planted-bug promote-without-lock",
            None => "",
        };
        let wd = if self.config.watchdog {
            ""
        } else {
            " --no-watchdog"
        };
        format!(
            "cargo run --release -p ha-core --example simulate -- --seed {}{bug}{wd} --trace",
            self.config.seed
        )
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
}

impl Simulation {
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
            cfg,
        };
        for i in 0..sim.cfg.nodes {
            let name = format!("node{}", i + 1);
            sim.net.server(&name);
            let inbox = FailsafeInbox::default();
            let watchdog = SimWatchdog::default();
            sim.rest
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone(), (true, inbox.clone()));
            sim.nodes.push(SimNode {
                name,
                driver: None,
                daemon: Daemon::Up,
                next_wake: Millis(0),
                watchdog,
                inbox,
                hung_until: None,
                partitioned_until: None,
                last_reason: String::new(),
            });
            sim.start_daemon(i);
        }
        sim
    }

    fn bootstrap_config(&self) -> GlobalConfig {
        let mut params = serde_json::Map::new();
        params.insert("max_connections".into(), 100.into());
        GlobalConfig {
            ttl: Some(self.cfg.ttl_s),
            loop_wait: Some(self.cfg.loop_wait_s),
            retry_timeout: Some(self.cfg.retry_timeout_s),
            maximum_lag_on_failover: Some(self.cfg.maximum_lag_on_failover),
            failsafe_mode: Some(self.cfg.failsafe_mode),
            postgresql: Some(DynamicPostgresql {
                use_pg_rewind: Some(true),
                parameters: Some(params),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn start_daemon(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        let identity = NodeIdentity {
            name: name.clone(),
            conn_url: format!("postgres://{name}:5432/postgres"),
            api_url: format!("http://{name}:8008/patroni"),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        };
        let settings = DriverSettings {
            identity,
            bootstrap_config: self.bootstrap_config(),
            planted_bug: self.cfg.planted_bug,
        };
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        let mut driver = Driver::new(
            self.dcs.client(&name),
            self.net.server(&name),
            clock.clone(),
            settings,
        )
        .with_failsafe_probe(Box::new(SimProbe {
            rest: self.rest.clone(),
            clock,
            timing: self.timing,
        }));
        if self.cfg.watchdog {
            driver = driver.with_watchdog(Box::new(self.nodes[i].watchdog.clone()));
        }
        // A restarted daemon has a fresh inbox, as a new process would.
        let inbox = driver.failsafe_inbox();
        self.nodes[i].inbox = inbox.clone();
        if let Some(e) = self
            .rest
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&name)
        {
            e.1 = inbox;
        }
        self.nodes[i].driver = Some(driver);
        self.nodes[i].daemon = Daemon::Up;
        self.nodes[i].next_wake = self.clock.now();
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

    fn inject(&mut self, fault: Fault) {
        let now = self.now();
        self.log(format!("FAULT {fault:?}"));
        self.stats.faults.push((now, fault.clone()));
        match fault {
            Fault::NodeCrash { node, down_ms } => {
                let n = &mut self.nodes[node];
                n.driver = None;
                n.daemon = Daemon::Down {
                    until: now.plus_ms(down_ms),
                };
                n.watchdog.disarm();
                n.hung_until = None;
                let name = n.name.clone();
                self.net.with(&name, |s| {
                    if s.alive() {
                        s.run = SimRun::Crashed;
                        s.streaming = false;
                    }
                });
            }
            Fault::PgCrash { node } => {
                let name = self.nodes[node].name.clone();
                self.nodes[node].hung_until = None;
                self.net.with(&name, |s| {
                    if s.alive() {
                        s.run = SimRun::Crashed;
                        s.streaming = false;
                    }
                });
            }
            Fault::PgHang { node, ms } => {
                let name = self.nodes[node].name.clone();
                let hung = self.net.with(&name, |s| {
                    if s.run == SimRun::Running {
                        s.run = SimRun::Hung;
                        true
                    } else {
                        false
                    }
                });
                if hung == Some(true) {
                    self.nodes[node].hung_until = Some(now.plus_ms(ms));
                }
            }
            Fault::DaemonFreeze { node, ms } => {
                if self.nodes[node].daemon == Daemon::Up {
                    self.nodes[node].daemon = Daemon::Frozen {
                        until: now.plus_ms(ms),
                    };
                }
            }
            Fault::DaemonKill { node, down_ms } => {
                if self.nodes[node].daemon != (Daemon::Down { until: Millis(0) }) {
                    self.nodes[node].driver = None;
                    self.nodes[node].daemon = Daemon::Down {
                        until: now.plus_ms(down_ms),
                    };
                }
            }
            Fault::DcsOutage { ms } => {
                self.dcs.set_unavailable(true);
                self.dcs_down_until = Some(now.plus_ms(ms));
            }
            Fault::DcsPartition { node, ms } => {
                let name = self.nodes[node].name.clone();
                self.dcs.set_partitioned(&name, true);
                self.nodes[node].partitioned_until = Some(now.plus_ms(ms));
            }
            Fault::Switchover { candidate } => {
                let leader = self.dcs.leader().map(|(l, _)| l);
                let member = Some(self.nodes[candidate].name.clone());
                self.dcs.request_switchover(&Failover {
                    leader,
                    member,
                    ..Default::default()
                });
            }
        }
    }

    fn random_fault(&mut self) -> Fault {
        let ttl = self.timing.ttl_ms;
        let node = self.rng.gen_range(0..self.nodes.len());
        match self.rng.gen_range(0..9) {
            0 => Fault::NodeCrash {
                node,
                down_ms: self.rng.gen_range(ttl / 2..ttl * 3),
            },
            1 => Fault::PgCrash { node },
            2 => Fault::PgHang {
                node,
                ms: self.rng.gen_range(ttl / 4..ttl * 2),
            },
            3 | 4 => Fault::DaemonFreeze {
                node,
                ms: self.rng.gen_range(ttl / 2..ttl * 3),
            },
            5 => Fault::DaemonKill {
                node,
                down_ms: self.rng.gen_range(1_000..ttl * 2),
            },
            6 => Fault::DcsOutage {
                ms: self.rng.gen_range(ttl / 4..ttl * 2),
            },
            7 => Fault::DcsPartition {
                node,
                ms: self.rng.gen_range(ttl / 4..ttl * 2),
            },
            _ => Fault::Switchover { candidate: node },
        }
    }

    /// Ends faults whose time has come (all of them when `heal_all`).
    fn heal(&mut self, heal_all: bool) {
        let now = self.now();
        let due = |t: Millis| heal_all || t <= now;
        if self.dcs_down_until.map_or(false, due) {
            self.dcs.set_unavailable(false);
            self.dcs_down_until = None;
        }
        for i in 0..self.nodes.len() {
            let name = self.nodes[i].name.clone();
            if self.nodes[i].partitioned_until.map_or(false, due) {
                self.dcs.set_partitioned(&name, false);
                self.nodes[i].partitioned_until = None;
            }
            if self.nodes[i].hung_until.map_or(false, due) {
                self.nodes[i].hung_until = None;
                self.net.with(&name, |s| {
                    if s.run == SimRun::Hung {
                        s.run = SimRun::Running;
                    }
                });
            }
            match self.nodes[i].daemon {
                Daemon::Frozen { until } if due(until) => {
                    self.nodes[i].daemon = Daemon::Up;
                    self.nodes[i].next_wake = now;
                }
                Daemon::Down { until } if due(until) => self.start_daemon(i),
                _ => {}
            }
        }
    }

    fn step(&mut self, chaos: bool) {
        let now = self.now();
        self.stats.steps += 1;
        self.heal(false);
        if chaos && self.rng.gen_range(0..self.cfg.fault_gap_ms.max(1)) < self.cfg.step_ms {
            let f = self.random_fault();
            self.inject(f);
        }
        // The watch: a changed leader key wakes every daemon.
        let leader_version = self.dcs.leader().map(|(_, v)| v);
        if leader_version != self.last_leader_version {
            self.last_leader_version = leader_version;
            for n in &mut self.nodes {
                n.next_wake = n.next_wake.min(now);
            }
        }
        // REST reachability follows the daemons.
        {
            let mut g = self.rest.0.lock().unwrap_or_else(|p| p.into_inner());
            for n in &self.nodes {
                if let Some(e) = g.get_mut(&n.name) {
                    e.0 = n.daemon == Daemon::Up;
                }
            }
        }
        // Run due loops in an order the seed decides.
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng.gen_range(0..=i);
            order.swap(i, j);
        }
        for i in order {
            if self.nodes[i].daemon != Daemon::Up || self.nodes[i].next_wake > now {
                continue;
            }
            let Some(driver) = self.nodes[i].driver.as_mut() else {
                continue;
            };
            let report: CycleReport = now_or_never(driver.cycle());
            let failsafe = driver.local_state().failsafe.clone();
            self.stats.cycles += 1;
            self.nodes[i].next_wake = report.next_wake.max(now.plus_ms(1));
            if let Some(v) = invariants::promotion_lag::check(
                &self.nodes[i].name,
                &report,
                self.cfg.maximum_lag_on_failover,
            ) {
                self.violations.push(v);
            }
            if self.cfg.trace
                && (!report.executed.is_empty()
                    || self.nodes[i].last_reason != report.decision.reason)
            {
                self.nodes[i].last_reason = report.decision.reason.clone();
                let name = self.nodes[i].name.clone();
                self.log(format!(
                    "{name}: {} {:?} failsafe={failsafe:?}",
                    report.decision.reason, report.executed
                ));
            }
        }
        // Watchdogs fire on their own, whatever the daemons are doing.
        for n in &self.nodes {
            let deadline = *n.watchdog.0.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = deadline {
                if d <= now {
                    let fenced = self.net.with(&n.name, |s| {
                        if s.alive() && !s.standby {
                            s.run = SimRun::Crashed;
                            s.fences += 1;
                            true
                        } else {
                            false
                        }
                    });
                    n.watchdog.disarm();
                    if fenced == Some(true) && self.cfg.trace {
                        self.trace.push(format!(
                            "{:>9.1}s {}: WATCHDOG fenced PostgreSQL",
                            now.0 as f64 / 1000.0,
                            n.name
                        ));
                    }
                }
            }
        }
        self.net.replicate_step();
        // The client writes to whoever accepts writes.
        {
            let mut g = self.net.lock();
            for s in g.servers.values_mut() {
                if s.accepts_writes() {
                    s.lsn += self.cfg.write_bytes_per_step;
                }
            }
        }
        if let Some(v) = invariants::single_writer::check(&self.net, now) {
            self.violations.push(v);
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
