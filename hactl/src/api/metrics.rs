//! `/metrics` in Prometheus' text format with Patroni's metric names, HELP texts and labels, so the Grafana Patroni
//! dashboard and existing alert rules work unchanged. The metric set is fixed, so it is written by hand: exact and
//! without a registry to keep in sync.

use std::fmt::Write;

use ha_core::model::{PgStateName, Tags};

use super::view::NodeView;

/// Patroni's `PostgresqlState` member names, lower-cased, by metric index (the `# Values:` line).
const STATE_NAMES: [&str; 15] = [
    "initdb",
    "initdb_failed",
    "custom_bootstrap",
    "custom_bootstrap_failed",
    "creating_replica",
    "running",
    "starting",
    "bootstrap_starting",
    "start_failed",
    "restarting",
    "restart_failed",
    "stopping",
    "stopped",
    "stop_failed",
    "crashed",
];

/// `4.1.4` → `040104`, as Patroni pads its semver.
/// Unix milliseconds as Patroni's float seconds (`1733050000.123`), 0 when unknown.
fn epoch_seconds(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!("{}", ms as f64 / 1000.0),
        None => "0".into(),
    }
}

pub fn padded_semver(version: &str) -> String {
    version
        .split('.')
        .map(|p| {
            let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
            format!("{:0>2}", digits)
        })
        .collect()
}

/// Inputs not in the view.
#[derive(Debug, Clone, Default)]
pub struct MetricInputs<'a> {
    pub scope: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    pub tags: Option<&'a Tags>,
    pub dcs_last_seen: i64,
    pub failsafe_mode_is_active: bool,
}

/// Renders every metric.
pub fn render(view: &NodeView, m: &MetricInputs) -> String {
    let labels = format!("{{scope=\"{}\",name=\"{}\"}}", m.scope, m.name);
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, help: &str, kind: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{labels} {value}");
    };
    let b = |x: bool| if x { "1".to_string() } else { "0".to_string() };
    let role = view.role();
    let running = view.is_running();
    let replica = view.pg.is_alive() && view.pg.in_recovery;
    metric(
        "patroni_version",
        "Patroni semver without periods.",
        "gauge",
        padded_semver(m.version),
    );
    metric(
        "patroni_postgres_running",
        "Value is 1 if Postgres is running, 0 otherwise.",
        "gauge",
        b(running),
    );
    metric(
        "patroni_postmaster_start_time",
        "Epoch seconds since Postgres started.",
        "gauge",
        epoch_seconds(
            view.pg
                .postmaster_start_unix_ms
                .filter(|_| view.pg.is_alive()),
        ),
    );
    metric(
        "patroni_primary",
        "Value is 1 if this node is the leader, 0 otherwise.",
        "gauge",
        b(role == "primary"),
    );
    metric(
        "patroni_xlog_location",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        "counter",
        if view.pg.is_alive() && !view.pg.in_recovery {
            view.pg.lsn.to_string()
        } else {
            "0".into()
        },
    );
    metric(
        "patroni_standby_leader",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        "gauge",
        b(role == "standby_leader"),
    );
    metric(
        "patroni_replica",
        "Value is 1 if this node is a replica, 0 otherwise.",
        "gauge",
        b(role == "replica"),
    );
    metric(
        "patroni_sync_standby",
        "Value is 1 if this node is a sync standby, 0 otherwise.",
        "gauge",
        b(view.sync_standby),
    );
    metric(
        "patroni_quorum_standby",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        "gauge",
        b(view.quorum_standby),
    );
    metric(
        "patroni_xlog_received_location",
        "Current location of the received Postgres transaction log, 0 if this node is not a replica.",
        "counter",
        if replica { view.received_location().to_string() } else { "0".into() },
    );
    metric(
        "patroni_xlog_replayed_location",
        "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.",
        "counter",
        if replica { view.replayed_location().to_string() } else { "0".into() },
    );
    metric(
        "patroni_xlog_replayed_timestamp",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        "gauge",
        epoch_seconds(view.pg.replayed_unix_ms.filter(|_| view.pg.is_alive())),
    );
    metric(
        "patroni_xlog_paused",
        "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
        "gauge",
        b(replica && view.pg.replay_paused),
    );
    let server_version = if view.pg.is_alive() {
        view.pg.server_version.unwrap_or(0)
    } else {
        0
    };
    if server_version >= 90600 {
        metric(
            "patroni_postgres_streaming",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            "gauge",
            b(view.replication_state() == Some("streaming")),
        );
        metric(
            "patroni_postgres_in_archive_recovery",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            "gauge",
            b(view.replication_state() == Some("in archive recovery")),
        );
    }
    metric(
        "patroni_postgres_server_version",
        "Version of Postgres (if running), 0 otherwise.",
        "gauge",
        server_version.to_string(),
    );
    metric(
        "patroni_cluster_unlocked",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        "gauge",
        b(view.cluster_unlocked()),
    );
    metric(
        "patroni_failsafe_mode_is_active",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        "gauge",
        b(m.failsafe_mode_is_active),
    );
    metric(
        "patroni_failsafe_mode_enabled",
        "Value is 1 if failsafe mode is enabled, 0 otherwise.",
        "gauge",
        b(view.config.failsafe_mode()),
    );
    let in_failsafe = view
        .cluster
        .as_ref()
        .and_then(|c| c.failsafe.as_ref())
        .map_or(false, |f| f.contains_key(m.name));
    metric(
        "patroni_failsafe_member",
        "Value is 1 if this node is a member of failsafe, 0 otherwise.",
        "gauge",
        b(in_failsafe),
    );
    metric(
        "patroni_postgres_timeline",
        "Postgres timeline of this node (if running), 0 otherwise.",
        "gauge",
        if view.pg.is_alive() {
            view.pg.timeline.to_string()
        } else {
            "0".into()
        },
    );
    metric(
        "patroni_dcs_last_seen",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        "gauge",
        m.dcs_last_seen.to_string(),
    );
    metric(
        "patroni_pending_restart",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        "gauge",
        b(!view.pg.pending_restart.is_empty()),
    );
    metric(
        "patroni_is_paused",
        "Value is 1 if auto failover is disabled, 0 otherwise.",
        "gauge",
        b(view.paused),
    );
    // patroni_postgres_state carries an extra `# Values:` line between HELP and TYPE.
    let state_index = view
        .member
        .state
        .as_deref()
        .and_then(PgStateName::parse)
        .map_or(-1, PgStateName::index);
    let values: Vec<String> = STATE_NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i}={n}"))
        .collect();
    let _ = writeln!(
        out,
        "# HELP patroni_postgres_state Numeric representation of Postgres state."
    );
    let _ = writeln!(out, "# Values: {}", values.join(", "));
    let _ = writeln!(out, "# TYPE patroni_postgres_state gauge");
    let _ = writeln!(out, "patroni_postgres_state{labels} {state_index}");
    let priority = m.tags.map_or(1, Tags::failover_priority);
    let _ = writeln!(
        out,
        "# HELP patroni_failover_priority Value is 0 if the node is not allowed to become the leader, otherwise the failover_priority tag (1 by default)."
    );
    let _ = writeln!(out, "# TYPE patroni_failover_priority gauge");
    let _ = writeln!(out, "patroni_failover_priority{labels} {priority}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_is_zero_padded() {
        assert_eq!(padded_semver("4.1.4"), "040104");
        assert_eq!(padded_semver("0.1.0"), "000100");
    }
}
