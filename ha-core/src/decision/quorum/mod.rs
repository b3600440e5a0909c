//! Quorum commit (`synchronous_mode: quorum`), Patroni's semantics: a commit waits for **any** `numsync` of the
//! standbys listed (`ANY n (...)`), and a node becomes leader only with the votes of `quorum` members of the `sync`
//! key (the old leader and its voters) at or behind its own position: one of any `quorum + 1` of them holds every
//! acknowledged commit, so a candidate none of them is ahead of holds it too.
//!
//! The leader's side is `resolver` (the steps between the two settings, in the order that keeps that true) applied
//! one `sync` key write per loop; the candidate's side is [`votes`]; a node about to promote first lists the old
//! voters (`prepromote`) so nothing is acknowledged before the resolver takes over.

mod resolver;

pub use resolver::{check_invariants, transitions, Names, QuorumError, QuorumState, Transition};

use super::standby_names::{self, any_names, StandbyNames, SyncKind};
use super::sync::{candidates, Note};
use super::{Action, Observation};
use std::collections::BTreeMap;

use crate::driver::PeerStatus;
use crate::model::{Cluster, GlobalConfig, SyncState};

/// The `sync` key written in quorum mode.
fn write(leader: &str, quorum: usize, voters: &Names, version: Option<u64>) -> Action {
    super::sync::write_key(leader, voters, quorum, version)
}

fn joined(names: &Names) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The `sync` key, when it records a leader (quorum commit is active).
fn active_key(cluster: &Cluster) -> Option<&SyncState> {
    cluster
        .sync
        .as_ref()
        .map(|k| &k.value)
        .filter(|s| !s.is_empty())
}

/// Who may be a synchronous standby now (`active`) and which of those listed in `synchronous_standby_names` have
/// caught up since (`confirmed`), as Patroni's `SyncHandler.current_state` sees them in quorum mode: a standby
/// tagged `nofailover` only while fewer than `synchronous_node_count` others are available; confirmed once
/// PostgreSQL reports it `quorum` and it flushed past [`super::sync::caught_up_at`].
fn current(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    ssn: &StandbyNames,
) -> (Names, Names) {
    let wanted = cfg.synchronous_node_count();
    // Where the primary was when the names last changed, not only what the leader last published: a new leader's
    // cluster still shows the old leader's last status, which may predate commits it acknowledged afterwards.
    let published = super::sync::caught_up_at(obs, cluster);
    let mut all = candidates(obs, cluster, cfg);
    // Those that may fail over first (a stable sort keeps the rest of the order).
    all.sort_by_key(|c| c.nofailover);
    let (mut active, mut confirmed) = (Names::new(), Names::new());
    for c in all {
        if c.nofailover && active.len() >= wanted {
            continue;
        }
        if ssn.names.contains(&c.name) && c.sync_state == "quorum" && c.lsn >= published {
            confirmed.insert(c.name.clone());
        }
        active.insert(c.name);
    }
    (active, confirmed)
}

/// The leader's quorum commit step for this loop (appended to `actions`), and a line for the reason.
pub(super) fn duties(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    actions: &mut Vec<Action>,
) -> Option<Note> {
    let me = obs.me.name.as_str();
    let version = cluster.sync.as_ref().map(|k| k.version);
    let Some(key) = active_key(cluster) else {
        // Made explicit first, or it would never start when no standby is eligible yet.
        actions.push(write(me, 0, &Names::new(), version));
        return Some("Enabled synchronous replication".into());
    };
    let current_ssn = obs.pg.synchronous_standby_names.as_deref().unwrap_or("");
    let (ssn, unparsable) = match standby_names::parse(current_ssn) {
        Ok(s) => (s, None),
        Err(e) => (StandbyNames::off(), Some(e)),
    };
    let strict = cfg.synchronous_mode_strict();
    let min_sync = usize::from(strict);
    let (active, confirmed) = current(obs, cluster, cfg, &ssn);
    let voters: Names = key.members().into_iter().collect();
    let quorum = key.quorum.unwrap_or(0) as usize;
    let sync: Names = ssn.names.iter().cloned().collect();
    let numsync = if ssn.kind == SyncKind::Off {
        0
    } else {
        ssn.num
    };
    let key_leader = key.leader.clone().unwrap_or_default();
    if key_leader == me {
        if active.len() < min_sync {
            // Strict, no standby left: commits wait for the voters the key names (the placeholder when none).
            let num = min_sync.max(voters.len().saturating_sub(quorum));
            if ssn.kind != SyncKind::Quorum || ssn.num != num || sync != voters {
                actions.push(Action::SetSyncStandbyNames(Some(any_names(num, &voters))));
            }
            return Some(Note {
                text: format!(
                    "No active replication connections from Patroni members and synchronous_mode_strict is \
                     requested. Commits will be delayed (synchronous_standby_names = {})",
                    any_names(num, &voters)
                ),
                warning: true,
                rerun: false,
            });
        }
        if min_sync == 0
            && active.is_empty()
            && voters.is_empty()
            && (!sync.is_empty() || numsync > 0)
        {
            actions.push(Action::SetSyncStandbyNames(Some(String::new())));
            return Some("no standby to wait for: synchronous_standby_names emptied".into());
        }
    }
    let state = QuorumState {
        leader: key_leader,
        quorum,
        voters,
        numsync,
        sync: sync.clone(),
        numsync_confirmed: Some(confirmed.len()),
        active,
        sync_wanted: cfg.synchronous_node_count().max(min_sync),
        leader_wanted: me.to_string(),
    };
    let steps = match transitions(&state) {
        Ok(s) => s,
        Err(e) => {
            return Some(Note {
                text: format!("quorum commit: {e}; nothing changed"),
                warning: true,
                rerun: false,
            })
        }
    };
    let mut lines: Vec<String> = unparsable
        .map(|e| format!("synchronous_standby_names {current_ssn:?} does not parse ({e})"))
        .into_iter()
        .collect();
    let mut wrote_key = false;
    for step in &steps {
        match step {
            Transition::Sync { num, names } => {
                let value = any_names(*num, names);
                lines.push(format!("Assigning synchronous_standby_names to {value}"));
                actions.push(Action::SetSyncStandbyNames(Some(value)));
            }
            // One compare-and-set write per loop: the next loop reads the new version and goes on.
            Transition::Quorum { .. } if wrote_key => break,
            Transition::Quorum {
                leader,
                quorum,
                voters,
            } => {
                lines.push(format!(
                    "Setting leader to {leader}, quorum to {quorum} of ({})",
                    joined(voters)
                ));
                actions.push(write(leader, *quorum, voters, version));
                wrote_key = true;
            }
            Transition::Restart => break,
        }
    }
    if steps.is_empty() && ssn.kind == SyncKind::Priority {
        // From `synchronous_mode: on`: the same standbys, any of them acknowledging.
        let value = any_names(numsync, &sync);
        lines.push(format!("Assigning synchronous_standby_names to {value}"));
        actions.push(Action::SetSyncStandbyNames(Some(value)));
    }
    (!lines.is_empty()).then(|| lines.join("; ").into())
}

/// What a node about to promote does first in quorum mode (Patroni's `_process_quorum_prepromote`, and then its
/// resolver's first step after a failover): it lists the old leader and voters, as many of them waited for as the
/// `sync` key guarantees, then records itself as the key's leader with the old leader among the voters, before it
/// accepts a write. Otherwise, until its first loop as leader, the key would still name the old leader, which the
/// election lets win alone when nobody is ahead of it: commits this node acknowledged meanwhile would be lost.
pub(super) fn prepromote(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Vec<Action> {
    let me = obs.me.name.as_str();
    let version = cluster.sync.as_ref().map(|k| k.version);
    let (quorum, mut sync): (i64, Names) = match active_key(cluster) {
        Some(k) => (
            k.quorum.unwrap_or(0) as i64,
            k.leader.iter().cloned().chain(k.members()).collect(),
        ),
        None => (0, Names::new()),
    };
    // The key's members include the old leader: one fewer to wait for.
    let mut numsync = sync.len() as i64 - quorum - 1;
    if !sync.remove(me) {
        // Promoted from outside the voters (a manual failover, or enough votes): one more.
        numsync += 1;
    }
    let numsync = numsync.max(i64::from(cfg.synchronous_mode_strict())).max(0) as usize;
    let quorum = (quorum.max(0) as usize).min(sync.len());
    vec![
        Action::SetSyncStandbyNames(Some(any_names(numsync, &sync))),
        write(me, quorum, &sync, version),
    ]
}

/// The members' positions a vote is counted from: live answers when the driver asked (a member that did not
/// answer gives none), else the positions their member keys published.
fn positions(
    cluster: &Cluster,
    peers: Option<&BTreeMap<String, PeerStatus>>,
) -> Vec<(String, u64, bool)> {
    match peers {
        Some(p) => p
            .iter()
            .map(|(n, s)| (n.clone(), s.lsn, s.in_recovery))
            .collect(),
        None => cluster
            .members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| {
                (
                    m.name.clone(),
                    m.lsn(),
                    m.role() != Some(crate::model::Role::Primary),
                )
            })
            .collect(),
    }
}

/// The leader race in quorum mode (Patroni's `_is_healthiest_node`): `Ok` when `quorum` members of the `sync` key
/// (its leader and voters) are running at or behind this node's position `lsn`, or when this node is the key's
/// leader and nobody is ahead of it.
pub fn votes(
    me: &str,
    lsn: u64,
    cluster: &Cluster,
    peers: Option<&BTreeMap<String, PeerStatus>>,
) -> Result<(), String> {
    let Some(key) = active_key(cluster) else {
        return Ok(());
    };
    let voting: Names = key.leader.iter().cloned().chain(key.members()).collect();
    let quorum = key.quorum.unwrap_or(0) as i64;
    let mut votes: i64 = if voting.contains(me) { 0 } else { -1 };
    let mut ahead = 0;
    for (name, pos, in_recovery) in positions(cluster, peers) {
        // A member that may not fail over counts only as a voter.
        let nofailover = cluster
            .member(&name)
            .map_or(false, |m| m.tags().nofailover());
        if name == me || (nofailover && !voting.contains(&name)) {
            continue;
        }
        if !in_recovery {
            return Err(format!(
                "not racing for the lock: {name} is still a primary"
            ));
        }
        if pos > lsn {
            ahead += 1;
        } else if pos > 0 && voting.contains(&name) {
            votes += 1;
        }
    }
    if votes >= quorum || (ahead == 0 && key.leader.as_deref() == Some(me)) {
        Ok(())
    } else {
        Err(format!(
            "not racing for the lock: quorum commit needs the votes of {quorum} of ({}) at or behind {me}, got {}",
            joined(&voting),
            votes.max(0)
        ))
    }
}

/// [`votes`] in quorum mode, `Ok` otherwise.
pub fn votes_if_quorum(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> Result<(), String> {
    if cfg.sync_mode() == crate::model::SyncMode::Quorum {
        let peers = obs
            .peers
            .filter(|_| !crate::mutants::active(crate::mutants::PlantedBug::StaleQuorumVotes));
        votes(&obs.me.name, obs.pg.lsn, cluster, peers)
    } else {
        Ok(())
    }
}

/// Candidate `name` would get a quorum's votes. With `live` answers (every member that answered, this node
/// included) its position and the voters' are the ones they have now, and a candidate that did not answer has none;
/// without, they are the ones the member keys published (`published_lsn` for the candidate). Member keys alone
/// mislead right after a clean switchover: the candidate may have published a loop before the voters, and looks
/// behind WAL it has long received.
pub fn candidate_has_votes(
    name: &str,
    published_lsn: u64,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    live: Option<&BTreeMap<String, PeerStatus>>,
) -> bool {
    if cfg.sync_mode() != crate::model::SyncMode::Quorum {
        return true;
    }
    match live {
        Some(l) => l.get(name).map_or(false, |s| {
            s.in_recovery && votes(name, s.lsn, cluster, live).is_ok()
        }),
        None => votes(name, published_lsn, cluster, None).is_ok(),
    }
}

/// Without live answers, votes count only from positions the voters published after the leader was gone: for
/// one `loop_wait` after this node saw the leader key vanish, a voter's published position may predate WAL it
/// received since. `Some` with the milliseconds left while that holds. (A voter whose daemon froze before the
/// leader went keeps its stale key until its lease ends: only live answers rule that out.)
pub fn votes_settling(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Option<u64> {
    if cfg.sync_mode() != crate::model::SyncMode::Quorum
        || active_key(cluster).is_none()
        || obs.peers.is_some()
        || crate::mutants::active(crate::mutants::PlantedBug::StaleQuorumVotes)
    {
        return None;
    }
    let since = obs.local.no_leader_since.unwrap_or(obs.now);
    let until = since.plus_ms(obs.local.timing.loop_wait_ms);
    (obs.now < until).then(|| until.since(obs.now))
}
