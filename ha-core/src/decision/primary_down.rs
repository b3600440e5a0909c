//! The leader's PostgreSQL is down (stopped, crashed, or still starting): start it again, or hand the lock over once
//! `primary_start_timeout` has run out, as Patroni does.
//!
//! Patroni's rule: the leader keeps its lock while it restarts a crashed primary (crash recovery loses nothing a
//! replica would not also lack); after `primary_start_timeout` (default 300 s) of starting it stops PostgreSQL and
//! releases the lock, but only when a replica can take over ("failover is possible"), since giving the lock up with
//! nobody to take it only lengthens the outage. With 0 it fails over at once after a crash.
//!
//! Where hactl does better: Patroni counts the timeout only while PostgreSQL is *starting*, so a primary whose start
//! fails at once (a broken configuration, a full disk) is restarted forever while it holds the lock. hactl counts
//! from the moment the leader's PostgreSQL was first seen down ([`LocalState::primary_down_since`]), so a start
//! that keeps failing hands over after the same timeout.
//!
//! [`LocalState::primary_down_since`]: super::LocalState::primary_down_since

use super::{Action, Decision, Observation};
use crate::model::{Cluster, GlobalConfig};
use crate::pg::{PgRunState, StopMode};

/// The first replica that could take over from this leader (Patroni's `is_failover_possible`), by the switchover
/// rule: not `nofailover`, a synchronous standby in synchronous mode, running, within `maximum_lag_on_failover` of
/// the last position the leader published.
pub fn takeover_candidate(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> Option<String> {
    let leader_lsn = cluster.last_leader_lsn().unwrap_or(obs.pg.lsn);
    cluster
        .members
        .iter()
        .filter(|m| m.name != obs.me.name)
        .find(|m| super::switchover::viable_candidate(m, leader_lsn, cluster, cfg).is_ok())
        .map(|m| m.name.clone())
}

/// The leader of a primary cluster whose PostgreSQL is not running (state `Stopped`, `Crashed` or `Starting`).
pub(super) fn primary_down(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Decision {
    let me = &obs.me.name;
    let starting = obs.pg.state() == PgRunState::Starting;
    let timeout_ms = cfg.primary_start_timeout_ms();
    let down_ms = obs
        .local
        .primary_down_since
        .map_or(0, |since| obs.now.since(since));
    let mut actions = vec![Action::RenewLock];
    if down_ms >= timeout_ms {
        if let Some(candidate) = takeover_candidate(obs, cluster, cfg) {
            actions = vec![
                Action::Stop(StopMode::Immediate),
                Action::ForgetLease,
                Action::ReleaseLock,
            ];
            let why = if timeout_ms == 0 {
                "primary_start_timeout is 0".to_string()
            } else {
                format!(
                    "it has been down {:.0} s, over primary_start_timeout ({:.0} s)",
                    down_ms as f64 / 1000.0,
                    timeout_ms as f64 / 1000.0
                )
            };
            return Decision::warning(
                actions,
                format!(
                    "stopping PostgreSQL on {me} and releasing the leader lock: {why}; {candidate} can take over"
                ),
            )
            .then_rerun();
        }
        if starting {
            return Decision::new(
                actions,
                "primary start has timed out, but continuing to wait because failover is not possible".to_string(),
            );
        }
        actions.push(Action::StartPrimary);
        return Decision::new(
            actions,
            format!(
                "starting PostgreSQL as primary: I ({me}) hold the leader lock; primary_start_timeout has run out, \
                 but failover is not possible"
            ),
        );
    }
    let left_s = (timeout_ms - down_ms) as f64 / 1000.0;
    if starting {
        return Decision::new(
            actions,
            format!("PostgreSQL is still starting up, {left_s:.0} seconds until timeout; I ({me}) hold the leader lock"),
        );
    }
    actions.push(Action::StartPrimary);
    Decision::new(
        actions,
        format!("starting PostgreSQL as primary: I ({me}) hold the leader lock"),
    )
}
