//! An empty data directory: bootstrap a new cluster (race for the `initialize` key and the lock), or clone a replica
//! from a running member tagged `clonefrom`, else from the leader.

use super::{sysid_valid, upstream_of, Action, Decision, Observation};
use crate::model::{Cluster, GlobalConfig};

pub(super) fn uninitialized(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    i_am_leader: bool,
) -> Decision {
    let me = &obs.me.name;
    if i_am_leader {
        return Decision::new(
            vec![Action::ForgetLease, Action::ReleaseLock],
            format!("the data directory of {me} is empty but it holds the lock: released it"),
        );
    }
    let bootstrapped = cluster.initialize.as_deref().map_or(false, sysid_valid);
    if let (Some(sc), false, None) = (cfg.standby_cluster(), bootstrapped, &cluster.leader) {
        // A standby cluster is bootstrapped by copying its source: the winner becomes the standby leader (and
        // writes the system identifier once it runs). A copy that failed leaves `initialize` empty and the lock
        // released, so the race is run again.
        if obs.me.tags.nofailover() {
            return Decision::none(
                "waiting for a node that may lead to bootstrap the standby cluster (nofailover)",
            );
        }
        let source = sc.upstream();
        let mut actions = Vec::new();
        if cluster.initialize.is_none() {
            actions.push(Action::RaceInitialize);
        }
        actions.extend([
            Action::AcquireLock,
            Action::CloneFrom(source.clone()),
            Action::StartReplica(Some(source.clone())),
        ]);
        return Decision::new(
            actions,
            format!(
                "bootstrapping a standby cluster from {me}: copying {}",
                source.name
            ),
        );
    }
    if cluster.initialize.is_none() && cluster.leader.is_none() {
        if obs.me.tags.nofailover() {
            return Decision::none(
                "waiting for a node that may lead to bootstrap the cluster (nofailover)",
            );
        }
        // As Patroni: the initialize race makes this node the only bootstrapper; the leader lock is taken once the
        // cluster exists (its server running, `initialize` and `config` written), so a long bootstrap (a restore
        // from backup) never outlives its lease, and a node seen as leader already serves and has a config.
        return Decision::new(
            vec![
                Action::RaceInitialize,
                Action::Bootstrap,
                Action::WriteInitialize,
                Action::WriteBootstrapConfig,
                Action::AcquireLock,
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
        (None, None) if obs.local.replica_without_leader && cluster.initialize.is_some() => Decision::new(
            vec![Action::RestoreReplica, Action::StartReplica(None)],
            format!("no leader to clone from: creating {me} as a replica by a method that needs none"),
        ),
        (None, _) => Decision::none("waiting for a leader to clone from"),
    }
}
