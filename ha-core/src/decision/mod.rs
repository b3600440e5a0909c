//! The HA decision: a pure function from one [`Observation`] to a [`Decision`].
//!
//! No I/O, no clock, no randomness: the same observation always gives the same actions, which is what makes every
//! simulator failure replayable. The driver ([`crate::driver`]) observes, calls [`decide`], and executes.
//!
//! The safety rule everything else serves: **PostgreSQL accepts writes only on a node whose lease is valid**.
//! A node promotes only in the same action list that first takes or renews the lock (the driver stops at a failed
//! lock action); a lock holder that cannot renew stops acting as primary by its own lease deadline, counted from the
//! moment it *sent* the last successful renewal; a hung primary is fenced before its lock is released.

mod action;
pub mod election;
mod observation;
pub mod rejoin;
pub mod switchover;

pub use action::{Action, Decision};
pub use observation::{FailsafeInput, LocalState, NodeIdentity, Observation, PlantedBug, Requests};

use std::collections::BTreeMap;

use crate::dcs::DcsError;
use crate::model::{Cluster, GlobalConfig, HistoryEntry, Member};
use crate::pg::{PgRunState, StopMode, Upstream};

use rejoin::Rejoin;
use switchover::{LeaderPlan, NoLeaderPlan};

/// A system identifier Patroni would accept (`sysid_valid`): at least 10 digits.
pub fn sysid_valid(s: &str) -> bool {
    s.len() >= 10 && s.bytes().all(|b| b.is_ascii_digit())
}

fn upstream_of(m: &Member) -> Option<Upstream> {
    m.data.conn_url.as_ref().map(|u| Upstream {
        name: m.name.clone(),
        conn_url: u.clone(),
    })
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
        return paused(obs, cluster, i_am_leader);
    }

    if pg.state() == PgRunState::Unresponsive {
        return unresponsive(obs, i_am_leader);
    }

    if pg.state() == PgRunState::Uninitialized {
        let mut d = uninitialized(obs, cluster, i_am_leader);
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
    decision
}

/// The config version this node has not applied yet, as the action that applies it.
fn config_due(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Option<Action> {
    cluster
        .config
        .as_ref()
        .filter(|c| obs.local.applied_config_version != Some(c.version))
        .map(|c| Action::ApplyConfig {
            version: c.version,
            parameters: cfg.parameters(),
        })
}

/// About to clone or start PostgreSQL: the cluster-wide parameters go into its configuration first, so a new
/// replica's first start already runs with them (not with defaults, reloaded a loop later). True if it did.
fn config_before_first_start(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    d: &mut Decision,
) -> bool {
    let first_start = d.actions.iter().position(|a| {
        matches!(
            a,
            Action::CloneFrom(_) | Action::StartReplica(_) | Action::StartPrimary
        )
    });
    match (config_due(obs, cluster, cfg), first_start) {
        (Some(apply), Some(at)) => {
            d.actions.insert(at, apply);
            true
        }
        _ => false,
    }
}

/// Work every healthy loop adds after the role's own actions: apply a new config version, serve operator requests.
fn housekeeping(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig, d: &mut Decision) {
    let pg = obs.pg;
    if config_before_first_start(obs, cluster, cfg, d) {
        return;
    }
    // A failed action stops the list, so these never run after a lost race.
    if pg.is_running() {
        if let Some(apply) = config_due(obs, cluster, cfg) {
            d.actions.push(apply);
        }
        if obs.local.requests.restart && !d.actions.iter().any(Action::touches_postgres) {
            d.actions.push(Action::Restart);
            d.reason.push_str("; restarting PostgreSQL as requested");
        }
    }
}

fn dcs_unreachable(obs: &Observation, e: &DcsError) -> Decision {
    let pg = obs.pg;
    let cfg = &obs.local.last_config;
    let acting_primary =
        pg.is_primary() || (pg.is_alive() && !pg.in_recovery && obs.local.lease_deadline.is_some());
    if !acting_primary {
        if obs.planted_bug == Some(PlantedBug::PromoteWithoutLock) && pg.is_replica() {
            return Decision::new(
                vec![Action::Promote],
                "planted bug: the DCS is gone, promoting without the lock",
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
                return Decision::new(
                    vec![Action::ExtendLeaseByFailsafe { confirmed_at: at }],
                    "DCS is not accessible; failsafe mode: every member accepts me as the leader, continuing as primary",
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

fn paused(obs: &Observation, cluster: &Cluster, i_am_leader: bool) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    if i_am_leader {
        let mut actions = vec![Action::RenewLock];
        if pg.is_primary() && cluster.last_leader_lsn() != Some(pg.lsn) {
            actions.push(Action::WriteStatus { optime: pg.lsn });
        }
        return Decision::new(
            actions,
            format!("PAUSE: no action. I am ({me}), the leader with the lock"),
        );
    }
    if cluster.leader.is_none() && pg.is_primary() {
        return Decision::new(
            vec![Action::AcquireLock],
            format!("PAUSE: acquired session lock as a leader ({me})"),
        );
    }
    Decision::none(format!("PAUSE: no action. I am ({me}), not the leader"))
}

fn unresponsive(obs: &Observation, i_am_leader: bool) -> Decision {
    let timing = obs.local.timing;
    let since = obs.local.unresponsive_since.unwrap_or(obs.now);
    let hung_ms = obs.now.since(since);
    let holder = i_am_leader || obs.local.lease_deadline.is_some();
    if hung_ms >= timing.retry_timeout_ms {
        if holder {
            return Decision::new(
                vec![Action::Fence, Action::ForgetLease, Action::ReleaseLock],
                format!(
                    "PostgreSQL has not answered for {hung_ms} ms (retry_timeout {} ms): fenced it and released the leader lock",
                    timing.retry_timeout_ms
                ),
            )
            .then_rerun();
        }
        return Decision::new(
            vec![Action::Fence],
            format!("PostgreSQL has not answered for {hung_ms} ms: fenced it, it will be started again as a replica"),
        );
    }
    if i_am_leader {
        return Decision::new(
            vec![Action::RenewLock],
            format!("PostgreSQL has not answered for {hung_ms} ms; keeping the lock until retry_timeout"),
        );
    }
    Decision::none(format!(
        "PostgreSQL has not answered for {hung_ms} ms; waiting"
    ))
}

/// How much longer this node stays out of the leader race after fencing its own hung PostgreSQL, if it does.
fn fenced_recently(obs: &Observation) -> Option<u64> {
    let at = obs.local.fenced_at?;
    let until = at.plus_ms(obs.local.timing.ttl_ms);
    (obs.now < until).then(|| until.since(obs.now))
}

fn uninitialized(obs: &Observation, cluster: &Cluster, i_am_leader: bool) -> Decision {
    let me = &obs.me.name;
    if i_am_leader {
        return Decision::new(
            vec![Action::ForgetLease, Action::ReleaseLock],
            format!("the data directory of {me} is empty but it holds the lock: released it"),
        );
    }
    if cluster.initialize.is_none() && cluster.leader.is_none() {
        if obs.me.tags.nofailover() {
            return Decision::none(
                "waiting for a node that may lead to bootstrap the cluster (nofailover)",
            );
        }
        return Decision::new(
            vec![
                Action::RaceInitialize,
                Action::AcquireLock,
                Action::Bootstrap,
                Action::WriteInitialize,
                Action::WriteBootstrapConfig,
            ],
            format!("bootstrapping a new cluster from {me}"),
        );
    }
    // Prefer a running member tagged clonefrom, then the leader.
    let source = cluster
        .members
        .iter()
        .filter(|m| m.name != *me && m.is_running() && m.tags().clonefrom())
        .chain(cluster.leader_member().filter(|m| m.is_running()))
        .find_map(upstream_of);
    match (source, cluster.leader_member().and_then(upstream_of)) {
        (Some(src), leader) => Decision::new(
            vec![
                Action::CloneFrom(src.clone()),
                Action::StartReplica(leader.or(Some(src.clone()))),
            ],
            format!("creating a replica from {}", src.name),
        ),
        (None, _) => Decision::none("waiting for a leader to clone from"),
    }
}

fn as_leader(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    let mut actions = vec![Action::RenewLock];
    match pg.state() {
        PgRunState::Stopped | PgRunState::Crashed => {
            actions.push(Action::StartPrimary);
            return Decision::new(
                actions,
                format!("starting PostgreSQL as primary: I ({me}) hold the leader lock"),
            );
        }
        PgRunState::Starting => {
            return Decision::new(
                actions,
                format!("waiting for PostgreSQL to start; I ({me}) hold the leader lock"),
            );
        }
        _ => {}
    }
    if pg.in_recovery {
        actions.push(Action::Promote);
        if let Some(f) = cluster.pending_failover() {
            actions.push(Action::ClearFailover { version: f.version });
        }
        return Decision::new(actions, format!("promoting {me}: it holds the leader lock"));
    }
    if let Some(req) = cluster.pending_failover() {
        match switchover::leader_plan(me, pg, cluster, req, cfg, obs.unix_ms) {
            LeaderPlan::HandOver {
                actions: more,
                reason,
            } => {
                actions.extend(more);
                return Decision::new(actions, reason).then_rerun();
            }
            LeaderPlan::Reject {
                actions: more,
                reason,
            } => {
                leader_duties(obs, cluster, cfg, &mut actions);
                actions.extend(more);
                return Decision::new(actions, reason);
            }
            LeaderPlan::Wait(reason) => {
                leader_duties(obs, cluster, cfg, &mut actions);
                return Decision::new(
                    actions,
                    format!("no action. I am ({me}), the leader with the lock; {reason}"),
                );
            }
        }
    }
    leader_duties(obs, cluster, cfg, &mut actions);
    Decision::new(
        actions,
        format!("no action. I am ({me}), the leader with the lock"),
    )
}

/// What a healthy primary publishes each loop, only when it changed.
fn leader_duties(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    actions: &mut Vec<Action>,
) {
    let pg = obs.pg;
    if cluster.last_leader_lsn() != Some(pg.lsn) {
        actions.push(Action::WriteStatus { optime: pg.lsn });
    }
    match cluster.initialize.as_deref() {
        Some(s) if sysid_valid(s) => {}
        _ if pg.system_id.as_deref().map_or(false, sysid_valid) => {
            actions.push(Action::WriteInitialize)
        }
        _ => {}
    }
    if cluster.config.is_none() {
        actions.push(Action::WriteBootstrapConfig);
    }
    // Timeline history: one entry per switch the server knows and the key does not.
    let known = cluster.history.as_ref().map(|h| h.value.len()).unwrap_or(0);
    if pg.history.len() > known {
        let mut history: Vec<HistoryEntry> = cluster
            .history
            .as_ref()
            .map(|h| h.value.clone())
            .unwrap_or_default();
        for sw in &pg.history[known..] {
            history.push(HistoryEntry::new(
                sw.timeline,
                sw.lsn,
                "no recovery target specified",
                &iso(obs.unix_ms),
                &obs.me.name,
            ));
        }
        actions.push(Action::WriteHistory {
            history,
            version: cluster.history.as_ref().map(|h| h.version),
        });
    }
    if cfg.failsafe_mode() {
        let members: BTreeMap<String, String> = cluster
            .members
            .iter()
            .filter_map(|m| m.data.api_url.clone().map(|u| (m.name.clone(), u)))
            .chain(std::iter::once((
                obs.me.name.clone(),
                obs.me.api_url.clone(),
            )))
            .collect();
        if cluster.failsafe.as_ref() != Some(&members) {
            actions.push(Action::WriteFailsafe(members));
        }
    }
}

fn iso(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
        .unwrap_or_default()
}

fn as_follower(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig, leader: &str) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    if pg.is_primary()
        || (pg.state() == PgRunState::Starting
            && !pg.in_recovery
            && obs.local.lease_deadline.is_some())
    {
        return Decision::new(
            vec![Action::Stop(StopMode::Fast), Action::ForgetLease],
            format!(
                "demoting self because {leader} holds the leader lock and I ({me}) was a primary"
            ),
        )
        .then_rerun();
    }
    let mut forget = Vec::new();
    if obs.local.lease_deadline.is_some() {
        forget.push(Action::ForgetLease);
    }
    let Some(leader_member) = cluster.member(leader) else {
        return Decision::new(
            forget,
            format!("the leader {leader} has no member key yet; waiting"),
        );
    };
    let Some(up) = upstream_of(leader_member) else {
        return Decision::new(
            forget,
            format!("the leader {leader} publishes no conn_url; waiting"),
        );
    };
    // A replicatefrom tag names an intermediate upstream when that member runs.
    let desired = obs
        .me
        .tags
        .replicatefrom
        .as_deref()
        .and_then(|n| cluster.member(n))
        .filter(|m| m.name != *me && m.is_running())
        .and_then(upstream_of)
        .unwrap_or_else(|| up.clone());
    let mut actions = forget;
    if obs.local.requests.reinitialize {
        actions.extend([
            Action::Stop(StopMode::Fast),
            Action::Reinitialize(up.clone()),
            Action::StartReplica(Some(desired)),
        ]);
        return Decision::new(
            actions,
            format!("reinitializing {me} from {leader} as requested"),
        );
    }
    match pg.state() {
        PgRunState::Stopped | PgRunState::Crashed => {
            match rejoin::check(pg, cluster, leader_member) {
                Rejoin::Follow => {
                    actions.push(Action::StartReplica(Some(desired)));
                    Decision::new(actions, format!("starting {me} as a secondary of {leader}"))
                }
                Rejoin::Diverged(why) => {
                    if cfg.use_pg_rewind() {
                        actions.extend([
                            Action::Rewind(up.clone()),
                            Action::StartReplica(Some(desired)),
                        ]);
                        Decision::new(actions, format!("rewinding {me} from {leader}: {why}"))
                    } else {
                        actions.extend([
                            Action::Reinitialize(up.clone()),
                            Action::StartReplica(Some(desired)),
                        ]);
                        Decision::new(
                            actions,
                            format!(
                                "reinitializing {me} from {leader} (use_pg_rewind is off): {why}"
                            ),
                        )
                    }
                }
            }
        }
        PgRunState::Starting => {
            Decision::new(actions, format!("waiting for PostgreSQL on {me} to start"))
        }
        _ => match rejoin::check(pg, cluster, leader_member) {
            Rejoin::Diverged(why) if pg.timeline > 0 && pg.timeline > leader_member.timeline() => {
                actions.push(Action::Stop(StopMode::Fast));
                Decision::new(actions, format!("stopping {me} to rejoin {leader}: {why}"))
                    .then_rerun()
            }
            _ if pg.upstream.as_deref() != Some(desired.name.as_str()) => {
                let name = desired.name.clone();
                actions.push(Action::Follow(desired));
                Decision::new(
                    actions,
                    format!("following new leader {leader} (streaming from {name})"),
                )
            }
            _ => Decision::new(
                actions,
                format!("no action. I am ({me}), a secondary, and following a leader ({leader})"),
            ),
        },
    }
}

fn without_leader(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Decision {
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
    if cluster.failsafe.as_ref().map_or(false, |fs| !fs.is_empty()) && cfg.failsafe_mode() {
        // A promise made before a restart is forgotten with the process: keep it for one ttl anyway.
        if obs.now.since(obs.local.started_at) < obs.local.timing.ttl_ms {
            return Decision::none(
                "not racing for the lock yet: failsafe mode, and this daemon started less than ttl ago (it may have promised a leader)",
            );
        }
    }
    let plan = switchover::no_leader_plan(me, cluster, cfg);
    let race = match &plan {
        NoLeaderPlan::StandAside(why) => Err(why.clone()),
        NoLeaderPlan::CandidateRace => election::eligible(me, &obs.me.tags, pg, cluster, cfg),
        _ => election::healthiest(me, &obs.me.tags, pg, cluster, cfg),
    };
    match race {
        Ok(()) => {
            let clear = cluster
                .pending_failover()
                .map(|f| Action::ClearFailover { version: f.version });
            if pg.in_recovery {
                let mut actions = vec![Action::AcquireLock];
                actions.extend(clear);
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
                    vec![Action::Stop(StopMode::Fast), Action::ForgetLease],
                    format!("demoting self: no leader and {why}"),
                )
                .then_rerun()
            } else {
                Decision::none(why)
            }
        }
    }
}
