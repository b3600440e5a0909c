//! The HA decision: a pure function from one [`Observation`] to a [`Decision`].
//!
//! No I/O, no clock, no randomness: the same observation always gives the same actions, which is what makes every
//! simulator failure replayable. The driver ([`crate::driver`]) observes, calls [`decide`], and executes.
//!
//! The safety rule everything else serves: **PostgreSQL accepts writes only on a node whose lease is valid**.
//! A node promotes only in the same action list that first takes or renews the lock (the driver stops at a failed
//! lock action); a lock holder that cannot renew stops acting as primary by its own lease deadline, counted from the
//! moment it *sent* the last successful renewal; a hung primary is fenced before its lock is released.
//!
//! # Layout
//! [`decide`] is the index of the rules: one call per situation, in the order they take precedence. Each situation
//! has its own file:
//! - `dcs_outage`: the DCS is unreachable (ride out the lease, keep it by failsafe confirmation, or demote in time).
//! - `paused`: maintenance mode: no automatic action, only what the operator asks for.
//! - `unresponsive`: PostgreSQL does not answer (fenced after retry_timeout, the lock released first if held).
//! - `uninitialized`: an empty data directory (bootstrap the cluster, or clone a replica).
//! - `leader`: this node holds the lock (start or promote, hand over for a switchover, publish what changed).
//! - `follower`: another node holds the lock (demote, rejoin by rewind or reinitialize, follow).
//! - `no_leader`: nobody holds the lock (failsafe promises, then the leader race).
//! - `housekeeping`: what every healthy loop adds (a new config version, a requested restart).
//!
//! The sub-protocols those rules call are pure and tested alone: [`election`] (the leader race), [`switchover`]
//! (the `failover` key's lifecycle), [`rejoin`] (may this node's data stream from the leader), [`sync`] (the
//! leader's synchronous standbys and the `sync` key), [`quorum`] (the same for quorum commit, and its votes),
//! [`standby_names`] (`synchronous_standby_names` written and parsed) and [`slots`] (replication slots on every
//! node).

mod action;
mod dcs_outage;
pub mod election;
mod follower;
mod housekeeping;
mod leader;
mod no_leader;
mod observation;
mod paused;
pub mod primary_down;
pub mod quorum;
pub mod rejoin;
pub mod slots;
pub mod standby_names;
pub mod switchover;
pub mod sync;
mod uninitialized;
mod unresponsive;

pub use crate::mutants::PlantedBug;
pub use action::{Action, Decision};
pub use observation::{FailsafeInput, LocalState, NodeIdentity, Observation, RemoveData, Requests};

use crate::model::{GlobalConfig, Member, SyncMode};
use crate::pg::{PgRunState, StopMode, Upstream};

use dcs_outage::dcs_unreachable;
use follower::as_follower;
use housekeeping::{config_before_first_start, housekeeping};
use leader::as_leader;
use no_leader::without_leader;
use paused::paused;
use uninitialized::uninitialized;
use unresponsive::unresponsive;

/// A system identifier Patroni would accept (`sysid_valid`): at least 10 digits.
pub fn sysid_valid(s: &str) -> bool {
    s.len() >= 10 && s.bytes().all(|b| b.is_ascii_digit())
}

fn upstream_of(m: &Member) -> Option<Upstream> {
    m.data
        .conn_url
        .as_ref()
        .map(|u| Upstream::member(m.name.clone(), u.clone()))
}

/// How a primary is stopped to demote it: in a synchronous mode with Patroni's `primary_stop_timeout` set, killed
/// if it has not exited in time; otherwise a plain stop.
pub fn stop_primary(cfg: &GlobalConfig, mode: StopMode) -> Action {
    match cfg.primary_stop_timeout_ms() {
        Some(ms) if cfg.sync_mode() != SyncMode::Off && mode != StopMode::Immediate => {
            Action::StopOrKill {
                mode,
                kill_after_ms: ms,
            }
        }
        _ => Action::Stop(mode),
    }
}

/// Decides one loop. See the module doc for the safety rule.
pub fn decide(obs: &Observation) -> Decision {
    let cluster = match obs.dcs {
        Err(e) => return dcs_unreachable(obs, e),
        Ok(c) => c,
    };
    let me = obs.me.name.as_str();
    let pg = obs.pg;
    // The DCS value when there is one, else what the driver last knew (its bootstrap.dcs before the first leader).
    let cfg = match &cluster.config {
        Some(c) => c.value.clone(),
        None => obs.local.last_config.clone(),
    };
    let i_am_leader = cluster.leader_name() == Some(me);

    if cfg.is_paused() {
        // Slots are still kept in step while paused (nothing is dropped: see `slots`).
        let mut d = paused(obs, cluster, &cfg, i_am_leader);
        slots::slot_duties(obs, cluster, &cfg, i_am_leader, &mut d);
        return d;
    }

    if pg.state() == PgRunState::Unresponsive {
        return unresponsive(obs, i_am_leader);
    }

    if pg.state() == PgRunState::Uninitialized {
        let mut d = uninitialized(obs, cluster, &cfg, i_am_leader);
        config_before_first_start(obs, cluster, &cfg, &mut d);
        return d;
    }

    if let (Some(init), Some(sysid)) = (cluster.initialize.as_deref(), pg.system_id.as_deref()) {
        if sysid_valid(init) && init != sysid {
            let mut d = Decision::none(format!(
                "system identifier mismatch: the cluster is {init} but the local data directory is {sysid}; refusing to touch it"
            ));
            if pg.is_primary() {
                d.actions.push(Action::Stop(StopMode::Fast));
            }
            return d;
        }
    }

    let mut decision = match cluster.leader_name() {
        Some(l) if l == me => as_leader(obs, cluster, &cfg),
        Some(l) => as_follower(obs, cluster, &cfg, l),
        None => without_leader(obs, cluster, &cfg),
    };
    housekeeping(obs, cluster, &cfg, &mut decision);
    slots::slot_duties(obs, cluster, &cfg, i_am_leader, &mut decision);
    decision
}
