//! Nobody holds the leader lock: keep a failsafe promise to a leader, stay out while fenced recently, start a stopped
//! replica first, then race for the lock if the election (or a switchover request) says this node should win.

use super::switchover::{self, NoLeaderPlan};
use super::{election, Action, Decision, Observation};
use crate::model::{Cluster, GlobalConfig};
use crate::pg::{PgRunState, StopMode};

/// How much longer this node stays out of the leader race after fencing its own hung PostgreSQL, if it does.
fn fenced_recently(obs: &Observation) -> Option<u64> {
    let at = obs.local.fenced_at?;
    let until = at.plus_ms(obs.local.timing.ttl_ms);
    (obs.now < until).then(|| until.since(obs.now))
}

/// Patroni 4.1's `primary_race_backoff`: the leader key vanished, yet this replica still receives WAL, so the
/// primary is alive (its daemon frozen or cut from the DCS, its lease not yet over by its own clock): hold back from
/// the race until the backoff has passed, and for at least one loop after the key vanished. A switchover to a named
/// candidate is not held back.
fn race_backoff(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Option<Decision> {
    let backoff = cfg.primary_race_backoff_ms();
    let prev = obs.local.prev_wal_lsn?;
    if backoff == 0
        || cluster
            .pending_failover()
            .map_or(false, |f| f.value.member.is_some())
    {
        return None;
    }
    let since = obs.local.no_leader_since.unwrap_or(obs.now);
    let left = (since.0 + backoff).saturating_sub(obs.now.0);
    let loop_wait = obs.local.timing.loop_wait_ms;
    let moving = obs.pg.streaming && obs.pg.lsn > prev;
    ((left > 0 && moving) || left > backoff.saturating_sub(loop_wait)).then(|| {
        Decision::none(format!(
            "My ({}) wal position moved since last heart beat loop, {:.0} seconds until leader race",
            obs.me.name,
            left as f64 / 1000.0
        ))
    })
}

pub(super) fn without_leader(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    if let Some((leader, until)) = &obs.local.failsafe.accepted_leader {
        if leader != me && obs.now < *until {
            return Decision::none(format!("failsafe: {leader} asked to stay the leader while the DCS is unreachable to it; not racing"));
        }
    }
    if let Some(fs) = cluster
        .failsafe
        .as_ref()
        .filter(|fs| !fs.is_empty() && cfg.failsafe_mode())
    {
        if !fs.contains_key(me.as_str()) {
            return Decision::none(format!(
                "not racing for the lock: {me} is not in the failsafe member list"
            ));
        }
    }
    if pg.is_primary() && obs.holds_lease() {
        // Our lease outlived the leader key (failsafe mode carried us through a DCS outage): take the key back.
        return Decision::new(
            vec![Action::AcquireLock],
            format!("re-acquiring the leader lock that {me} still holds a lease for"),
        );
    }
    match pg.state() {
        PgRunState::Stopped | PgRunState::Crashed => {
            if let Some(left) = fenced_recently(obs) {
                // Started now, it would show as a running member as far along as any other and might win the race
                // it just left; kept stopped, the others race without it and it rejoins the winner.
                return Decision::none(format!(
                    "no leader: {me} fenced its hung PostgreSQL; leaving the race to the others for {left} ms more"
                ));
            }
            return Decision::new(
                vec![Action::StartReplica(None)],
                format!("no leader: starting {me} as a secondary before the leader race"),
            );
        }
        PgRunState::Starting => {
            return Decision::none(format!("waiting for PostgreSQL on {me} to start"))
        }
        _ => {}
    }
    if let Some(d) = race_backoff(obs, cluster, cfg) {
        return d;
    }
    if cluster.failsafe.as_ref().map_or(false, |fs| !fs.is_empty())
        && cfg.failsafe_mode()
        && !obs.local.failsafe_promises_kept
    {
        // A promise made before a restart is forgotten with the process: keep it for one ttl anyway.
        if obs.now.since(obs.local.started_at) < obs.local.timing.ttl_ms {
            return Decision::none(
                "not racing for the lock yet: failsafe mode, and this daemon started less than ttl ago (it may have promised a leader)",
            );
        }
    }
    // The live answers, with this node's own position beside the others'.
    let live = obs.peers.map(|p| {
        let mut all = p.clone();
        all.insert(
            me.to_string(),
            crate::driver::PeerStatus {
                lsn: pg.lsn,
                in_recovery: pg.in_recovery,
            },
        );
        all
    });
    let plan = switchover::no_leader_plan(me, cluster, cfg, live.as_ref());
    if !matches!(plan, NoLeaderPlan::StandAside(_)) {
        if let Some(left) = super::quorum::votes_settling(obs, cluster, cfg) {
            return Decision::none(format!(
                "quorum commit: waiting {left} ms for the voters to publish their positions before the leader race"
            ));
        }
    }
    let race = match &plan {
        NoLeaderPlan::StandAside(why) => Err(why.clone()),
        // A named candidate need not be the furthest along; in quorum mode it still needs a quorum's votes.
        NoLeaderPlan::CandidateRace => election::eligible(me, &obs.me.tags, pg, cluster, cfg)
            .and_then(|()| super::quorum::votes_if_quorum(obs, cluster, cfg)),
        _ => election::healthiest(me, &obs.me.tags, pg, cluster, cfg)
            .and_then(|()| super::quorum::votes_if_quorum(obs, cluster, cfg)),
    };
    match race {
        Ok(()) => {
            let clear = cluster
                .pending_failover()
                .map(|f| Action::ClearFailover { version: f.version });
            if let Some(source) = cfg.standby_cluster().map(|s| s.upstream()) {
                // A standby cluster's new leader is never promoted: it follows the source instead.
                let mut actions = vec![Action::AcquireLock];
                actions.extend(clear);
                if pg.in_recovery {
                    if pg.upstream.as_deref() != Some(source.name.as_str()) {
                        actions.push(Action::Follow(source));
                    }
                } else {
                    actions.extend([
                        Action::Stop(StopMode::Fast),
                        Action::StartReplica(Some(source)),
                    ]);
                }
                Decision::new(
                    actions,
                    format!("acquired session lock as the standby leader ({me}): following the source cluster"),
                )
            } else if pg.in_recovery {
                let mut actions = vec![Action::AcquireLock];
                actions.extend(clear);
                actions.extend(super::sync::prepromote(obs, cluster, cfg));
                actions.push(Action::Promote);
                Decision::new(
                    actions,
                    format!("promoted self ({me}) to leader by acquiring session lock"),
                )
            } else {
                let mut actions = vec![Action::AcquireLock];
                actions.extend(clear);
                Decision::new(
                    actions,
                    format!("acquired session lock as a leader ({me}, already primary)"),
                )
            }
        }
        Err(why) => {
            if pg.is_primary() {
                Decision::new(
                    vec![
                        super::stop_primary(cfg, StopMode::Fast),
                        Action::ForgetLease,
                    ],
                    format!("demoting self: no leader and {why}"),
                )
                .then_rerun()
            } else {
                Decision::none(why)
            }
        }
    }
}
