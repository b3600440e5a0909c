//! The leader race: is this node the healthiest eligible member?
//!
//! Safety does not rest on this rule (only the lock holder may promote, and the DCS lets exactly one node take the
//! lock); it decides *which* node should win so that the least data is lost: never a member that may not fail over,
//! never one lagging past `maximum_lag_on_failover` behind the last primary position, never one behind the cluster's
//! timeline when `check_timeline` is on, and among the rest the most advanced, then the highest `failover_priority`,
//! then the first name (so that two equal nodes do not both try).

use crate::model::{Cluster, GlobalConfig, Role, SyncMode, Tags};
use crate::pg::PgObservation;

/// In synchronous mode only a node the `sync` key names (or the leader it records) may be elected, once the leader
/// has set synchronous replication up: every acknowledged commit is on one of them. Before that (an empty key)
/// any node may, as in Patroni.
///
/// In quorum mode any node may race: it needs the votes of [`crate::decision::quorum::votes`] instead.
pub fn sync_eligible(name: &str, cluster: &Cluster, cfg: &GlobalConfig) -> bool {
    if cfg.sync_mode() != SyncMode::On {
        return true;
    }
    match cluster
        .sync
        .as_ref()
        .map(|s| &s.value)
        .filter(|s| !s.is_empty())
    {
        Some(sync) => sync.matches(name, true),
        None => true,
    }
}

/// `Ok(())` when this node should race for the lock, else why not.
/// `Ok(())` when this node may lead at all: allowed to fail over, running, not lagging, on the cluster's timeline.
pub fn eligible(
    me: &str,
    tags: &Tags,
    pg: &PgObservation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> Result<(), String> {
    if tags.nofailover() {
        return Err(format!(
            "not racing for the lock: {me} is tagged nofailover"
        ));
    }
    if !pg.is_running() {
        return Err(format!(
            "not racing for the lock: PostgreSQL on {me} is not running"
        ));
    }
    if let Some(last) = cluster.last_leader_lsn() {
        let lag = last.saturating_sub(pg.lsn);
        if lag > cfg.maximum_lag_on_failover()
            && !crate::mutants::active(crate::mutants::PlantedBug::SkipLagCheck)
        {
            return Err(format!(
                "not racing for the lock: {me} lags {lag} bytes behind the last primary position, over maximum_lag_on_failover ({})",
                cfg.maximum_lag_on_failover()
            ));
        }
    }
    if !sync_eligible(me, cluster, cfg) {
        return Err(format!(
            "not racing for the lock: synchronous mode, and {me} is not a synchronous standby ({})",
            cluster
                .sync
                .as_ref()
                .and_then(|s| s.value.sync_standby.clone())
                .unwrap_or_default()
        ));
    }
    if cfg.check_timeline() && pg.timeline < cluster.timeline() {
        return Err(format!(
            "not racing for the lock: {me} is on timeline {} behind the cluster's {}",
            pg.timeline,
            cluster.timeline()
        ));
    }
    Ok(())
}

/// `Ok(())` when this node is [`eligible`] and no other running eligible member is ahead of it.
pub fn healthiest(
    me: &str,
    tags: &Tags,
    pg: &PgObservation,
    cluster: &Cluster,
    cfg: &GlobalConfig,
) -> Result<(), String> {
    eligible(me, tags, pg, cluster, cfg)?;
    let my_priority = tags.failover_priority();
    let quorum = cfg.sync_mode() == SyncMode::Quorum;
    let sync_leader = cluster
        .sync
        .as_ref()
        .filter(|s| !s.value.is_empty())
        .and_then(|s| s.value.leader.as_deref());
    for m in &cluster.members {
        if m.name == me || !m.is_running() {
            continue;
        }
        // In failsafe mode only the members of the failsafe key may race: the others do not count.
        if let Some(fs) = cluster
            .failsafe
            .as_ref()
            .filter(|fs| !fs.is_empty() && cfg.failsafe_mode())
        {
            if !fs.contains_key(&m.name) {
                continue;
            }
        }
        let their_tags = m.tags();
        if m.role() == Some(Role::Primary) {
            return Err(format!(
                "not racing for the lock: {} still reports itself primary",
                m.name
            ));
        }
        if their_tags.nofailover() || !sync_eligible(&m.name, cluster, cfg) {
            continue;
        }
        if m.lsn() > pg.lsn {
            // In quorum mode the old leader may still be reachable and ahead (its last commits were never
            // acknowledged by a quorum): it does not disqualify us, as in Patroni.
            if quorum && sync_leader == Some(m.name.as_str()) {
                continue;
            }
            return Err(format!(
                "not racing for the lock: {} is ahead ({} > {})",
                m.name,
                m.lsn(),
                pg.lsn
            ));
        }
        if m.lsn() == pg.lsn {
            let theirs = their_tags.failover_priority();
            if theirs > my_priority || (theirs == my_priority && m.name.as_str() < me) {
                return Err(format!(
                    "not racing for the lock: {} is as far along and goes first",
                    m.name
                ));
            }
        }
    }
    Ok(())
}
