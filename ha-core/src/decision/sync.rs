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
//! `synchronous_mode: quorum` is run as `on` (FIRST n): a stricter rule than Patroni's ANY n, which a warning at
//! load says.

use super::{Action, Observation};
use crate::model::{Cluster, GlobalConfig, SyncState};
use crate::pg::ReplicationRow;

/// Patroni 4.1's placeholder for "no synchronous standby, and commits must wait" (no standby has this name).
pub const STRICT_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

/// `synchronous_standby_names` for `names` as Patroni writes it: `"a"`, `2 ("a","b")`, or the strict placeholder.
pub fn standby_names(names: &[String], strict: bool) -> String {
    let mut quoted: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
    quoted.sort();
    match quoted.len() {
        0 if strict => STRICT_PLACEHOLDER.to_string(),
        0 => String::new(),
        1 => quoted.remove(0),
        n => format!("{n} ({})", quoted.join(",")),
    }
}

/// PostgreSQL's `quote_ident`, as Patroni applies it to every name: always in double quotes, `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A line the synchronous replication step adds to the loop's reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub text: String,
    /// Logged at WARNING.
    pub warning: bool,
}

impl From<String> for Note {
    fn from(text: String) -> Note {
        Note {
            text,
            warning: false,
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
    if !cfg.synchronous_mode() {
        return Vec::new();
    }
    let me = obs.me.name.as_str();
    let strict = cfg.synchronous_mode_strict();
    let mut keep = if strict {
        inherited(cluster, me)
    } else {
        Vec::new()
    };
    keep.sort();
    vec![
        Action::WriteSync {
            state: SyncState {
                leader: Some(me.to_string()),
                sync_standby: (!keep.is_empty()).then(|| keep.join(",")),
                ..Default::default()
            },
            version: cluster.sync.as_ref().map(|k| k.version),
        },
        Action::SetSyncStandbyNames(Some(standby_names(&keep, strict))),
    ]
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
    // Patroni writes the names sorted; the key is a set.
    let write = |standbys: &[String]| {
        let mut names = standbys.to_vec();
        names.sort();
        Action::WriteSync {
            state: SyncState {
                leader: Some(me.to_string()),
                sync_standby: (!names.is_empty()).then(|| names.join(",")),
                ..Default::default()
            },
            version,
        }
    };
    let same_set =
        |a: &[String], b: &[String]| a.len() == b.len() && a.iter().all(|x| b.contains(x));
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
        });
    }
    let published = cluster.last_leader_lsn().unwrap_or(0);
    let synchronous: Vec<String> = pg
        .replication
        .iter()
        .filter(|r| r.sync_state == "sync" && r.flush_lsn.unwrap_or(0) >= published)
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
        return Some(
            format!("updating synchronous privilege temporarily from {voters:?} to {common:?}")
                .into(),
        );
    }
    let desired = standby_names(&picked, strict);
    if pg.synchronous_standby_names.as_deref() != Some(desired.as_str()) {
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

/// The standbys to make synchronous, as Patroni's `_ReplicaList` orders them: streaming members that may be
/// synchronous ([`Tags::never_sync`](crate::model::Tags::never_sync)), those tagged `nofailover` last, then the
/// higher `sync_priority`, the ones already synchronous, the furthest along; within `maximum_lag_on_syncnode` of
/// the furthest standby (of the primary when there is one standby); `synchronous_node_count` of them.
fn pick(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Vec<String> {
    let pg = obs.pg;
    // The position a commit waits for, by `synchronous_commit` (Patroni's choice of column too).
    let commit = cfg.parameters().get("synchronous_commit").cloned();
    let acked = |r: &ReplicationRow| match commit.as_deref() {
        Some("remote_apply") => r.replay_lsn,
        Some("remote_write") => r.write_lsn,
        _ => r.flush_lsn,
    };
    let mut candidates: Vec<(bool, i64, bool, u64, String)> = pg
        .replication
        .iter()
        .filter(|r| r.application_name != obs.me.name)
        .filter_map(|r| {
            let lsn = acked(r)?;
            let m = cluster
                .member(&r.application_name)
                .filter(|m| m.is_running())?;
            let tags = m.tags();
            (!tags.never_sync()).then(|| {
                (
                    tags.nofailover(),
                    tags.sync_priority(),
                    r.sync_state == "sync",
                    lsn,
                    r.application_name.clone(),
                )
            })
        })
        .collect();
    candidates.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then(b.2.cmp(&a.2))
            .then(b.3.cmp(&a.3))
    });
    let max_lsn = match candidates.len() {
        0 | 1 => pg.lsn,
        _ => candidates.iter().map(|c| c.3).max().unwrap_or(pg.lsn),
    };
    let max_lag = cfg.maximum_lag_on_syncnode();
    candidates
        .into_iter()
        .filter(|c| max_lag.map_or(true, |l| max_lsn.saturating_sub(c.3) <= l))
        .take(cfg.synchronous_node_count())
        .map(|c| c.4)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standby_names_as_patroni_writes_them() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(standby_names(&n(&[]), false), "");
        assert_eq!(standby_names(&n(&[]), true), STRICT_PLACEHOLDER);
        assert_eq!(standby_names(&n(&["postgres-1"]), true), "\"postgres-1\"");
        assert_eq!(
            standby_names(&n(&["postgres-2", "postgres-1"]), false),
            "2 (\"postgres-1\",\"postgres-2\")"
        );
    }
}
