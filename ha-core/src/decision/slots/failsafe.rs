//! Slots while the DCS is unreachable in failsafe mode: the positions the leader sends with `POST /failsafe`, what a
//! standby that accepted it moves there, and what the leader moves by the positions its members answered with.

use std::collections::BTreeMap;

use super::{plan, WantedSlot};
use crate::decision::{Action, Observation};
use crate::model::{slot_name, SlotKind};
use crate::pg::{LocalSlot, SlotPlan};

/// Each slot's position as Patroni's `slots()` reports it: `confirmed_flush_lsn` of a logical slot, `restart_lsn`
/// of a physical one (slots without one left out).
pub fn positions(local: &[LocalSlot]) -> BTreeMap<String, u64> {
    local
        .iter()
        .filter_map(|s| {
            let lsn = match s.kind {
                SlotKind::Logical { .. } => s.confirmed_flush_lsn,
                SlotKind::Physical => s.restart_lsn,
            }?;
            Some((s.name.clone(), lsn))
        })
        .collect()
}

/// With the DCS unreachable in failsafe mode, a standby that accepted the leader's `POST /failsafe` moves its copies
/// of the permanent slots to the positions the leader sent (Patroni's `Failsafe.update_cluster`): a logical
/// consumer that follows a failover then does not get changes it already confirmed. Only advances: nothing is
/// created or dropped without the DCS.
pub(in crate::decision) fn failsafe_advance(obs: &Observation) -> Option<Action> {
    let cfg = &obs.local.last_config;
    let (leader, until) = obs.local.failsafe.accepted_leader.as_ref()?;
    let sent = obs.local.failsafe.leader_slots.as_ref()?;
    let local = obs.pg.slots.as_deref()?;
    if !cfg.failsafe_mode() || !cfg.use_slots() || !obs.pg.is_replica() || *leader == obs.me.name {
        return None;
    }
    if obs.now >= *until {
        return None;
    }
    let wanted: BTreeMap<String, WantedSlot> = cfg
        .permanent_slots()
        .0
        .into_iter()
        .map(|p| {
            let target = sent.get(&p.name).copied();
            (
                p.name,
                WantedSlot {
                    kind: p.kind,
                    target,
                    expected_active: Some(false),
                    permanent: true,
                },
            )
        })
        .collect();
    let replay = obs.pg.replay_lsn.unwrap_or(obs.pg.lsn);
    let (plan, _) = plan(&wanted, local, cfg, false, replay, false);
    let advance = SlotPlan {
        advance: plan.advance,
        ..Default::default()
    };
    (!advance.is_empty()).then_some(Action::SyncSlots(advance))
}

/// With the DCS unreachable in failsafe mode, the leader moves the slots of members that stream from another member
/// (inactive here, so nothing else moves them) to the positions those members reported when they accepted it, as
/// Patroni does with the `lsn` of their answers; never past its own position.
pub(in crate::decision) fn failsafe_leader_advance(obs: &Observation) -> Option<Action> {
    let cfg = &obs.local.last_config;
    let local = obs.pg.slots.as_deref()?;
    if !cfg.use_slots() || !obs.pg.is_primary() {
        return None;
    }
    let wanted: BTreeMap<String, WantedSlot> = obs
        .local
        .failsafe
        .member_lsns
        .iter()
        .filter(|(m, _)| **m != obs.me.name)
        .map(|(m, lsn)| {
            (
                slot_name(m),
                WantedSlot {
                    kind: SlotKind::Physical,
                    target: Some((*lsn).min(obs.pg.lsn)),
                    expected_active: Some(false),
                    permanent: false,
                },
            )
        })
        .collect();
    let (plan, _) = plan(&wanted, local, cfg, true, obs.pg.lsn, false);
    let advance = SlotPlan {
        advance: plan.advance,
        ..Default::default()
    };
    (!advance.is_empty()).then_some(Action::SyncSlots(advance))
}
