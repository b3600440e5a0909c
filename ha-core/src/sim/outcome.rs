//! What a simulated run found: its violations, its figures, its trace, and the command that replays it.

use super::{Fault, SimConfig, Violation};
use crate::time::Millis;

/// Figures from one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimStats {
    /// Steps of virtual time run.
    pub steps: u64,
    /// HA loops run, all nodes together.
    pub cycles: u64,
    /// Times a server left recovery (a promotion, or a standby's data started as a primary).
    pub promotions: u64,
    /// Times a server was fenced, by its driver or its watchdog.
    pub fences: u64,
    /// Times a server was rewound.
    pub rewinds: u64,
    /// Every fault injected, with when.
    pub faults: Vec<(Millis, Fault)>,
    /// Longest time without any node accepting writes after the cluster first formed, in ms.
    pub longest_write_gap_ms: u64,
    /// Commits acknowledged to the client.
    pub acked_commits: u64,
    /// DCS calls the server applied whose reply was lost or came after the client's deadline (the client was told
    /// the call failed).
    pub dcs_applied_unanswered: u64,
    /// DCS calls that timed out before reaching the server.
    pub dcs_timed_out: u64,
    /// DCS reads answered from an older snapshot.
    pub dcs_stale_reads: u64,
    /// Asynchronous: the most bytes of acknowledged commits a primary lacked (synchronous: always 0, or a violation).
    pub acked_bytes_lost: u64,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    /// The run's parameters; its seed replays it.
    pub config: SimConfig,
    /// The invariants broken; empty for a good run, which otherwise ends at the step that broke one.
    pub violations: Vec<Violation>,
    /// The run's figures.
    pub stats: SimStats,
    /// Decision log lines (only with `config.trace`).
    pub trace: Vec<String>,
}

impl SimOutcome {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let bug = self
            .config
            .planted_bug
            .map(|b| format!(" --planted-bug {}", b.name()))
            .unwrap_or_default();
        let stability = self
            .config
            .stability_percent
            .map(|p| format!(" --stability {p}"))
            .unwrap_or_default();
        let wd = if self.config.watchdog {
            ""
        } else {
            " --no-watchdog"
        };
        format!(
            "cargo run --release -p ha-core --example simulate -- --seed {}{bug}{stability}{wd} --trace",
            self.config.seed
        )
    }
}
