//! The loop's timing (`ttl`, `loop_wait`, `retry_timeout`): Patroni's defaults and adjustments, hactl's minimums,
//! the lease rule that keeps a loop shorter than the lease, and why a configuration is refused.

/// Default `ttl` in seconds, as Patroni's.
pub const DEFAULT_TTL_S: f64 = 30.0;
/// Default `loop_wait` in seconds, as Patroni's.
pub const DEFAULT_LOOP_WAIT_S: f64 = 10.0;
/// Default `retry_timeout` in seconds, as Patroni's.
pub const DEFAULT_RETRY_TIMEOUT_S: f64 = 10.0;
/// The shortest ttl hactl accepts. Patroni refuses anything under 20 s; hactl's lease is judged from the moment the
/// renewal was sent, with a safety margin, so short leases stay safe (see [`Timing::lease_safety_margin_ms`]).
pub const MIN_TTL_S: f64 = 2.0;
/// The shortest loop_wait: below it the loop would only burn CPU and DCS requests.
pub const MIN_LOOP_WAIT_S: f64 = 0.1;
/// The shortest retry_timeout: one DCS round trip on a loaded machine must fit in it.
pub const MIN_RETRY_TIMEOUT_S: f64 = 0.5;

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

    /// The slowest DCS round trip (every call of a loop that slow) under which a healthy leader is never fenced nor
    /// replaced. Between two renewals a slow loop makes four calls one after the other (the renewal itself, the
    /// `status` and member-key writes, the next loop's read), paced from its start, so the renewals stay within the
    /// lease while four round trips do; a fifth is kept for the fencer's delay, clock drift and a late wake-up.
    /// The simulator's stability runs check it (`SimConfig::stability`).
    pub fn dcs_round_trip_bound_ms(&self) -> u64 {
        self.lease_valid_ms() / 5
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
}
