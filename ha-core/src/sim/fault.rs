//! The faults the simulator injects during the chaos phase: how the seed draws one, what injecting it does to the
//! simulated nodes, PostgreSQL servers and DCS, and how each heals when its time has come (or all at once).

use rand::Rng;

use super::dcs_link::LinkTrouble;
use super::node::{Daemon, Slot};
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
    /// The node's link to the DCS is slow and loses replies for `ms`: requests and replies each take up to
    /// `max_latency_ms` (some longer than the deadline), a lost reply leaves the client not knowing whether the
    /// server applied its request, and leader-change events arrive late.
    DcsLinkTrouble {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long the trouble lasts, in ms.
        ms: u64,
        /// The longest one leg takes, in ms.
        max_latency_ms: u64,
        /// The share of replies lost, in percent.
        reply_loss_pct: u32,
        /// The share of reads answered from an older snapshot, in percent.
        stale_read_pct: u32,
    },
    /// The node's REST API is cut off for `ms` (both ways: nobody reaches it, it reaches nobody) while its DCS and
    /// replication links work: failsafe confirmations and the leader race's live answers fail.
    RestCut {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long the cut lasts, in ms.
        ms: u64,
    },
    /// The node's fencer is frozen for `ms` (it fences late, when it thaws, if its deadline passed): the daemon,
    /// up, must demote its primary by itself. Not combined with a daemon fault on the same node (nothing could
    /// protect against both).
    FencerFreeze {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long the fencer stays frozen, in ms.
        ms: u64,
    },
    /// The daemon gets SIGTERM: it finishes its loop, shuts down gracefully (stops PostgreSQL, releases the lock),
    /// and is started again `down_ms` later. With `pg_hung` PostgreSQL hangs at the same moment, so the stop fails.
    DaemonStop {
        /// Index of the node (0 is `node1`).
        node: usize,
        /// How long until the daemon is started again, in ms.
        down_ms: u64,
        /// Whether PostgreSQL hangs (for `down_ms`) as the stop begins.
        pg_hung: bool,
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
                n.slot = Slot::Gone;
                n.stop_requested = None;
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
                if self.nodes[node].daemon == Daemon::Up
                    && self.nodes[node].fencer_frozen_until.is_none()
                {
                    self.nodes[node].daemon = Daemon::Frozen {
                        until: now.plus_ms(ms),
                    };
                }
            }
            Fault::DaemonKill { node, down_ms } => {
                // A daemon already down (its machine crashed, or killed before) stays down until its own restart:
                // a second kill must not move that restart earlier than the machine's return.
                if !matches!(self.nodes[node].daemon, Daemon::Down { .. })
                    && self.nodes[node].fencer_frozen_until.is_none()
                {
                    self.nodes[node].slot = Slot::Gone;
                    self.nodes[node].stop_requested = None;
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
            Fault::DcsLinkTrouble {
                node,
                ms,
                max_latency_ms,
                reply_loss_pct,
                stale_read_pct,
            } => {
                let name = self.nodes[node].name.clone();
                self.dcs_links.set(
                    &name,
                    Some(LinkTrouble {
                        max_latency_ms,
                        reply_loss_pct,
                        stale_read_pct,
                    }),
                );
                let until = now.plus_ms(ms);
                let n = &mut self.nodes[node];
                n.link_trouble_until = Some(n.link_trouble_until.map_or(until, |u| u.max(until)));
            }
            Fault::RestCut { node, ms } => {
                let until = now.plus_ms(ms);
                let n = &mut self.nodes[node];
                n.rest_cut_until = Some(n.rest_cut_until.map_or(until, |u| u.max(until)));
            }
            Fault::FencerFreeze { node, ms } => {
                let n = &mut self.nodes[node];
                if n.daemon == Daemon::Up
                    && n.stop_requested.is_none()
                    && n.fencer_frozen_until.is_none()
                {
                    n.fencer_frozen_until = Some(now.plus_ms(ms));
                }
            }
            Fault::DaemonStop {
                node,
                down_ms,
                pg_hung,
            } => {
                if self.nodes[node].daemon == Daemon::Up
                    && self.nodes[node].stop_requested.is_none()
                    && self.nodes[node].fencer_frozen_until.is_none()
                {
                    self.nodes[node].stop_requested = Some(down_ms);
                    if pg_hung {
                        self.inject(Fault::PgHang { node, ms: down_ms });
                    }
                }
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
        if let Some(percent) = self.cfg.stability_percent {
            let max_latency_ms = self.timing.dcs_round_trip_bound_ms() * percent / 100 / 2;
            return Fault::DcsLinkTrouble {
                node,
                ms: self.rng.gen_range(ttl / 2..ttl * 3),
                max_latency_ms,
                reply_loss_pct: 0,
                stale_read_pct: 0,
            };
        }
        let kinds = if self.cfg.message_faults { 14 } else { 10 };
        match self.rng.gen_range(0..kinds) {
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
            9 => Fault::ReplicationCut {
                node,
                ms: self.rng.gen_range(ttl / 2..ttl * 3),
            },
            10 => {
                // Up to one and a half deadlines a leg: most calls succeed late, some time out, some of those
                // after the server applied them.
                let retry = self.timing.retry_timeout_ms;
                Fault::DcsLinkTrouble {
                    node,
                    ms: self.rng.gen_range(ttl / 2..ttl * 3),
                    max_latency_ms: self.rng.gen_range(retry / 10..=retry * 3 / 2),
                    reply_loss_pct: self.rng.gen_range(0..=40),
                    stale_read_pct: self.rng.gen_range(0..=50),
                }
            }
            11 => Fault::DaemonStop {
                node,
                down_ms: self.rng.gen_range(1_000..ttl * 2),
                pg_hung: self.rng.gen_bool(0.5),
            },
            12 => Fault::RestCut {
                node,
                ms: self.rng.gen_range(ttl / 2..ttl * 3),
            },
            _ => Fault::FencerFreeze {
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
            if heal_all {
                // A SIGTERM being served still ends in a stop, but the daemon comes back at once.
                if let Some(down) = self.nodes[i].stop_requested.as_mut() {
                    *down = 0;
                }
            }
            if self.nodes[i].rest_cut_until.map_or(false, due) {
                self.nodes[i].rest_cut_until = None;
            }
            if self.nodes[i].fencer_frozen_until.map_or(false, due) {
                self.nodes[i].fencer_frozen_until = None;
            }
            if self.nodes[i].link_trouble_until.map_or(false, due) {
                self.nodes[i].link_trouble_until = None;
                self.dcs_links.set(&name, None);
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
