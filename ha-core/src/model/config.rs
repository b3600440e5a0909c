//! The dynamic, cluster-wide configuration kept in the DCS `config` key; the timing derived from it is [`super::timing`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::lenient;
// Re-exported where they lived before `timing` was split off, so existing paths keep working.
pub use super::timing::{
    ConfigError, Timing, DEFAULT_LOOP_WAIT_S, DEFAULT_RETRY_TIMEOUT_S, DEFAULT_TTL_S,
    MIN_LOOP_WAIT_S, MIN_RETRY_TIMEOUT_S, MIN_TTL_S,
};

/// Default `maximum_lag_on_failover` in bytes (1 MiB), as Patroni's.
pub const DEFAULT_MAXIMUM_LAG_ON_FAILOVER_BYTES: u64 = 1_048_576;

/// `config` key: Patroni's dynamic configuration. Every field is optional so that a value read and written back
/// is unchanged; use the accessors for the effective values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GlobalConfig {
    /// Patroni's `ttl` in seconds: how long the leader lock and member keys live without renewal.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64",
        serialize_with = "lenient::ser_opt_f64"
    )]
    pub ttl: Option<f64>,
    /// Patroni's `loop_wait` in seconds: the pause between two HA loops.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64",
        serialize_with = "lenient::ser_opt_f64"
    )]
    pub loop_wait: Option<f64>,
    /// Patroni's `retry_timeout` in seconds: the deadline of each DCS call, and how long PostgreSQL may go unanswered
    /// before it is fenced.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64",
        serialize_with = "lenient::ser_opt_f64"
    )]
    pub retry_timeout: Option<f64>,
    /// Patroni's `maximum_lag_on_failover` in bytes: a replica further behind the leader's last published position
    /// (`status.optime`) may not race for the lock.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_u64"
    )]
    pub maximum_lag_on_failover: Option<u64>,
    /// Patroni's `check_timeline`: a node on a timeline behind the cluster's (per `history`) may not race for the lock.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub check_timeline: Option<bool>,
    /// `true`/`false`/`"on"`/`"off"`/`"quorum"`: kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_mode: Option<Value>,
    /// Patroni's `synchronous_mode_strict`; see [`GlobalConfig::synchronous_mode_strict`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub synchronous_mode_strict: Option<bool>,
    /// Patroni's `failsafe_mode`: a leader that cannot reach the DCS keeps its role while every member confirms it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub failsafe_mode: Option<bool>,
    /// Patroni's `pause`: maintenance mode, no automatic action.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub pause: Option<bool>,
    /// Patroni's `primary_start_timeout` (see [`GlobalConfig::primary_start_timeout_ms`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_f64",
        serialize_with = "lenient::ser_opt_f64"
    )]
    pub primary_start_timeout: Option<f64>,
    /// Patroni's `postgresql` section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<DynamicPostgresql>,
    /// Every other key (`slots`, `standby_cluster`, `synchronous_node_count`, ...), kept as read; the accessors
    /// read the ones hactl acts on from here.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `synchronous_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Asynchronous replication: commits do not wait for a standby.
    Off,
    /// `FIRST n (...)`: the leader names the synchronous standbys; only they may be promoted.
    On,
    /// `ANY n (...)`: Patroni's quorum commit: any node may be elected with the votes of a quorum of the
    /// synchronous set (see [`crate::decision::quorum`]).
    Quorum,
}

/// `config.postgresql`: the cluster-wide PostgreSQL settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DynamicPostgresql {
    /// Patroni's `use_pg_rewind`: a diverged former primary is rewound instead of re-cloned.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub use_pg_rewind: Option<bool>,
    /// Patroni's `use_slots` (default on): see [`GlobalConfig::use_slots`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub use_slots: Option<bool>,
    /// Patroni's `parameters`: `postgresql.conf` settings for every node; see [`GlobalConfig::parameters`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// Every other key (`pg_hba`, `recovery_conf`, ...), kept as read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A map of settings as `postgresql.conf` takes them: strings as they are, booleans as `on`/`off`, numbers as
/// written.
fn conf_values(map: Option<&Map<String, Value>>) -> std::collections::BTreeMap<String, String> {
    map.into_iter()
        .flatten()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Bool(true) => "on".into(),
                Value::Bool(false) => "off".into(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

impl GlobalConfig {
    /// `maximum_lag_on_failover` in bytes, 1 MiB when unset.
    pub fn maximum_lag_on_failover(&self) -> u64 {
        self.maximum_lag_on_failover
            .unwrap_or(DEFAULT_MAXIMUM_LAG_ON_FAILOVER_BYTES)
    }
    /// `check_timeline`, off when unset.
    pub fn check_timeline(&self) -> bool {
        self.check_timeline.unwrap_or(false)
    }
    /// `failsafe_mode`, off when unset.
    pub fn failsafe_mode(&self) -> bool {
        self.failsafe_mode.unwrap_or(false)
    }
    /// `pause`: the cluster is in maintenance mode.
    pub fn is_paused(&self) -> bool {
        self.pause.unwrap_or(false)
    }
    /// `postgresql.use_pg_rewind`, off when unset.
    pub fn use_pg_rewind(&self) -> bool {
        self.postgresql
            .as_ref()
            .and_then(|p| p.use_pg_rewind)
            .unwrap_or(false)
    }
    /// `postgresql.remove_data_directory_on_rewind_failure` of the cluster configuration (Patroni reads it from the
    /// merged local and dynamic `postgresql` section; the node's own setting is in
    /// [`LocalState::remove_data`](crate::decision::LocalState::remove_data)).
    pub fn remove_data_directory_on_rewind_failure(&self) -> bool {
        self.postgresql_flag("remove_data_directory_on_rewind_failure")
    }
    /// `postgresql.remove_data_directory_on_diverged_timelines` of the cluster configuration.
    pub fn remove_data_directory_on_diverged_timelines(&self) -> bool {
        self.postgresql_flag("remove_data_directory_on_diverged_timelines")
    }
    fn postgresql_flag(&self, key: &str) -> bool {
        self.postgresql
            .as_ref()
            .and_then(|p| p.extra.get(key))
            .and_then(lenient::value_bool)
            .unwrap_or(false)
    }
    /// Synchronous replication in either form (`on` or `quorum`); see [`GlobalConfig::sync_mode`].
    pub fn synchronous_mode(&self) -> bool {
        self.sync_mode() != SyncMode::Off
    }
    /// `synchronous_mode` as Patroni reads it: `true`/`on`, `quorum`, anything else off.
    pub fn sync_mode(&self) -> SyncMode {
        // A standby cluster has no writes of its own to protect: synchronous_mode is ignored, as in Patroni.
        if self.standby_cluster().is_some() {
            return SyncMode::Off;
        }
        match &self.synchronous_mode {
            Some(Value::Bool(true)) => SyncMode::On,
            // Patroni's `parse_bool` reads `str(value)`: the number 1 is "1", so on.
            Some(Value::Number(n)) if n.as_f64() == Some(1.0) => SyncMode::On,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => SyncMode::On,
                "quorum" => SyncMode::Quorum,
                _ => SyncMode::Off,
            },
            _ => SyncMode::Off,
        }
    }
    /// `synchronous_mode_strict`: with no synchronous standby left, commits wait instead of going asynchronous.
    pub fn synchronous_mode_strict(&self) -> bool {
        self.synchronous_mode_strict.unwrap_or(false)
    }
    /// `synchronous_node_count` (Patroni: 1, at least 1).
    pub fn synchronous_node_count(&self) -> usize {
        self.extra
            .get("synchronous_node_count")
            .and_then(lenient::value_i64)
            .map_or(1, |n| n.max(1) as usize)
    }
    /// Patroni's `primary_start_timeout` (formerly `master_start_timeout`), in ms: how long a leader whose
    /// PostgreSQL went down may take to start it again before it hands the lock to a replica that can take over.
    /// Default 300 s; 0 fails over at once after a crash when a replica can take over.
    pub fn primary_start_timeout_ms(&self) -> u64 {
        let secs = self
            .primary_start_timeout
            .or_else(|| {
                self.extra
                    .get("master_start_timeout")
                    .and_then(lenient::value_f64)
            })
            .unwrap_or(300.0);
        (secs.max(0.0) * 1000.0) as u64
    }
    /// Patroni's `primary_stop_timeout` (formerly `master_stop_timeout`), in ms, when set above 0: in a
    /// synchronous mode, how long a primary's stop may take before its postmaster is killed.
    pub fn primary_stop_timeout_ms(&self) -> Option<u64> {
        ["primary_stop_timeout", "master_stop_timeout"]
            .iter()
            .find_map(|k| self.extra.get(*k).and_then(lenient::value_f64))
            .filter(|s| *s > 0.0)
            .map(|s| (s * 1000.0) as u64)
    }
    /// Patroni's `max_timelines_history`: how many timeline switches the `history` key keeps (the latest); 0, the
    /// default, keeps them all.
    pub fn max_timelines_history(&self) -> usize {
        self.extra
            .get("max_timelines_history")
            .and_then(lenient::value_i64)
            .map_or(0, |n| n.max(0) as usize)
    }
    /// Keys present in this configuration that hactl does not act on (each is named in a warning when it appears;
    /// see README: known limits).
    pub fn not_acted_on(&self) -> Vec<&'static str> {
        let Some(p) = &self.postgresql else {
            return Vec::new();
        };
        // pg_hba.conf comes from the node's own `postgresql.pg_hba` (or `bootstrap.pg_hba`); pg_ident.conf is left
        // as initdb wrote it.
        [
            ("pg_hba", "postgresql.pg_hba"),
            ("pg_ident", "postgresql.pg_ident"),
        ]
        .into_iter()
        .filter(|(k, _)| p.extra.contains_key(*k))
        .map(|(_, name)| name)
        .collect()
    }

    /// `primary_race_backoff` in ms (Patroni 4.1; 0 or unset: off): how long a replica still receiving WAL holds
    /// back from the leader race after the leader key vanished.
    pub fn primary_race_backoff_ms(&self) -> u64 {
        self.extra
            .get("primary_race_backoff")
            .and_then(|v| match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .filter(|s| *s > 0.0)
            .map_or(0, |s| (s * 1000.0) as u64)
    }
    /// `maximum_lag_on_syncnode` in bytes; `None` when unset or not positive (Patroni: -1, no limit).
    pub fn maximum_lag_on_syncnode(&self) -> Option<u64> {
        self.extra
            .get("maximum_lag_on_syncnode")
            .and_then(lenient::value_i64)
            .filter(|n| *n > 0)
            .map(|n| n as u64)
    }
    /// Cluster-wide PostgreSQL parameters as strings, the form `postgresql.conf` takes.
    pub fn parameters(&self) -> std::collections::BTreeMap<String, String> {
        conf_values(self.postgresql.as_ref().and_then(|p| p.parameters.as_ref()))
    }

    /// Patroni's `postgresql.recovery_conf`: settings every standby gets besides the ones hactl writes
    /// (`restore_command` for an archive fallback, `recovery_min_apply_delay`...), as strings.
    pub fn recovery_conf(&self) -> std::collections::BTreeMap<String, String> {
        let map = self
            .postgresql
            .as_ref()
            .and_then(|p| match p.extra.get("recovery_conf") {
                Some(Value::Object(m)) => Some(m),
                _ => None,
            });
        conf_values(map)
    }

    /// The effective timing: the configured values adjusted as Patroni adjusts them
    /// ([`Timing::adjusted`]), so a config that runs under Patroni runs under hactl.
    pub fn timing(&self) -> Timing {
        self.adjusted_timing().0
    }

    /// What [`GlobalConfig::timing`] changed, one line per adjustment naming the keys (log them as warnings).
    pub fn timing_adjustments(&self) -> Vec<String> {
        self.adjusted_timing().1
    }

    fn adjusted_timing(&self) -> (Timing, Vec<String>) {
        Timing::adjusted(
            self.ttl.unwrap_or(DEFAULT_TTL_S),
            self.loop_wait.unwrap_or(DEFAULT_LOOP_WAIT_S),
            self.retry_timeout.unwrap_or(DEFAULT_RETRY_TIMEOUT_S),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_mode_is_read_as_patronis_parse_bool_reads_it() {
        for (raw, mode) in [
            ("true", SyncMode::On),
            ("1", SyncMode::On),
            (r#""on""#, SyncMode::On),
            (r#""Quorum""#, SyncMode::Quorum),
            ("0", SyncMode::Off),
            ("false", SyncMode::Off),
        ] {
            let c: GlobalConfig =
                serde_json::from_str(&format!(r#"{{"synchronous_mode":{raw}}}"#)).unwrap();
            assert_eq!(c.sync_mode(), mode, "{raw}");
        }
    }

    #[test]
    fn strings_and_unknown_fields_survive() {
        let raw = r#"{"ttl":"20","loop_wait":5,"retry_timeout":5,"postgresql":{"parameters":{"max_connections":100},"x":1},"custom":[1,2]}"#;
        let c: GlobalConfig = serde_json::from_str(raw).unwrap();
        assert_eq!(c.ttl, Some(20.0));
        assert_eq!(c.timing().ttl_ms, 20_000);
        assert_eq!(
            c.parameters().get("max_connections").map(String::as_str),
            Some("100")
        );
        let back = serde_json::to_string(&c).unwrap();
        assert!(back.starts_with(r#"{"ttl":20,"#), "{back}");
        assert!(
            back.contains(r#""custom":[1,2]"#) && back.contains(r#""x":1"#),
            "{back}"
        );
    }
}
