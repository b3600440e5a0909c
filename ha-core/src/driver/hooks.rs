//! What an embedder plugs into the driver: [`Hooks`] around its actions (Patroni's callbacks) and the
//! [`FailsafeProbe`] that asks the other members over REST whether they accept this node as the leader while the DCS
//! is unreachable.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::Outcome;
use crate::decision::Action;

/// Asks the members named in the `failsafe` key, over their REST API (`POST /failsafe`), whether they accept this
/// node as the leader while the DCS is unreachable. `true` only if every one of them did.
#[async_trait]
pub trait FailsafeProbe: Send + Sync {
    async fn confirm_all(&self, leader: &str, members: &BTreeMap<String, String>) -> bool;
}

/// Hooks an embedder runs around the driver's actions (Patroni's callbacks). All optional.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Runs right before a promotion; `false` cancels it (Patroni's `pre_promote` with a non-zero exit). The driver
    /// then releases the lock so another node can take over.
    async fn pre_promote(&self) -> bool {
        true
    }
    /// Runs after each executed action, with its outcome (role-change callbacks, metrics, logs).
    async fn after_action(&self, _action: &Action, _outcome: &Outcome) {}
}

/// No hooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;
impl Hooks for NoHooks {}
