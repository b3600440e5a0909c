//! One step of virtual time: heal what is due, maybe inject a fault, wake daemons on a leader change, run the due
//! loops in an order the seed decides, fire watchdogs, replicate, let the client write, and check the invariants.

use rand::Rng;

use super::node::Daemon;
use super::{invariants, now_or_never, SimRun, Simulation};
use crate::driver::CycleReport;
use crate::sync::lock;
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
            let mut g = lock(&self.rest.0);
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
            let deadline = *lock(&n.watchdog.0);
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
        // The client writes to whoever accepts writes, and is told of each commit the replication rule allows.
        self.commits
            .write_and_settle(&self.net, self.cfg.write_bytes_per_step);
        self.stats.acked_commits = self.commits.count;
        if let Some(v) = invariants::single_writer::check(&self.net, now) {
            self.violations.push(v);
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
