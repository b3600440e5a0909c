//! What this client's own loads and writes told it, kept to save round trips the way Patroni's cache does: the
//! leader and member keys as last seen (a renew or a touch_member that would change nothing sends no write), the
//! revisions of our own leader writes (`watch_leader` does not wake for them), the revisions a load must not fall
//! behind (read-your-writes), and when the lease was last known alive (the proof the cache may answer).

use std::collections::VecDeque;
use std::time::Duration;

use ha_core::sync::lock;
use tokio::time::Instant;

use crate::dcs::Inner;

/// How many of our own writes to the leader key are remembered, so the watch does not wake this node for a change
/// it made itself. A loop writes the leader key at most twice.
const OWN_LEADER_WRITES_MAX: usize = 8;

/// What the last load (and our own writes since) told us, to save round trips the way Patroni's cache does.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The store revision of the last load: the watch starts right after it, so no change is missed.
    pub(crate) load_revision: i64,
    /// The leader key's mod_revision in the last load (the driver's `known_version`).
    pub(crate) loaded_leader_version: Option<u64>,
    /// The leader key as last seen: (value, lease).
    pub(crate) leader: Option<(String, i64)>,
    /// Our member key as last seen: (value, lease).
    pub(crate) member: Option<(String, i64)>,
    /// Revisions at which we wrote or deleted the leader key ourselves.
    pub(crate) own_leader_writes: VecDeque<i64>,
    /// The highest revision at which this client changed a key of the prefix: the watch will deliver it, and a load
    /// must not answer before the cache holds it (read-your-writes).
    pub(crate) write_revision: i64,
    /// The highest store revision etcd answered a request of ours without a change of ours (a lost compare-and-set,
    /// a delete of nothing): no event of ours will come, and the revision may belong to a key outside the prefix
    /// which the watch never reports, so a cache behind it reads through to etcd instead of waiting.
    pub(crate) answer_revision: i64,
    /// When the request of the last successful lease grant or keepalive was sent: the proof the cache may be used.
    pub(crate) lease_alive_at: Option<Instant>,
    /// The lease length asked for (`set_ttl`), which bounds how long the cache is trusted without a keepalive.
    pub(crate) ttl: Duration,
}

impl Seen {
    pub(crate) fn own_leader_write(&mut self, revision: i64) {
        if self.own_leader_writes.len() == OWN_LEADER_WRITES_MAX {
            self.own_leader_writes.pop_front();
        }
        self.own_leader_writes.push_back(revision);
    }
}

impl Inner {
    pub(crate) fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        lock(&self.seen)
    }

    /// We changed the prefix at `revision`: the next load must show it.
    pub(crate) fn wrote(&self, revision: i64) {
        let mut seen = self.seen();
        seen.write_revision = seen.write_revision.max(revision);
    }

    /// etcd answered us at `revision` without a change of ours: the next load must not show an older state.
    pub(crate) fn answered(&self, revision: i64) {
        let mut seen = self.seen();
        seen.answer_revision = seen.answer_revision.max(revision);
    }
}
