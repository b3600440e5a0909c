//! The dynamic, cluster-wide configuration kept in the DCS `config` key, and the timing derived from it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::lenient;

/// Default `ttl` in seconds, as Patroni's.
pub const DEFAULT_TTL_S: f64 = 30.0;
/// Default `loop_wait` in seconds, as Patroni's.
pub const DEFAULT_LOOP_WAIT_S: f64 = 10.0;
/// Default `retry_timeout` in seconds, as Patroni's.
pub const DEFAULT_RETRY_TIMEOUT_S: f64 = 10.0;
/// Default `maximum_lag_on_failover` in bytes (1 MiB), as Patroni's.
pub const DEFAULT_MAXIMUM_LAG_ON_FAILOVER_BYTES: u64 = 1_048_576;
/// The shortest ttl hactl accepts. Patroni refuses anything under 20 s; hactl's lease is judged from the moment the
/// renewal was sent, with a safety margin, so short leases stay safe (see [`Timing::lease_safety_margin_ms`]).
pub const MIN_TTL_S: f64 = 2.0;
/// The shortest loop_wait: below it the loop would only burn CPU and DCS requests.
pub const MIN_LOOP_WAIT_S: f64 = 0.1;
/// The shortest retry_timeout: one DCS round trip on a loaded machine must fit in it.
pub const MIN_RETRY_TIMEOUT_S: f64 = 0.5;

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
    /// Patroni's `primary_start_timeout`: read and written back, not acted on (see [`GlobalConfig::not_acted_on`]).
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
    /// Keys present in this configuration that hactl does not act on (each is named in a warning when it appears;
    /// see README: known limits).
    pub fn not_acted_on(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.primary_start_timeout.is_some() {
            out.push("primary_start_timeout");
        }
        for k in [
            "master_start_timeout",
            "primary_stop_timeout",
            "master_stop_timeout",
            "max_timelines_history",
        ] {
            if self.extra.get(k).map_or(false, |v| !v.is_null()) {
                out.push(k);
            }
        }
        if let Some(Value::Object(sc)) = self.extra.get("standby_cluster") {
            if sc.contains_key("create_replica_methods") {
                // The standby leader copies its source with this node's own `create_replica_methods`.
                out.push("standby_cluster.create_replica_methods");
            }
        }
        if let Some(p) = &self.postgresql {
            if p.extra.contains_key("recovery_conf") {
                out.push("postgresql.recovery_conf");
            }
        }
        out
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
        let mut out = std::collections::BTreeMap::new();
        if let Some(params) = self.postgresql.as_ref().and_then(|p| p.parameters.as_ref()) {
            for (k, v) in params {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Bool(b) => {
                        if *b {
                            "on".into()
                        } else {
                            "off".into()
                        }
                    }
                    other => other.to_string(),
                };
                out.insert(k.clone(), s);
            }
        }
        out
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

/// Why a configuration was refused. Each message names the keys to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A value is under hactl's minimum for it.
    #[error("`{key}` is {value} s but must be at least {min} s")]
    BelowMinimum {
        /// The key, e.g. `"ttl"`.
        key: &'static str,
        /// The value given, in seconds.
        value: f64,
        /// The smallest value accepted, in seconds.
        min: f64,
    },
    /// `loop_wait + 2 * retry_timeout > ttl`: a leader could lose its lock between two loops.
    #[error(
        "`loop_wait` ({loop_wait} s) + 2 * `retry_timeout` ({retry_timeout} s) = {sum} s exceeds `ttl` ({ttl} s): \
         a leader could lose its lock between two loops; raise ttl or lower loop_wait/retry_timeout"
    )]
    TimingRule {
        /// `ttl` in seconds.
        ttl: f64,
        /// `loop_wait` in seconds.
        loop_wait: f64,
        /// `retry_timeout` in seconds.
        retry_timeout: f64,
        /// `loop_wait + 2 * retry_timeout` in seconds.
        sum: f64,
    },
    /// The lease rule: a renewal sent `loop_wait` after the last one and answered within `retry_timeout` must land
    /// before the lease this node counts (`ttl` minus the safety margin) runs out, or the watchdog fences a healthy
    /// primary between two loops.
    #[error(
        "`loop_wait` ({loop_wait} s) + `retry_timeout` ({retry_timeout} s) exceeds the lease this node counts \
         ({lease} s: `ttl` {ttl} s minus the safety margin): the watchdog would fence a healthy primary between two \
         loops; raise ttl or lower loop_wait/retry_timeout"
    )]
    LeaseRule {
        /// `ttl` in seconds.
        ttl: f64,
        /// `loop_wait` in seconds.
        loop_wait: f64,
        /// `retry_timeout` in seconds.
        retry_timeout: f64,
        /// The lease this node counts, `ttl` minus the safety margin, in seconds.
        lease: f64,
    },
    /// Any other unusable value (hactl's configuration file reports these): the dotted key and why.
    #[error("`{key}`: {reason}")]
    Invalid {
        /// The key, dotted (`watchdog.mode`).
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
}

/// How long before the server could expire a lease of `ttl_ms` this node stops acting as primary (see
/// [`Timing::lease_safety_margin_ms`]).
fn safety_margin_ms(ttl_ms: u64) -> u64 {
    (ttl_ms / 10).max(1000).min(ttl_ms / 2)
}

/// The three timing knobs in milliseconds, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Patroni's `ttl` in ms: how long the leader lock and member keys live without renewal.
    pub ttl_ms: u64,
    /// Patroni's `loop_wait` in ms: the pause between two HA loops.
    pub loop_wait_ms: u64,
    /// Patroni's `retry_timeout` in ms: the deadline of each DCS call, and how long PostgreSQL may go unanswered before
    /// it is fenced.
    pub retry_timeout_ms: u64,
}

impl Timing {
    /// The timing in seconds, refused (not adjusted, unlike [`Timing::adjusted`]) when a value is under its minimum or
    /// `loop_wait + 2 * retry_timeout > ttl`.
    pub fn from_seconds(
        ttl: f64,
        loop_wait: f64,
        retry_timeout: f64,
    ) -> Result<Timing, ConfigError> {
        for (key, value, min) in [
            ("ttl", ttl, MIN_TTL_S),
            ("loop_wait", loop_wait, MIN_LOOP_WAIT_S),
            ("retry_timeout", retry_timeout, MIN_RETRY_TIMEOUT_S),
        ] {
            if !(value >= min) {
                return Err(ConfigError::BelowMinimum { key, value, min });
            }
        }
        let sum = loop_wait + 2.0 * retry_timeout;
        if sum > ttl + 1e-9 {
            return Err(ConfigError::TimingRule {
                ttl,
                loop_wait,
                retry_timeout,
                sum,
            });
        }
        let ttl_ms = (ttl * 1000.0).round() as u64;
        let lease = (ttl_ms - safety_margin_ms(ttl_ms)) as f64 / 1000.0;
        if loop_wait + retry_timeout > lease + 1e-9 {
            return Err(ConfigError::LeaseRule {
                ttl,
                loop_wait,
                retry_timeout,
                lease,
            });
        }
        Ok(Timing {
            ttl_ms: (ttl * 1000.0).round() as u64,
            loop_wait_ms: (loop_wait * 1000.0).round() as u64,
            retry_timeout_ms: (retry_timeout * 1000.0).round() as u64,
        })
    }

    /// Patroni's `_validate_and_adjust_timeouts` with hactl's lower minimums: a value below its minimum is raised to
    /// it; if `loop_wait + 2 * retry_timeout > ttl`, `loop_wait` is lowered to fit, and if even a 1 s `loop_wait`
    /// does not fit, `loop_wait` becomes 1 s and `retry_timeout` `(ttl - 1) / 2` (rounded down to whole seconds
    /// where that stays above its minimum, as Patroni's integer division does). Never refused: Patroni accepts
    /// `PATCH /config {"ttl": 20}` beside `retry_timeout: 10` this way, and so does hactl. Each change is
    /// returned as a warning naming the keys, in Patroni's words.
    pub fn adjusted(ttl: f64, loop_wait: f64, retry_timeout: f64) -> (Timing, Vec<String>) {
        let mut warnings = Vec::new();
        let mut raise = |key: &str, value: f64, min: f64| {
            if value >= min && value.is_finite() {
                value
            } else {
                warnings.push(format!(
                    "{key}={value} can't be smaller than {min}, adjusting..."
                ));
                min
            }
        };
        let mut loop_wait = raise("loop_wait", loop_wait, MIN_LOOP_WAIT_S);
        let mut retry_timeout = raise("retry_timeout", retry_timeout, MIN_RETRY_TIMEOUT_S);
        let ttl = raise("ttl", ttl, MIN_TTL_S);
        const ADJUSTED_LOOP_WAIT_S: f64 = 1.0;
        if ADJUSTED_LOOP_WAIT_S + 2.0 * retry_timeout > ttl + 1e-9 {
            let exact = (ttl - ADJUSTED_LOOP_WAIT_S) / 2.0;
            let new_retry = if exact.floor() >= MIN_RETRY_TIMEOUT_S {
                exact.floor()
            } else {
                exact
            };
            warnings.push(format!(
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl}. Adjusting loop_wait \
                 from {loop_wait} to {ADJUSTED_LOOP_WAIT_S} and retry_timeout from {retry_timeout} to {new_retry}"
            ));
            loop_wait = ADJUSTED_LOOP_WAIT_S;
            retry_timeout = new_retry;
        } else if loop_wait + 2.0 * retry_timeout > ttl + 1e-9 {
            let new_loop = ttl - 2.0 * retry_timeout;
            warnings.push(format!(
                "Violated the rule \"loop_wait + 2*retry_timeout <= ttl\", where ttl={ttl} and \
                 retry_timeout={retry_timeout}. Adjusting loop_wait from {loop_wait} to {new_loop}"
            ));
            loop_wait = new_loop;
        }
        // hactl's own rule on top of Patroni's: the next renewal must land before the lease this node counts ends.
        let ttl_ms = (ttl * 1000.0).round() as u64;
        let lease = (ttl_ms - safety_margin_ms(ttl_ms)) as f64 / 1000.0;
        if loop_wait + retry_timeout > lease + 1e-9 {
            let new_loop = (lease - retry_timeout).max(MIN_LOOP_WAIT_S);
            let new_retry = retry_timeout.min(lease - new_loop);
            warnings.push(format!(
                "Violated the rule \"loop_wait + retry_timeout <= ttl - safety margin\", where ttl={ttl} and the \
                 lease this node counts is {lease}. Adjusting loop_wait from {loop_wait} to {new_loop} and \
                 retry_timeout from {retry_timeout} to {new_retry}"
            ));
            loop_wait = new_loop;
            retry_timeout = new_retry;
        }
        let timing = Timing::from_seconds(ttl, loop_wait, retry_timeout).unwrap_or_default();
        (timing, warnings)
    }

    /// How long before the server could expire our lease we stop acting as primary.
    ///
    /// The lease is counted from the moment the renewal was *sent* (the server can only have started it later), so the
    /// margin only has to cover what happens on this node after the deadline is computed: a late wake-up of the loop,
    /// clock-rate error between this node and the DCS server (well under 1 % on any sane machine) and the time to fence
    /// PostgreSQL. A tenth of the ttl, at least 1 s, covers those for every ttl hactl accepts.
    pub fn lease_safety_margin_ms(&self) -> u64 {
        safety_margin_ms(self.ttl_ms)
    }

    /// How long after sending a successful renewal this node may still act as the leader.
    pub fn lease_valid_ms(&self) -> u64 {
        self.ttl_ms - self.lease_safety_margin_ms()
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ttl_ms: 30_000,
            loop_wait_ms: 10_000,
            retry_timeout_ms: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_rule_names_the_keys() {
        let err = Timing::from_seconds(10.0, 5.0, 5.0).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`loop_wait`") && msg.contains("`retry_timeout`") && msg.contains("`ttl`"),
            "{msg}"
        );
    }

    #[test]
    fn timing_is_adjusted_as_patroni_adjusts_it_never_refused() {
        // Patroni's acceptance suite: PATCH {"ttl": 20} beside retry_timeout 10 and loop_wait 2.
        let (t, w) = Timing::adjusted(20.0, 2.0, 10.0);
        assert_eq!(
            (t.ttl_ms, t.loop_wait_ms, t.retry_timeout_ms),
            (20_000, 1_000, 9_000)
        );
        assert!(
            w[0].contains("Adjusting loop_wait from 2 to 1 and retry_timeout from 10 to 9"),
            "{w:?}"
        );
        let (t, w) = Timing::adjusted(10.0, 5.0, 3.0);
        assert_eq!((t.loop_wait_ms, t.retry_timeout_ms), (4_000, 3_000));
        assert!(w[0].contains("Adjusting loop_wait from 5 to 4"), "{w:?}");
        let (t, w) = Timing::adjusted(1.0, 0.0, 10.0);
        assert!(
            t.ttl_ms >= 2_000 && t.loop_wait_ms + 2 * t.retry_timeout_ms <= t.ttl_ms,
            "{t:?}"
        );
        assert!(
            w.iter()
                .any(|l| l.starts_with("ttl=1 can't be smaller than 2")),
            "{w:?}"
        );
        let (_, w) = Timing::adjusted(30.0, 10.0, 10.0);
        assert!(w.is_empty(), "Patroni's defaults need no adjustment");
    }

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
    fn a_loop_as_long_as_the_lease_is_refused_or_adjusted_never_run() {
        // ttl 2 s: the lease this node counts is 1 s; a 1 s loop would let it run out before every renewal.
        let err = Timing::from_seconds(2.0, 1.0, 0.5).unwrap_err();
        assert!(matches!(err, ConfigError::LeaseRule { .. }), "{err}");
        assert!(err.to_string().contains("`loop_wait`"), "{err}");
        let (t, w) = Timing::adjusted(2.0, 1.0, 0.5);
        assert!(
            t.loop_wait_ms + t.retry_timeout_ms <= t.lease_valid_ms(),
            "{t:?}"
        );
        assert_eq!((t.loop_wait_ms, t.retry_timeout_ms), (500, 500));
        assert!(
            w.iter()
                .any(|l| l.contains("Adjusting loop_wait from 1 to 0.5")),
            "{w:?}"
        );
        // Patroni's rule holds but the lease's does not: ttl 30, loop_wait 28, retry_timeout 1.
        let (t, w) = Timing::adjusted(30.0, 28.0, 1.0);
        assert_eq!((t.loop_wait_ms, t.retry_timeout_ms), (26_000, 1_000));
        assert_eq!(w.len(), 1, "{w:?}");
        // The profiles the tests and the simulator use are untouched.
        for (ttl, lw, rt) in [
            (30.0, 10.0, 10.0),
            (10.0, 2.0, 3.0),
            (5.0, 1.0, 2.0),
            (20.0, 5.0, 5.0),
            (10.0, 1.0, 3.0),
        ] {
            assert!(Timing::from_seconds(ttl, lw, rt).is_ok(), "{ttl}/{lw}/{rt}");
        }
    }

    #[test]
    fn ttl_of_five_seconds_is_accepted_with_matching_loop_and_retry() {
        let t = Timing::from_seconds(5.0, 1.0, 2.0).unwrap();
        assert_eq!(t.lease_valid_ms(), 4000);
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
