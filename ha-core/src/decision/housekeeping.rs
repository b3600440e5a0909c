//! Work every healthy loop adds after the role's own actions: a config version this node has not applied yet (before
//! PostgreSQL's first start if one is in the list, so it starts with the cluster-wide parameters), and a restart an
//! operator asked for.

use super::{Action, Decision, Observation};
use crate::model::{Cluster, GlobalConfig};

/// The config version this node has not applied yet, as the action that applies it.
fn config_due(obs: &Observation, cluster: &Cluster, cfg: &GlobalConfig) -> Option<Action> {
    cluster
        .config
        .as_ref()
        .filter(|c| obs.local.applied_config_version != Some(c.version))
        .map(|c| Action::ApplyConfig {
            version: c.version,
            parameters: cfg.parameters(),
            recovery_conf: cfg.recovery_conf(),
        })
}

/// About to clone or start PostgreSQL: the cluster-wide parameters go into its configuration first, so a new
/// replica's first start already runs with them (not with defaults, reloaded a loop later). True if it did.
pub(super) fn config_before_first_start(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    d: &mut Decision,
) -> bool {
    let first_start = d.actions.iter().position(|a| {
        matches!(
            a,
            Action::Bootstrap
                | Action::CloneFrom(_)
                | Action::StartReplica(_)
                | Action::StartPrimary
        )
    });
    // Before the first leader wrote `config`, `bootstrap.dcs` is the configuration: a new cluster's first start
    // runs with its parameters (`wal_level`, `max_connections`...), not with defaults until a restart. Version 0
    // is no version the DCS gives, so the `config` key's parameters are applied again once it exists.
    let due = config_due(obs, cluster, cfg).or_else(|| {
        (cluster.config.is_none() && obs.local.applied_config_version.is_none()).then(|| {
            Action::ApplyConfig {
                version: 0,
                parameters: cfg.parameters(),
                recovery_conf: cfg.recovery_conf(),
            }
        })
    });
    match (due, first_start) {
        (Some(apply), Some(at)) => {
            d.actions.insert(at, apply);
            true
        }
        _ => false,
    }
}

/// Work every healthy loop adds after the role's own actions: apply a new config version, serve operator requests.
pub(super) fn housekeeping(
    obs: &Observation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
    d: &mut Decision,
) {
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
