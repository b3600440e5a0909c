//! Maintenance mode (`pause` in the config): no automatic action. The leader only keeps its lock, and a running
//! primary without a leader takes the free lock, as Patroni does.

use super::{Action, Decision, Observation};
use crate::model::Cluster;

pub(super) fn paused(obs: &Observation, cluster: &Cluster, i_am_leader: bool) -> Decision {
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
