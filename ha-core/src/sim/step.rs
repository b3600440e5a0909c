//! One step of virtual time: heal what is due, maybe inject a fault, wake daemons on a leader change, run the due
//! loops in an order the seed decides, fire watchdogs, replicate, let the client write, and check the invariants.

use std::task::{Context, Poll, Waker};

use rand::Rng;

use super::node::{Daemon, InFlight, Slot};
use super::{invariants, SimRun, Simulation};
use crate::sync::lock;
use crate::time::Clock;
use crate::watchdog::Watchdog;

impl Simulation {
    /// Asynchronous replication may lose what a replica lagged (`maximum_lag_on_failover`, against the position the
    /// leader last published) plus what was written since that publication: a loop and a lease of writes.
    fn async_loss_bound(&self) -> u64 {
        let steps = (self.timing.ttl_ms + self.timing.loop_wait_ms) / self.cfg.step_ms.max(1);
        self.cfg.maximum_lag_on_failover + steps * self.cfg.write_bytes_per_step
    }

    pub(super) fn step(&mut self, chaos: bool) {
        let now = self.now();
        self.stats.steps += 1;
        self.heal(false);
        if chaos && self.rng.gen_range(0..self.cfg.fault_gap_ms.max(1)) < self.cfg.step_ms {
            let f = self.random_fault();
            self.inject(f);
        }
        // The watch: a changed leader key wakes every daemon (late on a troubled link: the event travels too).
        let leader_version = self.dcs.leader().map(|(_, v)| v);
        if leader_version != self.last_leader_version {
            self.last_leader_version = leader_version;
            for i in 0..self.nodes.len() {
                let delay = lock(&self.dcs_links.0)
                    .get(&self.nodes[i].name)
                    .map_or(0, |t| self.rng.gen_range(0..=t.max_latency_ms));
                let n = &mut self.nodes[i];
                n.next_wake = n.next_wake.min(now.plus_ms(delay));
            }
        }
        // REST reachability follows the daemons.
        {
            let mut g = lock(&self.rest.0);
            for n in &self.nodes {
                if let Some(e) = g.get_mut(&n.name) {
                    e.0 = n.daemon == Daemon::Up && n.rest_cut_until.is_none();
                }
            }
        }
        // Run due loops in an order the seed decides; a loop waiting for the DCS goes on where it stopped.
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng.gen_range(0..=i);
            order.swap(i, j);
        }
        for i in order {
            if self.nodes[i].daemon != Daemon::Up {
                continue;
            }
            let node_now = self.nodes[i].clock.now();
            let mut fut: InFlight = match std::mem::take(&mut self.nodes[i].slot) {
                Slot::Gone => continue,
                Slot::Busy(f) => f,
                Slot::Idle(mut d) if self.nodes[i].stop_requested.is_some() => {
                    Box::pin(async move {
                        d.shutdown().await;
                        (d, None)
                    })
                }
                Slot::Idle(mut d) if self.nodes[i].next_wake <= node_now => Box::pin(async move {
                    let r = d.cycle().await;
                    (d, Some(r))
                }),
                idle => {
                    self.nodes[i].slot = idle;
                    continue;
                }
            };
            let (driver, report) = match fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Pending => {
                    self.nodes[i].slot = Slot::Busy(fut);
                    continue;
                }
                Poll::Ready(done) => done,
            };
            let Some(report) = report else {
                // The graceful shutdown ended: the process exits, and is started again later.
                let down_ms = self.nodes[i].stop_requested.take().unwrap_or(0);
                self.nodes[i].daemon = Daemon::Down {
                    until: now.plus_ms(down_ms),
                };
                let name = self.nodes[i].name.clone();
                self.log(format!("{name}: daemon stopped gracefully"));
                continue;
            };
            let failsafe = driver.local_state().failsafe.clone();
            self.nodes[i].slot = Slot::Idle(driver);
            self.stats.cycles += 1;
            // The report's times are on the node's clock.
            self.nodes[i].next_wake = report.next_wake.max(self.nodes[i].clock.now().plus_ms(1));
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
        // Watchdogs fire on their own, whatever the daemons are doing, by their machine's clock and a little late.
        for n in self
            .nodes
            .iter()
            .filter(|n| n.fencer_frozen_until.is_none())
        {
            let deadline = *lock(&n.watchdog.0);
            if let Some(d) = deadline {
                if d.plus_ms(n.fence_delay_ms) <= n.clock.now() {
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
        // The client writes to whoever accepts writes, and is told of each commit the replication rule allows.
        self.commits
            .write_and_settle(&self.net, self.cfg.write_bytes_per_step);
        self.stats.acked_commits = self.commits.count;
        if let Some(v) = invariants::single_writer::check(&self.net, now) {
            self.violations.push(v);
        }
        // Lease safety, on the server's ground truth (failsafe mode keeps a leader on purpose past its lease: it is
        // the members' confirmation, not the lease, that protects it there).
        for (holder, at) in self.dcs.take_leader_expiries() {
            self.log(format!("DCS server expired {holder}'s leader lease"));
            self.expired_leases.insert(holder, at);
        }
        if let Some((leader, _)) = self.dcs.leader() {
            self.expired_leases.remove(&leader);
        }
        if !self.cfg.failsafe_mode {
            if let Some(v) = invariants::lease_safety::check(&self.net, &self.expired_leases, now) {
                self.violations.push(v);
            }
        }
        let (v, lost) = invariants::acked_commits::check(
            &self.net,
            &self.commits.acked,
            self.cfg.sync.is_sync(),
            self.async_loss_bound(),
            now,
        );
        self.stats.acked_bytes_lost = self.stats.acked_bytes_lost.max(lost);
        if let Some(v) = v {
            self.violations.push(v);
        }
    }
}
