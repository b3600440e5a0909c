//! Rejoining the leader: may this node's data simply stream from the leader, or did its timeline diverge?
//!
//! A node diverged when it wrote WAL the leader never had: it is on a later timeline than the leader, or on an
//! earlier one but past the point where that timeline ended in the leader's history. Such a node must be rewound
//! (or re-cloned) before it can follow, or PostgreSQL refuses to stream. When the history does not say where our
//! timeline ended, we cannot prove the data is a prefix of the leader's, so we rewind: a needless pg_rewind costs
//! seconds, a wrong "no" costs a replica that never catches up.

use crate::model::{Cluster, Member};
use crate::pg::{format_lsn, Lineage, PgObservation};

/// Whether this node's data can stream from the leader as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejoin {
    /// The local data is a prefix of the leader's: start or keep streaming.
    Follow,
    /// The local data diverged: rewind (or reinitialize) first. The text says why.
    Diverged(String),
}

/// What a node rejoins: the timeline it is on and where its earlier timelines ended. For a member of this cluster
/// that is the leader ([`LeaderHistory`]: its member key and the `history` key); for a standby cluster's leader,
/// the source in the other cluster as it answered ([`Lineage`]).
pub trait Upline {
    /// The timeline the node to follow is on.
    fn timeline(&self) -> u64;
    /// Where `timeline` ended in its history, if it says.
    fn end_of(&self, timeline: u64) -> Option<u64>;
    /// Whose history this is, for the reason text ("the leader's").
    fn whose(&self) -> &'static str;
}

/// The leader of this cluster: its timeline is the later of its member key's and the `history` key's.
pub struct LeaderHistory<'a> {
    /// The cluster snapshot (its `history` key).
    pub cluster: &'a Cluster,
    /// The leader's member key.
    pub leader: &'a Member,
}

impl Upline for LeaderHistory<'_> {
    fn timeline(&self) -> u64 {
        self.leader.timeline().max(self.cluster.timeline())
    }
    fn end_of(&self, timeline: u64) -> Option<u64> {
        self.cluster.timeline_end_lsn(timeline)
    }
    fn whose(&self) -> &'static str {
        "the leader's"
    }
}

impl Upline for Lineage {
    fn timeline(&self) -> u64 {
        self.timeline
    }
    fn end_of(&self, timeline: u64) -> Option<u64> {
        crate::pg::timeline_end(&self.switches, timeline)
    }
    fn whose(&self) -> &'static str {
        "the source's"
    }
}

/// Whether the local data, at `pg`'s timeline and WAL position, can stream from `up`; an unknown local timeline
/// (0) gives [`Rejoin::Follow`].
pub fn check(pg: &PgObservation, up: &impl Upline) -> Rejoin {
    if let Some(verdict) = by_timeline(pg, up) {
        return verdict;
    }
    let mine = pg.timeline;
    match up.end_of(mine) {
        Some(end) if pg.lsn <= end => Rejoin::Follow,
        Some(end) => Rejoin::Diverged(format!(
            "local WAL reaches {} past the end of timeline {mine} ({}) in {} history",
            format_lsn(pg.lsn),
            format_lsn(end),
            up.whose()
        )),
        None => Rejoin::Diverged(format!(
            "{} history does not say where timeline {mine} ended",
            up.whose()
        )),
    }
}

/// Whether a **running** standby's data can stream from `up`: the same rule as [`check`], judged by what is sure
/// while PostgreSQL runs. A standby that streams is on the leader's history (PostgreSQL refuses to stream a
/// timeline that forked off before its recovery point), so only a standby that does not stream is suspected; its
/// *replayed* position is compared with where its timeline ended, as Patroni's `Rewind` does, because a healthy
/// standby may have received the next timeline's WAL before its reported timeline moved on. When the history does
/// not say where our timeline ended, a running standby is left alone: stopping it on a guess costs a restart each
/// loop, and a standby that cannot stream is still a readable copy.
///
/// Without this a standby that received WAL the new leader never had (an asynchronous standby ahead of the one
/// promoted) waited forever, "following" a leader it could never stream from.
pub fn check_running(pg: &PgObservation, up: &impl Upline) -> Rejoin {
    if let Some(verdict) = by_timeline(pg, up) {
        return verdict;
    }
    if pg.streaming {
        return Rejoin::Follow;
    }
    let mine = pg.timeline;
    let replayed = pg.replay_lsn.unwrap_or(pg.lsn);
    match up.end_of(mine) {
        Some(end) if replayed > end => Rejoin::Diverged(format!(
            "local WAL replayed to {} past the end of timeline {mine} ({}) in {} history, and \
             PostgreSQL cannot stream from it",
            format_lsn(replayed),
            format_lsn(end),
            up.whose()
        )),
        _ => Rejoin::Follow,
    }
}

/// The verdict of the timelines alone, shared by [`check`] and [`check_running`]: an unknown local timeline (0) or
/// the one followed follows, a later one diverged; `None` when ours is older and the position must decide.
fn by_timeline(pg: &PgObservation, up: &impl Upline) -> Option<Rejoin> {
    let mine = pg.timeline;
    let theirs = up.timeline();
    if mine == 0 || mine == theirs {
        Some(Rejoin::Follow)
    } else if mine > theirs {
        Some(Rejoin::Diverged(format!(
            "local timeline {mine} is ahead of {} {theirs}",
            up.whose()
        )))
    } else {
        None
    }
}

/// What a diverged node does, by Patroni's rules: `pg_rewind` when `use_pg_rewind` is on and the last rewind did
/// not fail; a wipe and a new clone only where a `remove_data_directory_on_*` setting allows it; otherwise it keeps
/// its data (the operator's to inspect or reinitialize) and runs read-only, not streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivergedPlan {
    /// Rewind from the leader.
    Rewind,
    /// Wipe the data directory and clone again; the text names the setting that allows it.
    Reinitialize(&'static str),
    /// Keep the data; the text says why nothing more is done.
    Keep(&'static str),
}

/// The plan for a node whose data diverged from the leader's (see [`DivergedPlan`]).
pub fn diverged_plan(
    local: &crate::decision::LocalState,
    cfg: &crate::model::GlobalConfig,
) -> DivergedPlan {
    let on_rewind_failure =
        local.remove_data.on_rewind_failure || cfg.remove_data_directory_on_rewind_failure();
    let on_diverged = local.remove_data.on_diverged_timelines
        || cfg.remove_data_directory_on_diverged_timelines();
    match (local.use_pg_rewind(cfg), local.rewind_failed) {
        (true, false) => DivergedPlan::Rewind,
        (true, true) if on_rewind_failure => {
            DivergedPlan::Reinitialize("pg_rewind failed and remove_data_directory_on_rewind_failure is set")
        }
        (true, true) => DivergedPlan::Keep(
            "pg_rewind failed and remove_data_directory_on_rewind_failure is not set: the data directory is kept \
             (reinitialize the node by hand: hactl reinit)",
        ),
        (false, _) if on_diverged => DivergedPlan::Reinitialize(
            "use_pg_rewind is off and remove_data_directory_on_diverged_timelines is set",
        ),
        (false, _) => DivergedPlan::Keep(
            "use_pg_rewind is off and remove_data_directory_on_diverged_timelines is not set: the data directory is \
             kept (reinitialize the node by hand: hactl reinit)",
        ),
    }
}
