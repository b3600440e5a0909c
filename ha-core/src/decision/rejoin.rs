//! Rejoining the leader: may this node's data simply stream from the leader, or did its timeline diverge?
//!
//! A node diverged when it wrote WAL the leader never had: it is on a later timeline than the leader, or on an
//! earlier one but past the point where that timeline ended in the leader's history. Such a node must be rewound
//! (or re-cloned) before it can follow, or PostgreSQL refuses to stream. When the history does not say where our
//! timeline ended, we cannot prove the data is a prefix of the leader's, so we rewind: a needless pg_rewind costs
//! seconds, a wrong "no" costs a replica that never catches up.

use crate::model::{Cluster, Member};
use crate::pg::PgObservation;

/// Whether this node's data can stream from the leader as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejoin {
    /// The local data is a prefix of the leader's: start or keep streaming.
    Follow,
    /// The local data diverged: rewind (or reinitialize) first. The text says why.
    Diverged(String),
}

/// Whether the local data, at `pg`'s timeline and WAL position, can stream from `leader`. The leader's timeline is
/// the later of its member key's and the cluster history's; an unknown local timeline (0) gives [`Rejoin::Follow`].
pub fn check(pg: &PgObservation, cluster: &Cluster, leader: &Member) -> Rejoin {
    let mine = pg.timeline;
    let theirs = leader.timeline().max(cluster.timeline());
    if mine == 0 {
        return Rejoin::Follow;
    }
    if mine > theirs {
        return Rejoin::Diverged(format!(
            "local timeline {mine} is ahead of the leader's {theirs}"
        ));
    }
    if mine == theirs {
        return Rejoin::Follow;
    }
    match cluster.timeline_end_lsn(mine) {
        Some(end) if pg.lsn <= end => Rejoin::Follow,
        Some(end) => Rejoin::Diverged(format!(
            "local WAL reaches {} past the end of timeline {mine} ({end}) in the leader's history",
            pg.lsn
        )),
        None => Rejoin::Diverged(format!(
            "the leader's history does not say where timeline {mine} ended"
        )),
    }
}
