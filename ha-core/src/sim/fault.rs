//! The faults the simulator injects during the chaos phase: how the seed draws one, what injecting it does to the
//! simulated nodes, PostgreSQL servers and DCS, and how each heals when its time has come (or all at once).

use rand::Rng;

use super::node::Daemon;
use super::{SimRun, Simulation};
use crate::model::Failover;
use crate::time::Millis;
use crate::watchdog::Watchdog;

/// A fault the simulator injects.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The machine dies: daemon and PostgreSQL killed; both come back after `down_ms`.
    NodeCrash {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long the machine stays down, in ms.
        down_ms: u64,
    },
    /// PostgreSQL is SIGKILLed; the daemon lives.
    PgCrash {
        /// Index of the node (0 is `node1`).
        node: usize,
    },
    /// PostgreSQL stops answering (SIGSTOP of the postmaster) for `ms`; its backends keep serving.
    PgHang {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long it hangs, in ms.
        ms: u64,
    },
    /// The daemon is frozen (SIGSTOP) for `ms`; PostgreSQL runs on.
    DaemonFreeze {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long the daemon stays frozen, in ms.
        ms: u64,
    },
    /// The daemon is SIGKILLed and restarted after `down_ms`; PostgreSQL runs on.
    DaemonKill {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long until the daemon is started again, in ms.
        down_ms: u64,
    },
    /// Nobody reaches the DCS for `ms`.
    DcsOutage {
        /// How long the outage lasts, in ms.
        ms: u64,
    },
    /// One node cannot reach the DCS for `ms` (it still reaches the other nodes' REST APIs).
    DcsPartition {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long the node stays cut off, in ms.
        ms: u64,
    },
    /// An operator asks for a switchover to `candidate`.
    Switchover {
        /// Index of the node to hand over to (0 is `node1`).
        candidate: usize,
    },
    /// The node's replication connection is cut for `ms` (it still reaches the DCS and the other nodes' REST
    /// APIs): a standby falls behind, a synchronous one stops acknowledging.
    ReplicationCut {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long the connection stays cut, in ms.
        ms: u64,
    },
}

impl Simulation {
    pub(super) fn inject(&mut self, fault: Fault) {
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
                // A daemon already down (its machine crashed, or killed before) stays down until its own restart:
                // a second kill must not move that restart earlier than the machine's return.
                if !matches!(self.nodes[node].daemon, Daemon::Down { .. }) {
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
            Fault::ReplicationCut { node, ms } => {
                let name = self.nodes[node].name.clone();
                self.net.lock().no_receive.insert(name);
                self.nodes[node].replication_cut_until = Some(now.plus_ms(ms));
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

    pub(super) fn random_fault(&mut self) -> Fault {
        let ttl = self.timing.ttl_ms;
        let node = self.rng.gen_range(0..self.nodes.len());
        match self.rng.gen_range(0..10) {
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
            8 => Fault::Switchover { candidate: node },
            _ => Fault::ReplicationCut {
                node,
                ms: self.rng.gen_range(ttl / 2..ttl * 3),
            },
        }
    }

    /// Ends faults whose time has come (all of them when `heal_all`).
    pub(super) fn heal(&mut self, heal_all: bool) {
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
            if self.nodes[i].replication_cut_until.map_or(false, due) {
                self.nodes[i].replication_cut_until = None;
                self.net.lock().no_receive.remove(&name);
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
}
