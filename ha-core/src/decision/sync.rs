//! Synchronous replication, the leader's side (`synchronous_mode`), as Patroni's `process_sync_replication`: the
//! leader picks its synchronous standbys, sets `synchronous_standby_names` (`FIRST n`) and records in the `sync`
//! key who may be promoted. One step per loop; the next loop sees what the step changed.
//!
//! The ordering rule keeps every acknowledged commit on a node the election may choose: the key names a standby
//! only after PostgreSQL reports it synchronous *and* it has flushed past the position the leader published in
//! a previous loop (so it holds the commits acknowledged before it became synchronous); a standby stops being
//! synchronous only after the key dropped it. With no candidate left, `synchronous_mode_strict` sets a name no
//! standby has: commits wait, never acknowledged, never silently asynchronous.
//!
//! `synchronous_mode: quorum` is [`super::quorum`]'s: this module dispatches to it.

use super::{Action, Observation};
use crate::model::{Cluster, GlobalConfig, SyncMode, SyncState};
use crate::pg::ReplicationRow;

pub use super::standby_names::{standby_names, STRICT_PLACEHOLDER};

/// A line the synchronous replication step adds to the loop's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// The words added to the reason.
    pub text: String,
    /// Logged at WARNING.
    pub warning: bool,
    /// The next step may follow at once: the next loop runs now instead of after loop_wait.
    pub rerun: bool,
}

impl From<String> for Note {
    fn from(text: String) -> Note {
        Note {
            text,
            warning: false,
            rerun: false,
        }
    }
}

impl From<&str> for Note {
    fn from(text: &str) -> Note {
        Note::from(text.to_string())
    }
}

/// The `sync` key's members other than `me` that a strict new leader keeps synchronous: the old leader and its
/// synchronous standbys all hold every commit the old leader acknowledged.
fn inherited(cluster: &Cluster, me: &str) -> Vec<String> {
    let Some(key) = cluster
        .sync
        .as_ref()
        .map(|k| &k.value)
        .filter(|s| !s.is_empty())
    else {
        return Vec::new();
    };
    key.leader
        .iter()
        .cloned()
        .chain(key.members())
        .filter(|n| n != me)
        .collect()
}

/// What a node about to promote does first in synchronous mode (Patroni's `_process_multisync_prepromote`): it
/// records itself as the leader in the `sync` key (compare-and-set: a lost race stops the promotion) and sets its
/// `synchronous_standby_names` before it accepts a write, so no commit is acknowledged asynchronously in between.
/// Strict, it keeps the old leader and standbys synchronous (commits wait for one of them until the next loops
/// pick live standbys); otherwise it starts asynchronous and picks standbys as they connect.
pub(super) fn prepromote(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Vec<Action> {
    match cfg.sync_mode() {
        SyncMode::Off => return Vec::new(),
        SyncMode::Quorum => return super::quorum::prepromote(obs, cluster, cfg),
        SyncMode::On => {}
    }
    let me = obs.me.name.as_str();
    let strict = cfg.synchronous_mode_strict();
    let keep = if strict {
        inherited(cluster, me)
    } else {
        Vec::new()
    };
    vec![
        write_key(me, &keep, 0, cluster.sync.as_ref().map(|k| k.version)),
        Action::SetSyncStandbyNames(Some(standby_names(&keep, strict))),
    ]
}

/// The `sync` key as Patroni writes it: the leader, the standbys sorted and comma-joined (none: `null`), and
/// `quorum` always present (0 outside quorum mode); compare-and-set on `version`.
pub(super) fn write_key<'a>(
    leader: &str,
    standbys: impl IntoIterator<Item = &'a String>,
    quorum: usize,
    version: Option<u64>,
) -> Action {
    let mut names: Vec<&str> = standbys.into_iter().map(String::as_str).collect();
    names.sort_unstable();
    Action::WriteSync {
        state: SyncState {
            leader: Some(leader.to_string()),
            sync_standby: (!names.is_empty()).then(|| names.join(",")),
            quorum: Some(quorum as u64),
            ..Default::default()
        },
        version,
    }
}

/// The leader's synchronous replication step for this loop (appended to `actions`), and a line for the reason.
pub(super) fn sync_duties(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    actions: &mut Vec<Action>,
) -> Option<Note> {
    let me = obs.me.name.as_str();
    let pg = obs.pg;
    let key = cluster.sync.as_ref();
    let key_state = key.map(|k| &k.value).filter(|s| !s.is_empty());
    let version = key.map(|k| k.version);
    let write = |standbys: &[String]| write_key(me, standbys, 0, version);
    let same_set =
        |a: &[String], b: &[String]| a.len() == b.len() && a.iter().all(|x| b.contains(x));
    if cfg.sync_mode() == SyncMode::Quorum {
        return super::quorum::duties(obs, cluster, cfg, actions);
    }
    if !cfg.synchronous_mode() {
        // Turned off: commits stop waiting first, then anyone may be elected again.
        if key_state.is_some() {
            actions.push(Action::SetSyncStandbyNames(None));
            actions.push(Action::WriteSync {
                state: SyncState::default(),
                version,
            });
            return Some("synchronous mode is off: asynchronous replication".into());
        }
        return None;
    }
    // First the key must say we lead: until then the previous leader's standbys could still be chosen.
    let strict = cfg.synchronous_mode_strict();
    if key_state.map_or(true, |s| s.leader.as_deref() != Some(me)) {
        let keep = if strict {
            inherited(cluster, me)
        } else {
            Vec::new()
        };
        actions.push(write(&keep));
        return Some(format!("synchronous mode: {me} takes over the sync key").into());
    }
    let voters = key_state.map(SyncState::members).unwrap_or_default();
    let picked = pick(obs, cluster, cfg);
    // Strict with no candidate: the key stays as it is and commits wait for the standbys it names (the
    // placeholder when it names none), never acknowledged asynchronously (Patroni's strict mode).
    if strict && picked.is_empty() {
        let desired = standby_names(&voters, true);
        if pg.synchronous_standby_names.as_deref() != Some(desired.as_str()) {
            actions.push(Action::SetSyncStandbyNames(Some(desired.clone())));
        }
        return Some(Note {
            text: format!(
                "No active replication connections from Patroni members and synchronous_mode_strict is \
                 requested. Commits will be delayed (synchronous_standby_names = {desired})"
            ),
            warning: true,
            rerun: false,
        });
    }
    let published = caught_up_at(obs, cluster);
    // Synchronous *and* still a candidate (Patroni's `sync_confirmed` among the active): a standby PostgreSQL still
    // waits for but that may no longer be picked (its member key gone, tagged nosync) leaves the key before
    // `synchronous_standby_names` moves on without it.
    let eligible: Vec<String> = candidates(obs, cluster, cfg)
        .into_iter()
        .map(|c| c.name)
        .collect();
    let synchronous: Vec<String> = pg
        .replication
        .iter()
        .filter(|r| r.sync_state == "sync" && r.flush_lsn.unwrap_or(0) >= published)
        .filter(|r| eligible.contains(&r.application_name))
        .map(|r| r.application_name.clone())
        .collect();
    // Shrink: a name in the key that is not synchronous (any more) goes before anything else changes.
    let common: Vec<String> = voters
        .iter()
        .filter(|v| synchronous.contains(v))
        .cloned()
        .collect();
    if !same_set(&common, &voters) {
        actions.push(write(&common));
        // Once the key no longer names them, `synchronous_standby_names` may move on: at once, not a loop_wait
        // later (after a failover the commits wait for the new names; the next loop observes again first).
        return Some(Note {
            rerun: true,
            ..Note::from(format!(
                "updating synchronous privilege temporarily from {voters:?} to {common:?}"
            ))
        });
    }
    let desired = standby_names(&picked, strict);
    if pg.synchronous_standby_names.as_deref() != Some(desired.as_str()) {
        if crate::mutants::active(crate::mutants::PlantedBug::SyncKeyBeforeNames)
            && !same_set(&picked, &voters)
        {
            actions.push(write(&picked));
        }
        actions.push(Action::SetSyncStandbyNames(Some(desired)));
        return Some(format!("assigning synchronous standby status to {picked:?}").into());
    }
    // Grow: the picked standbys PostgreSQL now reports synchronous, in the order picked.
    let target: Vec<String> = picked
        .iter()
        .filter(|p| synchronous.contains(p))
        .cloned()
        .collect();
    if !same_set(&target, &voters) {
        actions.push(write(&target));
        return Some(format!("synchronous standby status assigned to {target:?}").into());
    }
    None
}

/// The position a standby listed in `synchronous_standby_names` must have flushed to count as holding every
/// acknowledged commit: where the primary was when the setting last changed (commits acknowledged under the old
/// one reach up to there), at least the position the leader published in an earlier loop, and at least the furthest
/// one it reached without publishing it (a DCS outage in failsafe mode: the simulator's seed 2717 lost commits
/// acknowledged then, a standby that restarted meanwhile counting as caught up past the pre-outage `status`).
pub(super) fn caught_up_at(obs: &Observation, cluster: &Cluster) -> u64 {
    let published = cluster.last_leader_lsn().unwrap_or(0);
    published
        .max(obs.local.sync_names_changed_lsn.unwrap_or(0))
        .max(obs.local.unpublished_lsn.unwrap_or(0))
}

/// A standby that may be synchronous, as Patroni's `_ReplicaList` holds it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate {
    pub name: String,
    pub nofailover: bool,
    pub sync_priority: i64,
    /// `pg_stat_replication.sync_state`.
    pub sync_state: String,
    /// The position a commit waits for (by `synchronous_commit`).
    pub lsn: u64,
}

/// The standbys that may be synchronous, as Patroni's `_ReplicaList` orders them: streaming running members not
/// tagged [`nosync`](crate::model::Tags::never_sync), those tagged `nofailover` last, then the higher
/// `sync_priority`, the ones already synchronous, the furthest along; within `maximum_lag_on_syncnode` of the
/// furthest standby (of the primary when there is one standby).
pub(super) fn candidates(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> Vec<Candidate> {
    let pg = obs.pg;
    // The position a commit waits for, by `synchronous_commit` (Patroni's choice of column too).
    let commit = cfg.parameters().get("synchronous_commit").cloned();
    let acked = |r: &ReplicationRow| match commit.as_deref() {
        Some("remote_apply") => r.replay_lsn,
        Some("remote_write") => r.write_lsn,
        _ => r.flush_lsn,
    };
    let mut all: Vec<Candidate> = pg
        .replication
        .iter()
        .filter(|r| r.application_name != obs.me.name)
        .filter_map(|r| {
            let lsn = acked(r)?;
            let m = cluster
                .member(&r.application_name)
                .filter(|m| m.is_running())?;
            let tags = m.tags();
            (!tags.never_sync()).then(|| Candidate {
                name: r.application_name.clone(),
                nofailover: tags.nofailover(),
                sync_priority: tags.sync_priority(),
                sync_state: r.sync_state.clone(),
                lsn,
            })
        })
        .collect();
    all.sort_by(|a, b| {
        a.nofailover
            .cmp(&b.nofailover)
            .then(b.sync_priority.cmp(&a.sync_priority))
            .then((b.sync_state == "sync").cmp(&(a.sync_state == "sync")))
            .then(b.lsn.cmp(&a.lsn))
    });
    let max_lsn = match all.len() {
        0 | 1 => pg.lsn,
        _ => all.iter().map(|c| c.lsn).max().unwrap_or(pg.lsn),
    };
    let max_lag = cfg.maximum_lag_on_syncnode();
    all.retain(|c| max_lag.map_or(true, |l| max_lsn.saturating_sub(c.lsn) <= l));
    all
}

/// The standbys to make synchronous in `on` mode: the first `synchronous_node_count` [`candidates`].
fn pick(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Vec<String> {
    candidates(obs, cluster, cfg)
        .into_iter()
        .take(cfg.synchronous_node_count())
        .map(|c| c.name)
        .collect()
}
