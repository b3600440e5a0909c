//! The quorum state machine (Patroni's `QuorumStateResolver`): from where `synchronous_standby_names` and the `sync`
//! key stand, the ordered steps to where they should be, none of which breaks the invariant.
//!
//! Two "ANY n of a set" pairs describe quorum commit. PostgreSQL's `synchronous_standby_names = ANY numsync (sync)`
//! says which standbys a commit waits for; the `sync` key's `quorum` of `voters` (its `sync_standby`) says how many
//! of them a candidate must see at or behind its own position to be elected. Every acknowledged commit survives a
//! failover as long as **any `numsync` nodes of `sync` and any `quorum + 1` nodes of `voters` + the leader overlap**:
//! `|voters ∪ sync ∪ leader| ≤ quorum + numsync + 1`, one set a subset of the other while a step is half done.
//!
//! So a step that raises `numsync` or `quorum` goes first, one that lowers either goes last; a node joins `voters`
//! before `sync` unless `sync` is empty (then it is in `sync` first, and a voter once it caught up); a node leaves
//! `sync` before `voters` unless `sync` would become empty. The steps are computed from any state, half-done ones
//! included, so an interrupted change is simply finished by the next loop.
//!
//! Three deviations from Patroni, all towards safety: the confirmed count may be measured (see
//! [`QuorumState::numsync_confirmed`]), a quorum equal to the number of voters is accepted, and removing gone
//! voters keeps the quorum at least the number of voters left that are not known to have caught up
//! (`Resolver::unconfirmed`).
//!
//! Names compare exactly (Patroni compares them case-insensitively; member names differing only in case are not
//! supported by hactl).

use std::collections::BTreeSet;

/// A set of member names, ordered (the steps are deterministic).
pub type Names = BTreeSet<String>;

/// One step, the new state of what it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `synchronous_standby_names = ANY num (names)`.
    Sync {
        /// How many of `names` a commit waits for.
        num: usize,
        /// The standbys listed.
        names: Names,
    },
    /// The `sync` key: `leader`, `quorum`, `sync_standby = voters`.
    Quorum {
        /// The `sync` key's `leader`.
        leader: String,
        /// The `sync` key's `quorum`.
        quorum: usize,
        /// The `sync` key's `sync_standby`.
        voters: Names,
    },
    /// No step can be taken until PostgreSQL reports the standbys just listed as caught up: stop here, the next
    /// loop goes on.
    Restart,
}

/// The state breaks the invariant in a way no step repairs, or a step would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuorumError(pub String);

/// The inputs: the `sync` key, `synchronous_standby_names`, and what the leader sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    /// The `sync` key's `leader`.
    pub leader: String,
    /// The `sync` key's `quorum`.
    pub quorum: usize,
    /// The `sync` key's `sync_standby`.
    pub voters: Names,
    /// The `num` of `synchronous_standby_names`.
    pub numsync: usize,
    /// The names in `synchronous_standby_names`.
    pub sync: Names,
    /// How many of `sync` are known to have caught up since they were listed; `None` when that is not known (a
    /// leader that just restarted or was promoted: Patroni then assumes as many as the quorum guarantees). hactl
    /// measures it every loop from the standbys' flush positions, so it passes `Some`: an assumed confirmation
    /// would let a slow standby that never caught up become a voter with a lowered quorum.
    pub numsync_confirmed: Option<usize>,
    /// The standbys streaming from the leader that may be synchronous.
    pub active: Names,
    /// `synchronous_node_count`.
    pub sync_wanted: usize,
    /// This node (differs from `leader` right after a failover).
    pub leader_wanted: String,
}

/// The steps from `state` to the steady state, two of a kind in a row merged (skipping the first of them is the same
/// as no one having seen it), and nothing after a [`Transition::Restart`]. `Err` when the state is broken beyond
/// what the steps repair; no step is to be taken then.
pub fn transitions(state: &QuorumState) -> Result<Vec<Transition>, QuorumError> {
    let mut r = Resolver::new(state);
    r.generate()?;
    let mut out = Vec::new();
    let steps = std::mem::take(&mut r.out);
    for (i, t) in steps.iter().enumerate() {
        let same_kind_next = steps.get(i + 1).map_or(false, |n| {
            std::mem::discriminant(n) == std::mem::discriminant(t)
        });
        if same_kind_next {
            continue;
        }
        out.push(t.clone());
        if *t == Transition::Restart {
            break;
        }
    }
    Ok(out)
}

/// The invariant on one state: `Err` names what is wrong.
pub fn check_invariants(state: &QuorumState) -> Result<(), QuorumError> {
    Resolver::new(state).check_invariants()
}

struct Resolver {
    leader: String,
    quorum: i64,
    voters: Names,
    numsync: i64,
    sync: Names,
    numsync_confirmed: i64,
    confirmed_known: bool,
    active: Names,
    sync_wanted: i64,
    leader_wanted: String,
    out: Vec<Transition>,
}

fn union(a: &Names, b: &Names) -> Names {
    a.union(b).cloned().collect()
}
fn minus(a: &Names, b: &Names) -> Names {
    a.difference(b).cloned().collect()
}
fn inter(a: &Names, b: &Names) -> Names {
    a.intersection(b).cloned().collect()
}
fn one(name: &str) -> Names {
    std::iter::once(name.to_string()).collect()
}
fn len(s: &Names) -> i64 {
    s.len() as i64
}
fn proper_subset(a: &Names, b: &Names) -> bool {
    a.len() < b.len() && a.is_subset(b)
}

impl Resolver {
    fn new(s: &QuorumState) -> Resolver {
        Resolver {
            leader: s.leader.clone(),
            quorum: s.quorum as i64,
            voters: s.voters.clone(),
            // numsync can't be bigger than the number of listed synchronous nodes.
            numsync: (s.numsync as i64).min(len(&s.sync)),
            sync: s.sync.clone(),
            numsync_confirmed: s.numsync_confirmed.unwrap_or(0) as i64,
            confirmed_known: s.numsync_confirmed.is_some(),
            active: s.active.clone(),
            sync_wanted: s.sync_wanted as i64,
            leader_wanted: s.leader_wanted.clone(),
            out: Vec::new(),
        }
    }

    fn check_invariants(&self) -> Result<(), QuorumError> {
        let voters = union(&self.voters, &one(&self.leader));
        let sync = union(&self.sync, &one(&self.leader_wanted));
        // Any set that can acknowledge a commit overlaps any set that can elect (+ 1: the leader is in both).
        let nodes = len(&union(&voters, &sync));
        if !self.voters.is_empty() && nodes > self.quorum + self.numsync + 1 {
            return Err(QuorumError(format!(
                "Quorum and sync not guaranteed to overlap: nodes {nodes} >= quorum {} + sync {} + 1",
                self.quorum, self.numsync
            )));
        }
        // Half-way through a step one set may be a subset of the other, never more apart.
        if !(voters.is_subset(&sync) || sync.is_subset(&voters)) {
            return Err(QuorumError(format!(
                "Mismatched sets: voter only={:?} sync only={:?}",
                minus(&voters, &sync),
                minus(&sync, &voters)
            )));
        }
        Ok(())
    }

    /// A new `sync` key: `quorum` raised by the listed nodes not yet confirmed when `adjust` (so the election still
    /// finds one that has every commit), voters emptied when none is known to have caught up.
    fn quorum_update(
        &mut self,
        quorum: i64,
        voters: Names,
        leader: Option<&str>,
        adjust: bool,
    ) -> Result<(), QuorumError> {
        if quorum < 0 {
            return Err(QuorumError(format!("Quorum {quorum} < 0 of ({voters:?})")));
        }
        // Patroni refuses a quorum equal to the number of voters too; hactl reaches it when it does not assume a
        // slow standby confirmed, and it is safe (a candidate then needs every other voter's vote).
        if quorum > 0 && quorum > len(&voters) {
            return Err(QuorumError(format!("Quorum {quorum} >= N of ({voters:?})")));
        }
        let (mut quorum, mut voters) = (quorum, voters);
        let old_leader = self.leader.clone();
        if let Some(l) = leader {
            self.leader = l.to_string();
        } else if self.numsync_confirmed == 0 && self.voters.is_empty() {
            // No node is known to have caught up: the key stays without voters.
            quorum = 0;
            voters = Names::new();
        } else if adjust {
            quorum += (self.numsync - self.numsync_confirmed).max(0);
        }
        if self.leader == old_leader && quorum == self.quorum && voters == self.voters {
            if !self.voters.is_empty() {
                return Ok(());
            }
            // Nothing to write yet: wait for PostgreSQL to report the new standbys.
            self.out.push(Transition::Restart);
        }
        self.quorum = quorum;
        self.voters = voters;
        self.check_invariants()?;
        self.out.push(Transition::Quorum {
            leader: self.leader.clone(),
            quorum: quorum as usize,
            voters: self.voters.clone(),
        });
        Ok(())
    }

    fn sync_update(&mut self, numsync: i64, sync: Names) -> Result<(), QuorumError> {
        if numsync < 0 {
            return Err(QuorumError(format!("Sync {numsync} < 0 of ({sync:?})")));
        }
        if numsync > len(&sync) {
            return Err(QuorumError(format!("Sync {numsync} > N of ({sync:?})")));
        }
        self.numsync = numsync;
        self.sync = sync;
        self.check_invariants()?;
        self.out.push(Transition::Sync {
            num: numsync as usize,
            names: self.sync.clone(),
        });
        Ok(())
    }

    fn generate(&mut self) -> Result<(), QuorumError> {
        let started = if self.leader_wanted != self.leader {
            self.after_failover()
        } else {
            self.check_invariants().map(|()| true)
        };
        match started {
            Ok(true) => {}
            // Right after a promotion no standby may have reconnected yet: give them a loop before they are
            // taken out of the quorum.
            Ok(false) => return Ok(()),
            Err(_) => {
                let sync = self.sync.clone();
                self.quorum_update(len(&sync) - self.numsync, sync, None, true)?;
            }
        }
        if self.leader != self.leader_wanted {
            return Err(QuorumError(format!(
                "the sync key's leader {} is not {}",
                self.leader, self.leader_wanted
            )));
        }
        // Not known (after a restart or a failover): as many as the quorum guarantees.
        let live = inter(&self.sync, &self.active);
        if !self.confirmed_known && !live.is_empty() {
            self.numsync_confirmed = len(&live).min(len(&self.voters) - self.quorum);
        }
        self.non_steady()?;
        self.remove_gone()?;
        self.add_new()?;
        self.replication_factor()
    }

    /// The old leader becomes a voter and this node the key's leader. `Ok(false)`: stop for this loop.
    fn after_failover(&mut self) -> Result<bool, QuorumError> {
        let voters = union(
            &minus(&self.voters, &one(&self.leader_wanted)),
            &one(&self.leader),
        );
        if self.sync.is_empty() {
            // synchronous_standby_names first, so the old voters (and the old leader) keep every commit.
            self.sync_update(len(&voters) - self.quorum, voters.clone())?;
        }
        let wanted = self.leader_wanted.clone();
        self.quorum_update(self.quorum, voters, Some(&wanted), true)?;
        Ok(!inter(&self.sync, &self.active).is_empty())
    }

    /// Finish a step a previous loop left half done.
    fn non_steady(&mut self) -> Result<(), QuorumError> {
        if proper_subset(&self.sync, &self.voters) {
            // Voters were being changed: drop the dead ones not synced to, sync to the live ones.
            let gone = minus(&self.voters, &union(&self.sync, &self.active));
            if !gone.is_empty() {
                let adjust = minus(&self.sync, &self.active).is_empty();
                self.quorum_update(
                    len(&self.voters) - len(&gone) - self.numsync,
                    minus(&self.voters, &gone),
                    None,
                    adjust,
                )?;
            }
            let add = minus(&inter(&self.voters, &self.active), &self.sync);
            if !add.is_empty() {
                self.sync_update(self.numsync, union(&self.sync, &add))?;
            }
        } else if proper_subset(&self.voters, &self.sync) {
            // The replication factor was being changed: the live synced nodes become voters.
            let dead = minus(&self.sync, &self.active);
            let kept = minus(&self.sync, &dead);
            // Drop dead ones first only while sync and voters keep a node in common.
            if !dead.is_empty()
                && !kept.is_empty()
                && (self.voters.is_empty() || !inter(&kept, &self.voters).is_empty())
            {
                let num = self.numsync.min(len(&self.sync) - len(&dead));
                self.sync_update(num, kept)?;
            }
            let add = inter(&minus(&self.sync, &self.voters), &self.active);
            if !add.is_empty() {
                let voters = union(&self.voters, &add);
                self.quorum_update(len(&voters) - self.numsync, voters, None, true)?;
            }
            let drop = minus(&self.sync, &self.voters);
            if !drop.is_empty() {
                let num = self.numsync.min(len(&self.sync) - len(&drop));
                self.sync_update(num, minus(&self.sync, &drop))?;
            }
        }
        if self.voters != self.sync {
            return Err(QuorumError(format!(
                "voters {:?} and synchronous_standby_names {:?} still differ",
                self.voters, self.sync
            )));
        }
        let all = len(&union(&self.voters, &self.sync));
        let margin = self.quorum + self.numsync.min(self.numsync_confirmed) - all;
        if margin > 0 {
            if self.numsync > self.sync_wanted {
                // The replication factor is above what is wanted.
                let num = self.sync_wanted.max(len(&self.voters) - self.quorum);
                let sync = self.sync.clone();
                self.sync_update(num, sync)?;
            } else {
                // The quorum is above what is needed.
                let (q, voters) = (len(&self.sync) - self.numsync, self.voters.clone());
                self.quorum_update(q, voters, None, true)?;
            }
        } else {
            let margin = self.quorum + self.numsync - all;
            if self.numsync == self.sync_wanted
                && margin > 0
                && self.numsync > self.numsync_confirmed
            {
                let (q, voters) = (len(&self.sync) - self.numsync, self.voters.clone());
                self.quorum_update(q, voters, None, true)?;
            }
        }
        Ok(())
    }

    /// How many of `voters` are not known to hold every acknowledged commit: those beyond the measured confirmed
    /// count (every confirmed standby is a live one, so it is among the voters kept), 0 when it is not measured.
    ///
    /// Removing gone voters, the quorum is at least this many (Patroni leaves it as the sets' sizes say), so a
    /// candidate's voters include one known to have caught up: a new
    /// leader's voters may not yet hold the commits the old leader acknowledged under another setting, and the ones
    /// that do may be the ones leaving. Without it the simulator's seed 1424 lost commits: the one voter left, still
    /// behind the promotion point, was given quorum 0 and voted a lagging node in.
    fn unconfirmed(&self, voters: &Names) -> i64 {
        if self.confirmed_known {
            (len(voters) - self.numsync_confirmed).max(0)
        } else {
            0
        }
    }

    /// Take the standbys that stopped streaming out of both sets.
    fn remove_gone(&mut self) -> Result<(), QuorumError> {
        let mut gone = minus(&self.sync, &self.active);
        if gone.is_empty() {
            return Ok(());
        }
        if gone == self.sync {
            self.quorum_update(0, Names::new(), None, false)?;
            return self.sync_update(0, Names::new());
        }
        if self.quorum > 0 {
            // Lower the quorum first where it allows; the last names first, for determinism.
            let remove: Names = gone
                .iter()
                .rev()
                .take(self.quorum as usize)
                .cloned()
                .collect();
            let sync = minus(&self.sync, &remove);
            // Removing nodes from sync, numsync may safely grow to what is wanted.
            let num = if self.sync_wanted > self.numsync {
                self.sync_wanted
            } else {
                self.numsync
            }
            .min(len(&sync));
            self.sync_update(num, sync)?;
            let voters = minus(&self.voters, &remove);
            gone = inter(&gone, &self.sync);
            let mut quorum = len(&voters) - self.numsync;
            if !gone.is_empty() {
                quorum = quorum.max(self.unconfirmed(&voters)).min(len(&voters));
            }
            self.quorum_update(quorum, voters, None, gone.is_empty())?;
        }
        if !gone.is_empty() {
            // The quorum left is 0, or the floor the voters not known to have caught up set.
            if self.quorum > self.unconfirmed(&self.voters) {
                return Err(QuorumError(format!(
                    "quorum {} is not 0 with {gone:?} still to remove",
                    self.quorum
                )));
            }
            let num = self.numsync - len(&gone);
            let sync = minus(&self.sync, &gone);
            let voters = minus(&self.voters, &gone);
            let decrease = num - self.sync_wanted.min(len(&sync));
            let quorum = if decrease != 0 {
                decrease.min(len(&voters) - 1)
            } else {
                0
            };
            let quorum = quorum.max(self.unconfirmed(&voters)).min(len(&voters));
            self.quorum_update(quorum, voters, None, false)?;
            self.sync_update(num, sync)?;
        }
        Ok(())
    }

    /// Bring new streaming standbys into both sets: up to the wanted replication factor first.
    fn add_new(&mut self) -> Result<(), QuorumError> {
        let mut add = minus(&self.active, &self.sync);
        if add.is_empty() {
            return Ok(());
        }
        let wanted = self.sync_wanted.min(len(&union(&self.sync, &add)));
        let mut increase = wanted - self.numsync;
        if increase > 0 {
            let first = if self.sync.is_empty() {
                // Only the leader so far: all of them at once is safe.
                add.clone()
            } else {
                let some: Names = add.iter().take(increase as usize).cloned().collect();
                increase = len(&some);
                some
            };
            self.sync_update(self.numsync + increase, union(&self.sync, &first))?;
            let voters = union(&self.voters, &first);
            self.quorum_update(len(&voters) - wanted, voters, None, true)?;
            add = minus(&add, &self.sync);
        }
        if !add.is_empty() {
            let voters = union(&self.voters, &add);
            let adjust = wanted > self.numsync_confirmed;
            self.quorum_update(len(&voters) - wanted, voters, None, adjust)?;
            let sync = union(&self.sync, &add);
            self.sync_update(wanted, sync)?;
        }
        Ok(())
    }

    /// Apply a change of `synchronous_node_count`.
    fn replication_factor(&mut self) -> Result<(), QuorumError> {
        let increase = self.sync_wanted.min(len(&self.sync)) - self.numsync;
        if increase > 0 {
            let sync = self.sync.clone();
            self.sync_update(self.numsync + increase, sync)?;
            let voters = self.voters.clone();
            self.quorum_update(len(&voters) - self.numsync, voters, None, true)?;
        } else if increase < 0 {
            if self.quorum - increase < len(&self.voters) {
                let voters = self.voters.clone();
                let adjust = self.sync_wanted > self.numsync_confirmed;
                self.quorum_update(len(&voters) - self.numsync - increase, voters, None, adjust)?;
            }
            let sync = self.sync.clone();
            self.sync_update(self.numsync + increase, sync)?;
        }
        Ok(())
    }
}
