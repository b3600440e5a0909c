//! The properties checked at every simulated step, one file each. Each says what a user would suffer if it broke.

pub mod acked_commits;
pub mod lease_safety;
pub mod promotion_lag;
pub mod recovery_bound;
pub mod replicas_rejoin;
pub mod single_writer;
pub mod stability;

use crate::time::Millis;

/// A broken invariant: which, when, and what the simulator saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// When it broke, in virtual time.
    pub at: Millis,
    /// Which invariant: its module's `NAME`, e.g. `single_writer`.
    pub invariant: &'static str,
    /// What the simulator saw.
    pub detail: String,
}
