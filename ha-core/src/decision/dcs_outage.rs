//! The DCS is unreachable. A secondary does nothing; a primary stays one only while its lease could still be valid
//! (or while failsafe mode has every member confirm it), then demotes, so that no other primary can coexist with it.
//! In failsafe mode a member that does not confirm ends it at once, as in Patroni: the DBA chose Patroni's rule.

use super::{Action, Decision, Observation, PlantedBug};
use crate::dcs::DcsError;
use crate::mutants;
use crate::pg::{PgRunState, StopMode};

pub(super) fn dcs_unreachable(obs: &Observation, e: &DcsError) -> Decision {
    let pg = obs.pg;
    let cfg = &obs.local.last_config;
    let acting_primary =
        pg.is_primary() || (pg.is_alive() && !pg.in_recovery && obs.local.lease_deadline.is_some());
    if !acting_primary {
        if mutants::active(PlantedBug::PromoteWithoutLock) && pg.is_replica() {
            return Decision::new(
                vec![Action::Promote],
                "planted bug: the DCS is gone, promoting without the lock",
            );
        }
        if let Some(sync) = super::slots::failsafe_advance(obs) {
            return Decision::new(
                vec![sync],
                format!("DCS is not accessible ({e}); failsafe: moving the permanent slots to the leader's positions"),
            );
        }
        return Decision::none(format!(
            "DCS is not accessible ({e}); no action as a secondary"
        ));
    }
    if cfg.is_paused() {
        return Decision::none(format!(
            "PAUSE: DCS is not accessible ({e}); leaving PostgreSQL as it is"
        ));
    }
    if obs.holds_lease() {
        if cfg.failsafe_mode() {
            if let Some(at) = obs.local.failsafe.confirmed_at {
                let mut actions = vec![Action::ExtendLeaseByFailsafe { confirmed_at: at }];
                actions.extend(super::slots::failsafe_leader_advance(obs));
                return Decision::new(
                    actions,
                    "DCS is not accessible; failsafe mode: every member accepts me as the leader, continuing as primary",
                );
            }
            // Failsafe mode as Patroni defines it: a member that does not confirm ends it at once (without
            // failsafe mode hactl rides out its lease instead, since nobody can take the lock before it ends).
            if pg.state() != PgRunState::Unresponsive {
                return Decision::new(
                    // Back as a standby with no upstream (Patroni's `offline` demotion): read-only until a leader is
                    // known again.
                    vec![
                        super::stop_primary(cfg, StopMode::Fast),
                        Action::ForgetLease,
                        Action::StartReplica(None),
                    ],
                    format!("DCS is not accessible ({e}) and not every failsafe member accepts me as the leader: demoting self"),
                );
            }
        }
        let left = obs
            .local
            .lease_deadline
            .map(|d| d.since(obs.now))
            .unwrap_or(0);
        return Decision::none(format!(
            "DCS is not accessible ({e}); still the primary for {left} ms, until my lease could expire"
        ));
    }
    let stop = if pg.state() == PgRunState::Unresponsive {
        Action::Fence
    } else {
        Action::Stop(StopMode::Immediate)
    };
    Decision::new(
        vec![stop, Action::ForgetLease],
        format!("DCS is not accessible ({e}) and my lease has ended: demoting so that no other primary can coexist"),
    )
}
