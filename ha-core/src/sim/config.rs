//! A simulated run's parameters: the seed fixes all of them, so a seed alone replays a run.

use crate::decision::PlantedBug;
use crate::model::Timing;

/// The replication mode a simulated cluster runs (`synchronous_mode` and `synchronous_mode_strict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimSync {
    /// `synchronous_mode` off: commits do not wait, and the loss of some is allowed within a bound.
    Async,
    /// `synchronous_mode: on`.
    On,
    /// `synchronous_mode: on` with `synchronous_mode_strict`.
    OnStrict,
    /// `synchronous_mode: quorum`.
    Quorum,
    /// `synchronous_mode: quorum` with `synchronous_mode_strict`.
    QuorumStrict,
}

impl SimSync {
    /// Any synchronous mode: no acknowledged commit may be lost.
    pub fn is_sync(self) -> bool {
        self != SimSync::Async
    }
}

/// One simulated run's parameters. [`SimConfig::for_seed`] derives all of them from the seed, so a seed alone
/// replays a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The seed every random choice of the run comes from.
    pub seed: u64,
    /// How many nodes (`node1`..`nodeN`).
    pub nodes: usize,
    /// `ttl` in seconds.
    pub ttl_s: f64,
    /// `loop_wait` in seconds.
    pub loop_wait_s: f64,
    /// `retry_timeout` in seconds.
    pub retry_timeout_s: f64,
    /// `maximum_lag_on_failover` in bytes, which the `promotion_lag` invariant checks.
    pub maximum_lag_on_failover: u64,
    /// Whether the cluster runs with `failsafe_mode`.
    pub failsafe_mode: bool,
    /// Synchronous replication: no acknowledged commit may be lost (in [`SimSync::Async`] the loss is counted
    /// and bounded instead).
    pub sync: SimSync,
    /// `synchronous_node_count`.
    pub sync_node_count: usize,
    /// One node on a link slower than the client's writes (a remote replica that falls ever further behind):
    /// its index and the bytes it receives per step.
    pub slow_replica: Option<(usize, u64)>,
    /// Whether nodes run a watchdog that fences PostgreSQL when the lease runs out without a renewal.
    pub watchdog: bool,
    /// Whether each machine's clock runs fast or slow (within [`crate::sim::clock::MAX_DRIFT_PPM`]).
    pub clock_drift: bool,
    /// The longest a fencer takes, after its deadline, to have PostgreSQL dead (drawn per node up to this).
    pub max_fence_delay_ms: u64,
    /// Whether the chaos phase troubles DCS links (latency, replies lost after the server applied the request,
    /// delayed watch events) and stops daemons gracefully (SIGTERM), as well as the faults every run has.
    pub message_faults: bool,
    /// A stability run: the chaos phase only slows DCS links (each round trip up to this percentage of
    /// [`Timing::dcs_round_trip_bound_ms`], nothing lost), and any promotion or fencing after the cluster formed is a
    /// violation (see [`crate::sim::invariants::stability`]).
    pub stability_percent: Option<u64>,
    /// Virtual time per step, in ms: faults, due loops, replication and client writes happen once per step.
    pub step_ms: u64,
    /// Time for the cluster to form before faults start.
    pub settle_ms: u64,
    /// Length of the chaos phase.
    pub chaos_ms: u64,
    /// Mean time between two faults during chaos.
    pub fault_gap_ms: u64,
    /// Client writes per step to whoever accepts them, in bytes.
    pub write_bytes_per_step: u64,
    /// Keep a human-readable trace of every decision (for replays).
    pub trace: bool,
    #[doc(hidden)]
    pub planted_bug: Option<PlantedBug>,
}

impl SimConfig {
    /// The run for `seed`: its timing profile (ttl 30/10/10, 10/2/3, or 5/1/2), failsafe mode, node count and
    /// replication mode come from the seed too.
    pub fn for_seed(seed: u64) -> SimConfig {
        let (ttl_s, loop_wait_s, retry_timeout_s) = match seed % 3 {
            0 => (30.0, 10.0, 10.0),
            1 => (10.0, 2.0, 3.0),
            _ => (5.0, 1.0, 2.0),
        };
        let nodes = if seed % 7 == 3 { 5 } else { 3 };
        let sync = match (seed / 5) % 5 {
            0 => SimSync::Async,
            1 => SimSync::On,
            2 => SimSync::OnStrict,
            3 => SimSync::Quorum,
            _ => SimSync::QuorumStrict,
        };
        SimConfig {
            seed,
            nodes,
            ttl_s,
            loop_wait_s,
            retry_timeout_s,
            maximum_lag_on_failover: 1_048_576,
            failsafe_mode: seed % 4 == 1,
            sync,
            sync_node_count: if nodes == 5 { 2 } else { 1 },
            slow_replica: (seed % 2 == 0).then(|| ((seed / 2) as usize % nodes, 6 * 1024)),
            watchdog: true,
            clock_drift: true,
            max_fence_delay_ms: 300,
            message_faults: true,
            stability_percent: None,
            step_ms: 100,
            settle_ms: 40_000,
            chaos_ms: 240_000,
            fault_gap_ms: (ttl_s * 1000.0) as u64,
            write_bytes_per_step: 8 * 1024,
            trace: false,
            planted_bug: None,
        }
    }

    /// The stability run for `seed`: its timing profile and replication mode as [`SimConfig::for_seed`], and during
    /// the chaos phase nothing but slow DCS links, each round trip up to `percent` of the bound the timing allows
    /// ([`Timing::dcs_round_trip_bound_ms`]; each leg up to half of it).
    pub fn stability(seed: u64, percent: u64) -> SimConfig {
        SimConfig {
            stability_percent: Some(percent),
            ..SimConfig::for_seed(seed)
        }
    }

    /// The run's timing; panics if it breaks the timing rule (the seeds' profiles never do).
    pub fn timing(&self) -> Timing {
        Timing::from_seconds(self.ttl_s, self.loop_wait_s, self.retry_timeout_s)
            .expect("simulator timings are valid")
    }
}
