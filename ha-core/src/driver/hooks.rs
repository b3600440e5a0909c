//! What an embedder plugs into the driver: [`Hooks`] around its actions (Patroni's callbacks), the
//! [`FailsafeProbe`] that asks the other members over REST whether they accept this node as the leader while the DCS
//! is unreachable, and the [`PeerProbe`] that asks them for their WAL positions before a leader race in quorum mode.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::Outcome;
use crate::decision::Action;

/// Asks the members named in the `failsafe` key, over their REST API (`POST /failsafe`), whether they accept this
/// node as the leader while the DCS is unreachable. `Some` only if every one of them did, with the WAL position
/// each reported (Patroni's `lsn` header), by which the leader moves the slots of members that stream from another
/// member. `slots` (name → position) goes with the request, as Patroni's `slots`: the members move their copies of
/// the permanent slots there.
#[async_trait]
pub trait FailsafeProbe: Send + Sync {
    /// Asks each of `members` (name → API URL) to accept `leader`, sending `slots`. `Some` with each member's WAL
    /// position when every one accepted; `None` when one refused or did not answer in time.
    async fn confirm_all(
        &self,
        leader: &str,
        members: &BTreeMap<String, String>,
        slots: &BTreeMap<String, u64>,
    ) -> Option<BTreeMap<String, u64>>;
}

/// What a member's REST API said about its PostgreSQL just now (Patroni's `fetch_nodes_statuses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its WAL position: received or replayed, whichever is further (`xlog.location` on a primary).
    pub lsn: u64,
    /// Its PostgreSQL is in recovery: a standby.
    pub in_recovery: bool,
}

/// Asks members over their REST API (`GET /patroni`) for their PostgreSQL's position at this moment. The leader
/// race in quorum mode counts votes from these live answers: a member key may be a loop old, or written by a
/// daemon that has frozen since, and a stale position would vote for a node that lacks acknowledged commits.
#[async_trait]
pub trait PeerProbe: Send + Sync {
    /// `members`: name → API URL. A member that does not answer in time is left out of the result.
    async fn statuses(&self, members: &BTreeMap<String, String>) -> BTreeMap<String, PeerStatus>;
}

/// What this node's PostgreSQL serves, as a product acts on it (move a virtual IP, open or close its own write
/// path, tell its users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Not running (not yet started, crashed, stopped, or not yet initialized).
    Stopped,
    /// Takes writes.
    Primary,
    /// A read-only standby of another member.
    Replica,
    /// The leader of a standby cluster: read-only, following a remote primary, the one its own replicas follow.
    StandbyLeader,
}

impl NodeRole {
    /// The role shown by `pg` (a server as the driver observed it); `standby_leader`: this node holds the lock of a
    /// standby cluster.
    pub fn of(pg: &crate::pg::PgObservation, standby_leader: bool) -> NodeRole {
        if !pg.is_alive() {
            NodeRole::Stopped
        } else if !pg.in_recovery {
            NodeRole::Primary
        } else if standby_leader {
            NodeRole::StandbyLeader
        } else {
            NodeRole::Replica
        }
    }
    /// The role in logs: `stopped`, `primary`, `replica` or `standby_leader`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Stopped => "stopped",
            NodeRole::Primary => "primary",
            NodeRole::Replica => "replica",
            NodeRole::StandbyLeader => "standby_leader",
        }
    }
}

/// Hooks an embedder runs around the driver's actions (Patroni's callbacks). All optional.
#[async_trait]
pub trait Hooks: Send + Sync {
    /// Runs after a loop whose outcome changed what this node serves, and once more from
    /// [`Driver::shutdown`](super::Driver::shutdown) when it stopped PostgreSQL (`new` is then
    /// [`NodeRole::Stopped`]). A start is `Stopped → Replica` (or `Primary`), a promotion `Replica → Primary`, a
    /// demotion `Primary → Replica` or `Primary → Stopped`. The loop waits for it: hand slow work to a task.
    async fn on_role_change(&self, _old: NodeRole, _new: NodeRole) {}
    /// Runs right before a promotion; `false` cancels it (Patroni's `pre_promote` with a non-zero exit). The driver
    /// then releases the lock so another node can take over.
    async fn pre_promote(&self) -> bool {
        true
    }
    /// Runs after each executed action, with its outcome (role-change callbacks, metrics, logs).
    async fn after_action(&self, _action: &Action, _outcome: &Outcome) {}
    /// Runs right before each action, with what this node serves until then (`serving`), and before
    /// [`Driver::shutdown`](super::Driver::shutdown) stops PostgreSQL (as an [`Action::Stop`]): the place to take a
    /// primary out of a load balancer before its connections start being refused, rather than after. The loop
    /// waits for it: keep it short.
    async fn before_action(&self, _action: &Action, _serving: NodeRole) {}
}

/// No hooks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;
impl Hooks for NoHooks {}

/// Hooks shared behind an `Arc` (the driver runs them; a reload path beside it changes their commands).
#[async_trait]
impl<T: Hooks + ?Sized> Hooks for std::sync::Arc<T> {
    async fn pre_promote(&self) -> bool {
        (**self).pre_promote().await
    }
    async fn after_action(&self, action: &Action, outcome: &Outcome) {
        (**self).after_action(action, outcome).await
    }
    async fn before_action(&self, action: &Action, serving: NodeRole) {
        (**self).before_action(action, serving).await
    }
    async fn on_role_change(&self, old: NodeRole, new: NodeRole) {
        (**self).on_role_change(old, new).await
    }
}

/// Two sets of hooks, run in order: the daemon's callbacks beside its HAProxy notifier, or a product's own hooks
/// beside the ones it reuses. A promotion goes ahead only if both `pre_promote`s agree (the second is not asked
/// when the first refused).
#[async_trait]
impl<A: Hooks, B: Hooks> Hooks for (A, B) {
    async fn pre_promote(&self) -> bool {
        self.0.pre_promote().await && self.1.pre_promote().await
    }
    async fn after_action(&self, action: &Action, outcome: &Outcome) {
        self.0.after_action(action, outcome).await;
        self.1.after_action(action, outcome).await;
    }
    async fn before_action(&self, action: &Action, serving: NodeRole) {
        self.0.before_action(action, serving).await;
        self.1.before_action(action, serving).await;
    }
    async fn on_role_change(&self, old: NodeRole, new: NodeRole) {
        self.0.on_role_change(old, new).await;
        self.1.on_role_change(old, new).await;
    }
}

/// A plain function or closure as the role-change hook (see [`Hooks::on_role_change`]): no trait to implement.
pub struct OnRoleChange<F>(pub F);

#[async_trait]
impl<F: Fn(NodeRole, NodeRole) + Send + Sync> Hooks for OnRoleChange<F> {
    async fn on_role_change(&self, old: NodeRole, new: NodeRole) {
        (self.0)(old, new)
    }
}
