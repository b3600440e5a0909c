//! The watch-fed cache (node mode): the copy of the cluster prefix that answers `load` and `watch_leader`, and when
//! it may.
//!
//! Like Patroni 4's etcd3 backend, a node keeps one long-lived watch on the cluster prefix and answers `load` from
//! the copy it feeds, so an idle loop costs one request: the lease keepalive. The watch starts right after a
//! linearizable range, from that range's revision + 1, so the copy is that snapshot plus every later change in
//! revision order, never an older state.
//!
//! Why a cached read is safe enough for the HA decision, which otherwise reads linearizably:
//! - the one change that must not be missed, the leader key going away when its lease expires, is a delete in the
//!   store like any other and arrives as a watch event;
//! - the watch carries etcd-client's `require_leader`: a member cut off from the etcd quorum cancels it, and a dead
//!   connection fails it (HTTP/2 pings), so a stream that no longer follows the store stops being trusted;
//! - the copy is only trusted while this node's lease keepalives succeed (see [`Inner::cache_trust`] and
//!   [`Inner::trusted_until`]): a node whose watch went quiet without failing (a black-holed network) learns of the
//!   outage from its next keepalive, which every loop sends and which fails; from that failure on, it reads through
//!   to etcd and gets `DcsError::Unreachable` as without a cache, until a keepalive succeeds again;
//! - a load never returns a state older than this node's own last write (see
//!   [`Seen::write_revision`](crate::seen::Seen::write_revision)).
//!
//! The task that feeds the copy is in `watch`. A CLI ([`EtcdDcs::ctl`](crate::EtcdDcs::ctl)) has no cache: its loads
//! are plain ranges.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, KeyValue};
use ha_core::dcs::DcsError;
use ha_core::model::codec::RawEntry;
use ha_core::model::Cluster;
use ha_core::sync::lock;
use tokio::time::Instant;
use tracing::{debug, info};

use crate::dcs::{Inner, Mode};
use crate::kv::{text, version_of};

/// How long a load waits for the watch to deliver this node's own last write before reading from etcd instead.
/// On a working connection the event follows the write's answer within a round trip (well under a millisecond on
/// loopback); a watch that lags more than this is not one to answer from.
const OWN_WRITE_WAIT: Duration = Duration::from_millis(200);

/// How many changes of the leader key the cache remembers for `watch_leader`: a loop makes at most two itself, and
/// a change older than the caller's snapshot no longer matters.
const LEADER_CHANGES_MAX: usize = 16;

/// One key of the prefix as the cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedKv {
    pub(crate) value: String,
    /// `mod_revision`.
    pub(crate) version: u64,
    pub(crate) lease: i64,
}

impl CachedKv {
    pub(crate) fn of(kv: &KeyValue) -> CachedKv {
        CachedKv {
            value: text(kv.value()),
            version: version_of(kv),
            lease: kv.lease(),
        }
    }
}

/// Where the cluster watch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchState {
    /// No watch task: the next load reads from etcd and starts one.
    Stopped,
    /// A task is creating the watch; the copy is not yet followed.
    Starting,
    /// etcd confirmed the watch: every change after the copy's revision will arrive, in order.
    Live,
}

/// The copy of the cluster prefix and the state of the watch that feeds it.
#[derive(Debug)]
pub(crate) struct CacheState {
    /// Full key → value, by key.
    pub(crate) entries: BTreeMap<String, CachedKv>,
    /// Every change up to this store revision is in `entries` (0: never filled).
    pub(crate) revision: i64,
    pub(crate) watch: WatchState,
    /// The number of the current watch task: a task from before a restart finds another one and leaves.
    pub(crate) generation: u64,
    pub(crate) task: Option<tokio::task::AbortHandle>,
    /// Revisions of the last changes of the leader key (events, or differences found by a range).
    pub(crate) leader_changes: VecDeque<i64>,
}

/// The watch-fed cache of a node (see the module doc). Shared by the node's clones and its watch task.
#[derive(Debug)]
pub(crate) struct Cache {
    state: std::sync::Mutex<CacheState>,
    /// Bumped after every change of `state`, so `watch_leader` and a load waiting for its own write wake up.
    pub(crate) changed: tokio::sync::watch::Sender<u64>,
    pub(crate) leader_key: String,
}

impl Cache {
    pub(crate) fn new(leader_key: String) -> Cache {
        Cache {
            state: std::sync::Mutex::new(CacheState {
                entries: BTreeMap::new(),
                revision: 0,
                watch: WatchState::Stopped,
                generation: 0,
                task: None,
                leader_changes: VecDeque::new(),
            }),
            changed: tokio::sync::watch::channel(0).0,
            leader_key,
        }
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        lock(&self.state)
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn leader_changed(st: &mut CacheState, revision: i64) {
        if st.leader_changes.len() == LEADER_CHANGES_MAX {
            st.leader_changes.pop_front();
        }
        st.leader_changes.push_back(revision);
    }

    /// Replaces the copy by a range taken at `revision`, unless the copy is already newer. A range reflects every
    /// change up to its revision, so later watch events apply on top of it and earlier ones are skipped.
    fn replace(&self, entries: BTreeMap<String, CachedKv>, revision: i64) {
        let mut st = self.state();
        if revision <= st.revision {
            return;
        }
        let before = st.entries.get(&self.leader_key).map(|kv| kv.version);
        let after = entries.get(&self.leader_key).map(|kv| kv.version);
        if before != after && st.revision > 0 {
            // Changed while the watch was down: the revision of a delete is unknown, the range's stands for it.
            Cache::leader_changed(&mut st, after.map_or(revision, |v| v as i64));
        }
        st.entries = entries;
        st.revision = revision;
        drop(st);
        self.bump();
    }

    /// Applies one watch response of task `generation`; false when that task is no longer the current one.
    pub(crate) fn apply(&self, generation: u64, resp: &etcd_client::WatchResponse) -> bool {
        let mut st = self.state();
        if st.generation != generation {
            return false;
        }
        // All events of one revision (a prefix delete removes several keys at once) come in one response, so
        // comparing with the revision before this response keeps them together.
        let base = st.revision;
        let mut top = base;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let rev = kv.mod_revision();
            if rev <= base {
                continue;
            }
            top = top.max(rev);
            let key = text(kv.key());
            if key == self.leader_key {
                Cache::leader_changed(&mut st, rev);
            }
            match ev.event_type() {
                EventType::Put => {
                    st.entries.insert(key, CachedKv::of(kv));
                }
                EventType::Delete => {
                    st.entries.remove(&key);
                }
            }
        }
        st.revision = top;
        drop(st);
        self.bump();
        true
    }

    /// Task `generation` has a confirmed watch; false when it is no longer the current one.
    pub(crate) fn went_live(&self, generation: u64) -> bool {
        let mut st = self.state();
        if st.generation != generation {
            return false;
        }
        st.watch = WatchState::Live;
        drop(st);
        self.bump();
        true
    }

    /// Task `generation` ended: the copy is no longer followed, loads read from etcd until a new watch is live.
    pub(crate) fn stopped(&self, generation: u64, why: &str) {
        let mut st = self.state();
        if st.generation != generation {
            return;
        }
        info!(
            reason = why,
            "the cluster watch stopped; loads read from etcd until it is back"
        );
        st.watch = WatchState::Stopped;
        st.task = None;
        drop(st);
        self.bump();
    }
}

impl Inner {
    pub(crate) async fn do_load(self: &Arc<Self>) -> Result<Cluster, DcsError> {
        if self.mode == Mode::Ctl {
            let (entries, revision) = self.range_prefix().await?;
            return Ok(self.snapshot(&entries, revision));
        }
        if let Some((entries, revision)) = self.cached().await {
            return Ok(self.snapshot(&entries, revision));
        }
        let (entries, revision) = self.range_prefix().await?;
        let cluster = self.snapshot(&entries, revision);
        self.cache.replace(entries, revision);
        self.ensure_watch();
        Ok(cluster)
    }

    /// How long after the last successful lease keepalive the cache is still trusted: `ttl - retry_timeout`, at
    /// least `ttl / 2`.
    ///
    /// By the timing rule `loop_wait + 2 * retry_timeout <= ttl`, `ttl - retry_timeout` is longer than a loop_wait
    /// plus a retry_timeout, so at idle the keepalive of the previous loop always qualifies; a node that has not
    /// reached etcd for longer than that has seen its keepalive fail and reads through (an outage then surfaces
    /// as `Unreachable` from `load` too, as the driver expects). The `ttl / 2` floor is for settings outside
    /// the rule (tests with ttl = retry_timeout). Why the keepalive and not any contact: it is the one request
    /// every loop of every node sends (renew, or touch_member), and the lease is what ends a node's
    /// membership; a client without a live lease (a node before its first touch_member) always reads through.
    fn cache_trust(&self, ttl: Duration) -> Duration {
        ttl.saturating_sub(self.conn.timeout()).max(ttl / 2)
    }

    /// Until when the cache may answer: [`Inner::cache_trust`] after the last successful keepalive, and not at all
    /// once a request failed after it (etcd unreachable): a black-holed network leaves a watch silent but not
    /// failed, and the first failed request is how this node learns of it. `None`: read from etcd.
    pub(crate) fn trusted_until(&self) -> Option<Instant> {
        let (alive_at, ttl) = {
            let seen = self.seen();
            (seen.lease_alive_at?, seen.ttl)
        };
        if self.conn.last_unreachable().is_some_and(|f| f >= alive_at) {
            return None;
        }
        Some(alive_at + self.cache_trust(ttl)).filter(|t| *t > Instant::now())
    }

    /// The cached copy and its revision, if it may answer a load now: the watch is live, the cache is trusted
    /// ([`Inner::trusted_until`]), the copy is not older than anything etcd told us, and it holds our own last
    /// write (waiting up to [`OWN_WRITE_WAIT`] for its event). `None`: read from etcd.
    async fn cached(&self) -> Option<(BTreeMap<String, CachedKv>, i64)> {
        if self.trusted_until().is_none() {
            debug!("no recent lease keepalive, or a failed request since: reading from etcd");
            return None;
        }
        let (write_revision, answer_revision) = {
            let seen = self.seen();
            (seen.write_revision, seen.answer_revision)
        };
        let mut changed = self.cache.changed.subscribe();
        let deadline = Instant::now() + OWN_WRITE_WAIT;
        loop {
            {
                let st = self.cache.state();
                if st.watch != WatchState::Live || st.revision < answer_revision {
                    return None;
                }
                if st.revision >= write_revision {
                    return Some((st.entries.clone(), st.revision));
                }
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    debug!(
                        write_revision,
                        "the watch has not delivered our own write yet: reading from etcd"
                    );
                    return None;
                }
            }
        }
    }

    /// A cluster snapshot of the prefix `entries` at `revision`; remembers what the lease shortcuts and the watch
    /// need from it.
    fn snapshot(&self, entries: &BTreeMap<String, CachedKv>, revision: i64) -> Cluster {
        let me = match &self.mode {
            Mode::Node { name } => Some(self.keys.member(name)),
            Mode::Ctl => None,
        };
        let leader_key = &self.cache.leader_key;
        let mut seen_leader = None;
        let mut seen_member = None;
        let mut loaded_leader_version = None;
        let mut raw = Vec::with_capacity(entries.len());
        for (full, kv) in entries {
            let Some(rel) = self.keys.relative(full) else {
                continue;
            };
            if full == leader_key {
                seen_leader = Some((kv.value.clone(), kv.lease));
                loaded_leader_version = Some(kv.version);
            }
            if Some(full) == me.as_ref() {
                seen_member = Some((kv.value.clone(), kv.lease));
            }
            raw.push(RawEntry {
                key: rel.to_string(),
                value: kv.value.clone(),
                version: kv.version,
                session: (kv.lease != 0).then(|| kv.lease.to_string()),
            });
        }
        {
            let mut seen = self.seen();
            seen.load_revision = revision;
            seen.loaded_leader_version = loaded_leader_version;
            seen.leader = seen_leader;
            seen.member = seen_member;
        }
        Cluster::from_entries(raw)
    }
}
