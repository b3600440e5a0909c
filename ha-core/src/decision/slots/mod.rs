//! Replication slots, as Patroni manages them (its `Cluster.get_replication_slots` and `SlotsHandler`): which slots
//! each node should have, how far the inactive ones move, and what the leader publishes in `status`.
//!
//! - Member slots: with `member_slots_ttl` > 0 (the default) every node that may become the leader keeps a physical
//!   slot for every other member that streams (not `nostream`), so WAL a member still needs survives a failover; a
//!   `nofailover` node keeps only the slots of the members that stream from it (`replicatefrom`). With
//!   `member_slots_ttl` 0 a node keeps only the slots of the members that stream from it. The leader lists the member
//!   slots in `status.retain_slots`, so a member that went away keeps its slot for `member_slots_ttl`.
//! - Permanent slots (`slots`): physical and logical, on every node that may become the leader. The leader creates
//!   them; a standby copies a logical one from the leader (its state file; PostgreSQL before 17 cannot create one on
//!   a standby) and advances it to the position the leader publishes in `status.slots`, never past its own replay.
//! - A slot nobody consumes here (a member slot on a standby, a cascading member's slot on the leader) is advanced
//!   to the position its member reports, so it holds WAL the member still needs and no more; one that still holds
//!   an `xmin` from a standby once connected to it is dropped and made again, or it would hold back vacuum forever.
//! - What is dropped: only slots hactl made (the node's state file remembers them) that are no longer wanted, and
//!   on a standby a logical slot that is neither permanent nor ignored (it cannot be consumed there, and pins WAL and
//!   the catalog at a position from before the last failover). A slot `ignore_slots` matches, a backup tool's
//!   physical slot and a consumer's logical slot on the primary are never touched; nothing is dropped while paused.

use std::collections::{BTreeMap, BTreeSet};

use super::{upstream_of, Action, Decision, Observation};
use crate::model::{slot_name, Cluster, GlobalConfig, SlotKind, Status};
use crate::pg::{LocalSlot, SlotPlan};
use crate::time::Millis;

mod failsafe;

pub use failsafe::positions;
pub(in crate::decision) use failsafe::{failsafe_advance, failsafe_leader_advance};

/// A slot this node should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSlot {
    /// Physical for a member slot; for a permanent one, as `slots` configures it.
    pub kind: SlotKind,
    /// Where to advance it to while nobody consumes it here (what its member or the leader reported).
    pub target: Option<u64>,
    /// Whether a consumer should be streaming from it here (`None`: not known, a retained slot).
    pub expected_active: Option<bool>,
    /// A permanent slot (from `slots`), not a member's.
    pub permanent: bool,
}

/// The slots this node should have, and one line per configuration problem to log.
pub fn wanted_slots(
    cluster: &Cluster,
    me: &str,
    my_tags: &crate::model::Tags,
    cfg: &GlobalConfig,
    primary: bool,
) -> (BTreeMap<String, WantedSlot>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut notes = Vec::new();
    if !cfg.use_slots() {
        return (out, notes);
    }
    let my_slot = slot_name(me);
    let leader = cluster.leader_name();
    let published: BTreeMap<String, u64> = cluster
        .status
        .as_ref()
        .and_then(|s| s.slots.clone())
        .unwrap_or_default();
    let retention = cfg.member_slots_ttl_ms() > 0;
    let nofailover = my_tags.nofailover();
    let streams_from_me = |replicatefrom: Option<&str>| -> bool {
        if primary {
            match replicatefrom {
                None => true,
                Some(r) => r == me || cluster.member(r).is_none(),
            }
        } else {
            replicatefrom == Some(me)
        }
    };
    for m in &cluster.members {
        let tags = m.tags();
        if m.name == me || tags.nostream() {
            continue;
        }
        let replicatefrom = tags.replicatefrom.as_deref();
        let expected =
            streams_from_me(replicatefrom) && !(!primary && Some(m.name.as_str()) == leader);
        let keep = if retention {
            !nofailover || replicatefrom == Some(me)
        } else {
            expected
        };
        if !keep {
            continue;
        }
        let name = slot_name(&m.name);
        let mut target = published.get(&name).copied().unwrap_or(0);
        if replicatefrom.is_some() {
            // `status` comes from the leader, but this member streams from someone else: the leader's copy of its
            // slot is inactive, so the member's own position says how far it may move.
            target = target.max(m.lsn());
        }
        out.insert(
            name,
            WantedSlot {
                kind: SlotKind::Physical,
                target: (target > 0).then_some(target),
                expected_active: Some(expected),
                permanent: false,
            },
        );
    }
    if !nofailover {
        let retained = cluster
            .status
            .as_ref()
            .and_then(|s| s.retain_slots.clone())
            .unwrap_or_default();
        for name in retained {
            if name != my_slot && !out.contains_key(&name) {
                let target = published.get(&name).copied().filter(|t| *t > 0);
                out.insert(
                    name,
                    WantedSlot {
                        kind: SlotKind::Physical,
                        target,
                        expected_active: None,
                        permanent: false,
                    },
                );
            }
        }
    }
    if nofailover {
        return (out, notes);
    }
    let (permanent, errors) = cfg.permanent_slots();
    notes.extend(errors);
    let cascading: BTreeMap<String, (bool, u64)> = cluster
        .members
        .iter()
        .map(|m| {
            (
                slot_name(&m.name),
                (m.tags().replicatefrom.is_some(), m.lsn()),
            )
        })
        .collect();
    for p in permanent {
        let mut target = published.get(&p.name).copied().unwrap_or(0);
        match &p.kind {
            SlotKind::Physical => {
                if p.name == my_slot || out.contains_key(&p.name) {
                    if let Some(w) = out.get_mut(&p.name) {
                        w.permanent = true;
                    }
                    continue;
                }
                let (member_cascades, member_lsn) =
                    cascading.get(&p.name).copied().unwrap_or((false, 0));
                if member_cascades {
                    target = target.max(member_lsn);
                }
                out.insert(
                    p.name,
                    WantedSlot {
                        kind: SlotKind::Physical,
                        target: (target > 0).then_some(target),
                        // On the leader a permanent slot is consumed there, unless it is a cascading member's:
                        // A(B: active, C: inactive) <- B(C: active) <- C.
                        expected_active: Some(primary && !member_cascades),
                        permanent: true,
                    },
                );
            }
            SlotKind::Logical { .. } => {
                if my_tags.nostream() || cfg.standby_cluster().is_some() {
                    // No feedback reaches the primary from a node that does not stream: its logical slots would be
                    // unsafe to use after a failover. A standby cluster has only physical slots (as in Patroni).
                    continue;
                }
                if out.contains_key(&p.name) || p.name == my_slot {
                    notes.push(format!(
                        "permanent logical replication slot '{}' conflicts with the physical slot of a member",
                        p.name
                    ));
                    continue;
                }
                out.insert(
                    p.name,
                    WantedSlot {
                        kind: p.kind,
                        target: (target > 0).then_some(target),
                        expected_active: None,
                        permanent: true,
                    },
                );
            }
        }
    }
    (out, notes)
}

/// What to change so the local slots become `wanted`, and the logical slots to copy from the leader (a standby
/// without them, once the leader published their position).
pub fn plan(
    wanted: &BTreeMap<String, WantedSlot>,
    local: &[LocalSlot],
    cfg: &GlobalConfig,
    primary: bool,
    replay_lsn: u64,
    clean_inactive: bool,
) -> (SlotPlan, Vec<String>) {
    let ignore = cfg.ignore_slots();
    let paused = cfg.is_paused();
    let mut p = SlotPlan::default();
    let mut copy = Vec::new();
    let have: BTreeMap<&str, &LocalSlot> = local.iter().map(|s| (s.name.as_str(), s)).collect();
    for s in local {
        if ignore.iter().any(|r| r.matches(&s.name, &s.kind)) {
            continue;
        }
        let fits = wanted.get(&s.name).map_or(false, |w| w.kind == s.kind);
        let stale_logical_on_standby =
            !primary && matches!(s.kind, SlotKind::Logical { .. }) && !fits;
        let drop = (!fits && (s.managed || stale_logical_on_standby)) || (fits && s.lost);
        if drop && !paused && !s.active {
            p.drop.push(s.name.clone());
        }
    }
    for (name, w) in wanted {
        let existing = have.get(name.as_str()).filter(|s| s.kind == w.kind);
        match (&w.kind, existing) {
            (SlotKind::Physical, None) if !have.contains_key(name.as_str()) => {
                p.create_physical.push(name.clone())
            }
            (SlotKind::Physical, Some(s)) => {
                if p.drop.contains(name) {
                    continue;
                }
                if clean_inactive && w.expected_active == Some(false) && s.has_xmin && !s.active {
                    // Nothing will send feedback to this slot here: its xmin would hold back vacuum forever.
                    p.drop.push(name.clone());
                    continue;
                }
                if !s.managed {
                    p.adopt.push(name.clone());
                }
                // A slot in use moves with its consumer (and PostgreSQL refuses to advance it).
                if let (Some(t), Some(r), false, false, false) = (
                    w.target,
                    s.restart_lsn,
                    w.expected_active == Some(true),
                    s.has_xmin,
                    s.active,
                ) {
                    if t > r {
                        p.advance.push((name.clone(), None, t));
                    }
                }
            }
            (SlotKind::Logical { database, plugin }, None) if !have.contains_key(name.as_str()) => {
                if primary {
                    p.create_logical
                        .push((name.clone(), database.clone(), plugin.clone()));
                } else if w.target.is_some() {
                    copy.push(name.clone());
                }
            }
            (SlotKind::Logical { database, .. }, Some(s)) => {
                if !s.managed {
                    p.adopt.push(name.clone());
                }
                if primary || s.active {
                    continue;
                }
                // A standby cannot move a slot past what it replayed.
                if let Some(t) = w.target.map(|t| t.min(replay_lsn)) {
                    if s.confirmed_flush_lsn.map_or(false, |c| c < t) {
                        p.advance.push((name.clone(), Some(database.clone()), t));
                    }
                }
            }
            // A slot of that name but another kind: dropped above when hactl made it, else left alone.
            _ => {}
        }
    }
    (p, copy)
}

/// The slot step of a steady loop: on a running primary that holds the lock, or a running standby. Adds
/// [`Action::SyncSlots`] (and [`Action::CopyLogicalSlots`] on a standby that lacks a permanent logical slot the
/// leader has), and a note for the reason when the configuration has a problem.
pub(super) fn slot_duties(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    i_am_leader: bool,
    d: &mut Decision,
) {
    let pg = obs.pg;
    let Some(local) = pg.slots.as_deref() else {
        return;
    };
    if d.rerun_now || d.actions.iter().any(Action::touches_postgres) {
        return;
    }
    // The lock holder's slots are the ones its members stream from: a primary's, or a standby cluster's leader's
    // (in recovery, but its replicas stream from it all the same).
    let primary =
        i_am_leader && (pg.is_primary() || (pg.is_replica() && cfg.standby_cluster().is_some()));
    if !(primary || pg.is_replica()) {
        return;
    }
    let me = obs.me.name.as_str();
    let (wanted, notes) = wanted_slots(cluster, me, &obs.me.tags, cfg, primary);
    let clean_inactive = match cluster.leader_name() {
        Some(l) => l != me || primary,
        None => false,
    };
    let replay = pg.replay_lsn.unwrap_or(pg.lsn);
    let (plan, copy) = plan(&wanted, local, cfg, primary, replay, clean_inactive);
    if !plan.is_empty() {
        d.actions.push(Action::SyncSlots(plan));
    }
    if !copy.is_empty() && pg.server_version.map_or(true, |v| v < 170000) {
        if let Some(up) = cluster
            .leader_member()
            .filter(|m| m.name != me)
            .and_then(upstream_of)
        {
            d.actions.push(Action::CopyLogicalSlots {
                source: up,
                names: copy,
            });
        }
    }
    for n in notes {
        d.reason.push_str("; ");
        d.reason.push_str(&n);
    }
}

/// What the leader publishes in `status`: the positions of its slots that other nodes mirror (with retention on:
/// every wanted slot, and its own name at its WAL position; without: the permanent ones), and the member slots to
/// retain. `None` for both when slots are off or not observed.
pub fn status_slots(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> (Option<BTreeMap<String, u64>>, Option<Vec<String>>) {
    let pg = obs.pg;
    let (Some(local), true) = (pg.slots.as_deref(), cfg.use_slots()) else {
        return (None, None);
    };
    let me = obs.me.name.as_str();
    let (wanted, _) = wanted_slots(cluster, me, &obs.me.tags, cfg, true);
    let retention = cfg.member_slots_ttl_ms() > 0;
    let mut slots: BTreeMap<String, u64> = local
        .iter()
        .filter(|s| {
            wanted
                .get(&s.name)
                .map_or(false, |w| w.kind == s.kind && (retention || w.permanent))
        })
        .filter_map(|s| s.position().map(|p| (s.name.clone(), p)))
        .collect();
    if retention {
        slots.insert(slot_name(me), pg.lsn);
    }
    let retain: Vec<String> = if retention {
        obs.local
            .member_slots_seen
            .keys()
            .filter(|n| !wanted.get(*n).map_or(false, |w| w.permanent))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    (
        Some(slots).filter(|s| !s.is_empty()),
        Some(retain).filter(|r| !r.is_empty()),
    )
}

/// The `WriteStatus` a leader's loop needs, if anything in it changed.
pub(super) fn status_action(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> Option<Action> {
    let (slots, retain_slots) = status_slots(obs, cluster, cfg);
    let old = cluster.status.clone().unwrap_or_default();
    // Slots not observed this loop: what the key says stands.
    let (slots, retain_slots) = if obs.pg.slots.is_none() {
        (old.slots.clone(), old.retain_slots.clone())
    } else {
        (slots, retain_slots)
    };
    let new = Status {
        optime: Some(obs.pg.lsn),
        slots: slots.clone(),
        retain_slots: retain_slots.clone(),
        extra: Default::default(),
    };
    (old.optime != new.optime || old.slots != new.slots || old.retain_slots != new.retain_slots)
        .then_some(Action::WriteStatus {
            optime: obs.pg.lsn,
            slots,
            retain_slots,
        })
}

/// The leader's memory of member slots (`status.retain_slots`): every member that streams, and this node, seen
/// now; names not seen for `member_slots_ttl` forgotten. A new leader starts from the list its predecessor wrote.
pub fn remember_members(
    seen: &mut BTreeMap<String, Millis>,
    cluster: &Cluster,
    me: &str,
    cfg: &GlobalConfig,
    now: Millis,
) {
    let ttl = cfg.member_slots_ttl_ms();
    if ttl == 0 || !cfg.use_slots() {
        seen.clear();
        return;
    }
    if seen.is_empty() {
        for n in cluster
            .status
            .as_ref()
            .and_then(|s| s.retain_slots.clone())
            .unwrap_or_default()
        {
            seen.insert(n, now);
        }
    }
    let current: BTreeSet<String> = cluster
        .members
        .iter()
        .filter(|m| !m.tags().nostream())
        .map(|m| slot_name(&m.name))
        .chain(std::iter::once(slot_name(me)))
        .collect();
    for n in current {
        seen.insert(n, now);
    }
    seen.retain(|_, t| now.since(*t) < ttl);
}
