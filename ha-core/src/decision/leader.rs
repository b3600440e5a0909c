//! This node holds the leader lock: renew it, start or promote PostgreSQL, hand over for a switchover, and publish
//! what changed (last position, system identifier, bootstrap config, timeline history, failsafe member list).

use std::collections::BTreeMap;

use super::follower;
use super::rejoin::{self, Rejoin};
use super::switchover::{self, LeaderPlan};
use super::{sysid_valid, Action, Decision, Observation};
use crate::model::{Cluster, GlobalConfig, HistoryEntry};
use crate::pg::PgRunState;

pub(super) fn as_leader(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Decision {
    let me = &obs.me.name;
    let pg = obs.pg;
    let mut actions = vec![Action::RenewLock];
    let source = cfg.standby_cluster().map(|s| s.upstream());
    match (pg.state(), &source) {
        (PgRunState::Stopped | PgRunState::Crashed, Some(src)) => {
            // Rewound first when its data went past the source's fork point (the source failed over and lost what
            // this site had already replayed); the driver asked the source for its lineage.
            if let Some(verdict) = pg.source_lineage.as_ref().map(|l| rejoin::check(pg, l)) {
                if verdict != Rejoin::Follow {
                    return follower::start_to_follow(
                        obs,
                        cfg,
                        verdict,
                        src,
                        src.clone(),
                        "the source cluster",
                        actions,
                    );
                }
            }
            actions.push(Action::StartReplica(Some(src.clone())));
            return Decision::new(
                actions,
                format!("starting PostgreSQL as the standby leader: I ({me}) hold the leader lock of a standby cluster"),
            );
        }
        (PgRunState::Stopped | PgRunState::Crashed | PgRunState::Starting, None) => {
            return super::primary_down::primary_down(obs, cluster, cfg);
        }
        (PgRunState::Starting, Some(_)) => {
            return Decision::new(
                actions,
                format!("waiting for PostgreSQL to start; I ({me}) hold the leader lock"),
            );
        }
        _ => {}
    }
    let mut role = "the leader";
    match &source {
        Some(src) if !pg.in_recovery => {
            // `standby_cluster` added to a primary cluster (Patroni's demote-cluster): it becomes a standby of the
            // source, its lock kept.
            actions.extend([
                Action::Stop(crate::pg::StopMode::Fast),
                Action::StartReplica(Some(src.clone())),
            ]);
            return Decision::new(
                actions,
                format!(
                    "demoting {me} to the standby leader: the configuration names a source cluster"
                ),
            )
            .then_rerun();
        }
        Some(src) => {
            role = "the standby leader";
            if let Some(Rejoin::Diverged(why)) = pg
                .source_lineage
                .as_ref()
                .map(|l| rejoin::check_running(pg, l))
            {
                return follower::stop_to_rejoin(obs, cfg, &why, "the source cluster", actions);
            }
            if pg.upstream.as_deref() != Some(src.name.as_str()) {
                actions.push(Action::Follow(src.clone()));
            }
        }
        None => {}
    }
    if pg.in_recovery && source.is_none() {
        actions.extend(super::sync::prepromote(obs, cluster, cfg));
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
                let note = leader_duties(obs, cluster, cfg, &mut actions);
                actions.extend(more);
                return with_note(Decision::new(actions, reason), note);
            }
            LeaderPlan::Wait(reason) => {
                let note = leader_duties(obs, cluster, cfg, &mut actions);
                return with_note(
                    Decision::new(
                        actions,
                        format!("no action. I am ({me}), {role} with the lock; {reason}"),
                    ),
                    note,
                );
            }
        }
    }
    let note = leader_duties(obs, cluster, cfg, &mut actions);
    with_note(
        Decision::new(
            actions,
            format!("no action. I am ({me}), {role} with the lock"),
        ),
        note,
    )
}

/// What a healthy primary publishes each loop, only when it changed (paused too: it is publishing, not acting),
/// and its synchronous replication step; a line for the reason when that step did something.
pub(super) fn leader_duties(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    actions: &mut Vec<Action>,
) -> Option<super::sync::Note> {
    let pg = obs.pg;
    if let Some(status) = super::slots::status_action(obs, cluster, cfg) {
        actions.push(status);
    }
    match cluster.initialize.as_deref() {
        Some(s) if sysid_valid(s) => {}
        _ if pg.system_id.as_deref().map_or(false, sysid_valid) => {
            actions.push(Action::WriteInitialize)
        }
        _ => {}
    }
    // Only an absent key: one an operator wrote badly stays for them to repair (#11 hole 6).
    if cluster.config.is_none() && cluster.config_unparsable.is_none() {
        actions.push(Action::WriteBootstrapConfig);
    }
    // Timeline history: the leader's own lineage. Entries the key already has (same timeline, same position) keep
    // their reason and time. A key that disagrees is replaced, not appended to: two nodes promoted from one timeline
    // both take the next number, and a key written by the other branch's leader would make each replica judge its
    // rejoin against a history that is not the leader's (found by the simulator: a standby of the other branch
    // "followed" forever, its timeline number equal to the key's).
    let known: &[HistoryEntry] = cluster.history.as_ref().map_or(&[], |h| h.value.as_slice());
    let same = |e: &HistoryEntry, sw: &crate::pg::TimelineSwitch| {
        e.timeline() == Some(sw.timeline) && e.lsn() == Some(sw.lsn)
    };
    // `max_timelines_history` keeps only the latest switches, as Patroni trims the key.
    let keep = match cfg.max_timelines_history() {
        0 => &pg.history[..],
        n => &pg.history[pg.history.len().saturating_sub(n)..],
    };
    let agrees = known.len() == keep.len() && known.iter().zip(keep).all(|(e, sw)| same(e, sw))
        || (crate::mutants::active(crate::mutants::PlantedBug::AppendOnlyHistory)
            && known.len() >= keep.len());
    // A history file from a later timeline than the server's (a standby may have fetched one from a diverged
    // upstream) is not this server's lineage: nothing is written from it.
    let own_lineage = pg.history.iter().all(|sw| sw.timeline < pg.timeline);
    if !pg.history.is_empty() && own_lineage && !agrees {
        let history: Vec<HistoryEntry> = keep
            .iter()
            .map(|sw| {
                known
                    .iter()
                    .find(|e| same(e, sw))
                    .cloned()
                    .unwrap_or_else(|| {
                        HistoryEntry::new(
                            sw.timeline,
                            sw.lsn,
                            "no recovery target specified",
                            &iso(obs.unix_ms),
                            &obs.me.name,
                        )
                    })
            })
            .collect();
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
    super::sync::sync_duties(obs, cluster, cfg, actions)
}

/// `d` with the synchronous replication step's line after its reason, if there is one.
pub(super) fn with_note(mut d: Decision, note: Option<super::sync::Note>) -> Decision {
    if let Some(n) = note {
        d.reason = format!("{}; {}", d.reason, n.text);
        d.warning |= n.warning;
        d.rerun_now |= n.rerun;
    }
    d
}

fn iso(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
        .unwrap_or_default()
}
