//! [`EtcdDcs`]: the [`Dcs`] trait over etcd v3, with Patroni's etcd3 semantics so a Patroni node and a hactl node
//! read each other's keys.
//!
//! One lease per process, TTL = ttl; `leader` and `members/<name>` are put with it, no other key is. The lease is
//! the liveness: keepalives renew it, and when the process stops they stop, the lease expires and etcd deletes both
//! keys. The object version everywhere is the key's `mod_revision`; a key's session is its lease id.
//!
//! # The watch-fed cache (node mode)
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
//! - a load never returns a state older than this node's own last write (see [`Seen::write_revision`]).
//!
//! A CLI ([`EtcdDcs::ctl`]) runs once and has no lease: it reads with plain ranges and starts no task.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue,
    PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use ha_core::dcs::{Dcs, DcsError, WatchOutcome};
use ha_core::model::codec::{keys, to_json, KeyPath, RawEntry};
use ha_core::model::{
    Cluster, Failover, GlobalConfig, HistoryEntry, MemberData, Status, SyncState,
};
use ha_core::sync::lock;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument, Span};

use crate::conn::Conn;
use crate::error::{EtcdDcsError, Failure};
use crate::settings::{endpoint_url, EtcdSettings};

/// Patroni's default ttl (30 s): the lease length until the driver calls `set_ttl` with the configured one.
const DEFAULT_TTL_S: i64 = 30;

/// A lease refreshed less than this long ago is not refreshed again before an acquire or a member write. The
/// driver counts its lock from the moment the acquire was *sent*, minus a safety margin of at least 1 s, while etcd
/// counts the lease from its last keepalive: skipping a keepalive younger than half a second keeps etcd's expiry
/// later than the driver's deadline, and saves a round trip when renew and touch_member follow each other.
const LEASE_FRESH: Duration = Duration::from_millis(500);

/// HTTP/2 pings on an idle connection, so a dead connection is noticed without a request. Not below etcd's
/// `--grpc-keepalive-min-time` (5 s by default): a client that pings more often is disconnected ("too_many_pings").
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

/// How many of our own writes to the leader key are remembered, so the watch does not wake this node for a change
/// it made itself. A loop writes the leader key at most twice.
const OWN_LEADER_WRITES_MAX: usize = 8;

/// How long a load waits for the watch to deliver this node's own last write before reading from etcd instead.
/// On a working connection the event follows the write's answer within a round trip (well under a millisecond on
/// loopback); a watch that lags more than this is not one to answer from.
const OWN_WRITE_WAIT: Duration = Duration::from_millis(200);

/// How many changes of the leader key the cache remembers for `watch_leader`: a loop makes at most two itself, and
/// a change older than the caller's snapshot no longer matters.
const LEADER_CHANGES_MAX: usize = 16;

/// Node mode (a daemon with a lease) or ctl mode (a CLI: reads and compare-and-set writes, no lease).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Node { name: String },
    Ctl,
}

/// Our lease: which one, how long, when it was last known alive.
#[derive(Debug)]
struct LeaseState {
    id: Option<i64>,
    ttl_s: i64,
    /// When the request of the last successful grant or keepalive was sent (etcd's expiry is later than this + ttl).
    refreshed_at: Option<Instant>,
}

/// What the last load (and our own writes since) told us, to save round trips the way Patroni's cache does.
#[derive(Debug, Default)]
struct Seen {
    /// The store revision of the last load: the watch starts right after it, so no change is missed.
    load_revision: i64,
    /// The leader key's mod_revision in the last load (the driver's `known_version`).
    loaded_leader_version: Option<u64>,
    /// The leader key as last seen: (value, lease).
    leader: Option<(String, i64)>,
    /// Our member key as last seen: (value, lease).
    member: Option<(String, i64)>,
    /// Revisions at which we wrote or deleted the leader key ourselves.
    own_leader_writes: VecDeque<i64>,
    /// The highest revision at which this client changed a key of the prefix: the watch will deliver it, and a load
    /// must not answer before the cache holds it (read-your-writes).
    write_revision: i64,
    /// The highest store revision etcd answered a request of ours without a change of ours (a lost compare-and-set,
    /// a delete of nothing): no event of ours will come, and the revision may belong to a key outside the prefix
    /// which the watch never reports, so a cache behind it reads through to etcd instead of waiting.
    answer_revision: i64,
    /// When the request of the last successful lease grant or keepalive was sent: the proof the cache may be used.
    lease_alive_at: Option<Instant>,
    /// The lease length asked for (`set_ttl`), which bounds how long the cache is trusted without a keepalive.
    ttl: Duration,
}

impl Seen {
    fn own_leader_write(&mut self, revision: i64) {
        if self.own_leader_writes.len() == OWN_LEADER_WRITES_MAX {
            self.own_leader_writes.pop_front();
        }
        self.own_leader_writes.push_back(revision);
    }
}

/// One key of the prefix as the cache holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedKv {
    value: String,
    /// `mod_revision`.
    version: u64,
    lease: i64,
}

impl CachedKv {
    fn of(kv: &KeyValue) -> CachedKv {
        CachedKv {
            value: text(kv.value()),
            version: version_of(kv),
            lease: kv.lease(),
        }
    }
}

/// Where the cluster watch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchState {
    /// No watch task: the next load reads from etcd and starts one.
    Stopped,
    /// A task is creating the watch; the copy is not yet followed.
    Starting,
    /// etcd confirmed the watch: every change after the copy's revision will arrive, in order.
    Live,
}

/// The copy of the cluster prefix and the state of the watch that feeds it.
#[derive(Debug)]
struct CacheState {
    /// Full key → value, by key.
    entries: BTreeMap<String, CachedKv>,
    /// Every change up to this store revision is in `entries` (0: never filled).
    revision: i64,
    watch: WatchState,
    /// The number of the current watch task: a task from before a restart finds another one and leaves.
    generation: u64,
    task: Option<tokio::task::AbortHandle>,
    /// Revisions of the last changes of the leader key (events, or differences found by a range).
    leader_changes: VecDeque<i64>,
}

/// The watch-fed cache of a node (see the module doc). Shared by the node's clones and its watch task.
#[derive(Debug)]
struct Cache {
    state: std::sync::Mutex<CacheState>,
    /// Bumped after every change of `state`, so `watch_leader` and a load waiting for its own write wake up.
    changed: tokio::sync::watch::Sender<u64>,
    leader_key: String,
}

impl Cache {
    fn new(leader_key: String) -> Cache {
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

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
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
    fn apply(&self, generation: u64, resp: &etcd_client::WatchResponse) -> bool {
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
    fn went_live(&self, generation: u64) -> bool {
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
    fn stopped(&self, generation: u64, why: &str) {
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

/// The [`Dcs`] of one node (or of a CLI, see [`EtcdDcs::ctl`]) over etcd v3. Cloning is cheap and shares
/// everything (connections, lease, counters): the driver can own one clone while a REST API or a benchmark keeps
/// another.
#[derive(Clone)]
pub struct EtcdDcs {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    keys: KeyPath,
    mode: Mode,
    scope: String,
    lease: tokio::sync::Mutex<LeaseState>,
    seen: std::sync::Mutex<Seen>,
    /// The watch-fed copy of the prefix; unused in ctl mode.
    cache: Arc<Cache>,
    /// The deadline of every call (retry_timeout).
    request_timeout: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The watch task holds only the cache, not the client: the last clone going away ends it.
        if let Some(task) = self.cache.state().task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for EtcdDcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDcs")
            .field("prefix", &self.inner.keys.prefix())
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

fn version_of(kv: &KeyValue) -> u64 {
    kv.mod_revision().max(0) as u64
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl EtcdDcs {
    /// A node's DCS: it owns a lease (granted on first use) for its leader and member keys. No network traffic
    /// happens here, so a node can start while etcd is down; the first call that needs etcd connects.
    pub fn new(settings: EtcdSettings) -> Result<EtcdDcs, EtcdDcsError> {
        settings.validate(true)?;
        let mode = Mode::Node {
            name: settings.name.clone(),
        };
        EtcdDcs::build(settings, mode)
    }

    /// A lease-less DCS for a `patronictl`-like CLI: loads, watches, and compare-and-set writes of `config`,
    /// `failover`, `sync`, `history`, member and cluster removal. The lease operations (acquire, renew,
    /// touch_member) answer `DcsError::Rejected`: a CLI that held a lease would hold it only while it runs.
    pub fn ctl(settings: EtcdSettings) -> Result<EtcdDcs, EtcdDcsError> {
        settings.validate(false)?;
        EtcdDcs::build(settings, Mode::Ctl)
    }

    fn build(settings: EtcdSettings, mode: Mode) -> Result<EtcdDcs, EtcdDcsError> {
        let endpoints = settings
            .endpoints
            .iter()
            .map(|e| endpoint_url(e))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = settings.request_timeout;
        // A member without a leader (cut off from the others) refuses requests instead of answering stale data
        // or hanging; the call then moves to the next endpoint.
        let mut options = ConnectOptions::new()
            .with_require_leader(true)
            .with_connect_timeout(timeout)
            .with_keep_alive(HTTP2_PING_INTERVAL, timeout);
        if let Some(user) = &settings.username {
            options = options
                .with_user(user.clone(), settings.password.clone().unwrap_or_default())
                .with_auto_token_refresh(true);
        }
        let key_path = KeyPath::new(&settings.namespace, &settings.scope);
        let leader_key = key_path.key(keys::LEADER);
        Ok(EtcdDcs {
            inner: Arc::new(Inner {
                conn: Conn::new(endpoints, options, timeout),
                keys: key_path,
                mode,
                scope: settings.scope.trim_matches('/').to_string(),
                lease: tokio::sync::Mutex::new(LeaseState {
                    id: None,
                    ttl_s: DEFAULT_TTL_S,
                    refreshed_at: None,
                }),
                seen: std::sync::Mutex::new(Seen {
                    ttl: Duration::from_secs(DEFAULT_TTL_S as u64),
                    ..Seen::default()
                }),
                cache: Arc::new(Cache::new(leader_key)),
                request_timeout: timeout,
            }),
        })
    }

    /// The RPCs this client has sent (every attempt on every endpoint, watches included): the benchmark's count of
    /// DCS round trips.
    pub fn requests(&self) -> u64 {
        self.inner.conn.requests()
    }

    /// [`EtcdDcs::requests`] per operation (`load`, `lease_keepalive`, `acquire_leader`, `watch_leader`, ...;
    /// `watch` is the creation of the cluster watch that feeds the cache, `load` a read that the cache could not
    /// answer).
    pub fn requests_by_op(&self) -> BTreeMap<&'static str, u64> {
        self.inner.conn.requests_by_op()
    }

    /// The lease this node holds now, if one was granted (`Leader.session` of a key we hold).
    pub async fn lease_id(&self) -> Option<i64> {
        self.inner.lease.lock().await.id
    }

    /// The cluster prefix, `/<namespace>/<scope>/`.
    pub fn key_path(&self) -> &KeyPath {
        &self.inner.keys
    }
}

impl Inner {
    fn span(&self, op: &'static str) -> Span {
        let node = match &self.mode {
            Mode::Node { name } => name.as_str(),
            Mode::Ctl => "ctl",
        };
        info_span!("etcd_dcs", node = %node, cluster = %self.scope, op)
    }

    fn node_name(&self, op: &str) -> Result<&str, DcsError> {
        match &self.mode {
            Mode::Node { name } => Ok(name),
            Mode::Ctl => Err(DcsError::Rejected(format!(
                "{op}: a ctl-mode client has no lease"
            ))),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        lock(&self.seen)
    }

    // ---- the lease -------------------------------------------------------------------------------------------

    async fn grant(&self, st: &mut LeaseState) -> Result<i64, DcsError> {
        let ttl = st.ttl_s;
        let sent = Instant::now();
        let resp = self
            .conn
            .call("lease_grant", |mut c: Client| async move {
                c.lease_grant(ttl, None).await
            })
            .await
            .map_err(|f| f.into_dcs("lease_grant"))?;
        info!(lease = resp.id(), ttl_s = resp.ttl(), "granted a new lease");
        st.id = Some(resp.id());
        st.refreshed_at = Some(sent);
        self.seen().lease_alive_at = Some(sent);
        Ok(resp.id())
    }

    /// Makes sure we hold a live lease refreshed less than `max_age` ago (`Duration::ZERO`: refresh now). A lease
    /// etcd no longer knows (expired while we were cut off) is replaced by a new one.
    async fn fresh_lease(&self, max_age: Duration) -> Result<i64, DcsError> {
        let mut st = self.lease.lock().await;
        let Some(id) = st.id else {
            return self.grant(&mut st).await;
        };
        if let Some(at) = st.refreshed_at {
            if !max_age.is_zero() && at.elapsed() < max_age {
                return Ok(id);
            }
        }
        let sent = Instant::now();
        let r = self
            .conn
            .call("lease_keepalive", |mut c: Client| async move {
                c.lease_keep_alive(id).await.map(|_| ())
            })
            .await;
        match r {
            Ok(()) => {
                st.refreshed_at = Some(sent);
                self.seen().lease_alive_at = Some(sent);
                Ok(id)
            }
            Err(Failure::LeaseNotFound) => {
                warn!(lease = id, "our lease expired; granting a new one");
                st.id = None;
                self.seen().lease_alive_at = None;
                self.grant(&mut st).await
            }
            Err(f) => Err(f.into_dcs("lease_keepalive")),
        }
    }

    /// Forgets `id` if it is still our lease, so the next use grants a new one.
    async fn drop_lease(&self, id: i64) {
        let mut st = self.lease.lock().await;
        if st.id == Some(id) {
            st.id = None;
            st.refreshed_at = None;
            self.seen().lease_alive_at = None;
        }
    }

    // ---- plain requests --------------------------------------------------------------------------------------

    async fn put(&self, op: &'static str, key: String, value: String) -> Result<i64, DcsError> {
        let resp = self
            .conn
            .call(op, |mut c: Client| {
                let (k, v) = (key.clone(), value.clone());
                async move { c.put(k, v, None).await }
            })
            .await
            .map_err(|f| f.into_dcs(op))?;
        let revision = revision_of(resp.header());
        self.wrote(revision);
        Ok(revision)
    }

    async fn delete(&self, op: &'static str, key: String, prefix: bool) -> Result<(), DcsError> {
        let resp = self
            .conn
            .call(op, |mut c: Client| {
                let k = key.clone();
                let opts = prefix.then(|| DeleteOptions::new().with_prefix());
                async move { c.delete(k, opts).await }
            })
            .await
            .map_err(|f| f.into_dcs(op))?;
        let revision = revision_of(resp.header());
        if resp.deleted() > 0 {
            self.wrote(revision);
        } else {
            self.answered(revision);
        }
        Ok(())
    }

    /// A transaction; every one of ours writes in its success branch only, which tells whether an event follows.
    async fn txn(&self, op: &'static str, txn: Txn) -> Result<etcd_client::TxnResponse, Failure> {
        let resp = self
            .conn
            .call(op, |mut c: Client| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        let revision = revision_of(resp.header());
        if resp.succeeded() {
            self.wrote(revision);
        } else {
            self.answered(revision);
        }
        Ok(resp)
    }

    /// We changed the prefix at `revision`: the next load must show it.
    fn wrote(&self, revision: i64) {
        let mut seen = self.seen();
        seen.write_revision = seen.write_revision.max(revision);
    }

    /// etcd answered us at `revision` without a change of ours: the next load must not show an older state.
    fn answered(&self, revision: i64) {
        let mut seen = self.seen();
        seen.answer_revision = seen.answer_revision.max(revision);
    }

    /// Puts `key` with our lease; if etcd no longer knows the lease, grants a new one and tries once more
    /// (Patroni's etcd3 does the same on `LeaseNotFound`).
    async fn put_leased(&self, op: &'static str, key: &str, value: &str) -> Result<i64, DcsError> {
        for attempt in 0..2 {
            let lease = self.fresh_lease(LEASE_FRESH).await?;
            let r = self
                .conn
                .call(op, |mut c: Client| {
                    let (k, v) = (key.to_string(), value.to_string());
                    async move { c.put(k, v, Some(PutOptions::new().with_lease(lease))).await }
                })
                .await;
            match r {
                Ok(resp) => {
                    let revision = revision_of(resp.header());
                    self.wrote(revision);
                    return Ok(revision);
                }
                Err(Failure::LeaseNotFound) if attempt == 0 => self.drop_lease(lease).await,
                Err(f) => return Err(f.into_dcs(op)),
            }
        }
        Err(Failure::LeaseNotFound.into_dcs(op))
    }

    /// `put` unconditionally (`version: None`) or as a compare-and-set on the key's mod_revision.
    async fn write_versioned(
        &self,
        op: &'static str,
        rel: &str,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        let key = self.keys.key(rel);
        let Some(v) = version else {
            return self.put(op, key, value).await.map(|_| ());
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                v as i64,
            )])
            .and_then([TxnOp::put(key.clone(), value, None)]);
        let resp = self.txn(op, txn).await.map_err(|f| f.into_dcs(op))?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(DcsError::Conflict(format!(
                "{op}: {key} is no longer at version {v}"
            )))
        }
    }

    // ---- the trait's operations, each run inside its span ----------------------------------------------------

    async fn do_load(self: &Arc<Self>) -> Result<Cluster, DcsError> {
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

    /// The whole prefix, read linearizably (not Patroni's serializable): the read goes through the etcd leader, so
    /// a member that lags cannot show this node a leader key that is already gone. It is one round trip.
    async fn range_prefix(&self) -> Result<(BTreeMap<String, CachedKv>, i64), DcsError> {
        let prefix = self.keys.prefix().to_string();
        let mut resp = self
            .conn
            .call("load", |mut c: Client| {
                let p = prefix.clone();
                async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
            })
            .await
            .map_err(|f| f.into_dcs("load"))?;
        let revision = revision_of(resp.header());
        let entries = resp
            .take_kvs()
            .into_iter()
            .map(|kv| (text(kv.key()), CachedKv::of(&kv)))
            .collect();
        Ok((entries, revision))
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
        ttl.saturating_sub(self.request_timeout).max(ttl / 2)
    }

    /// Until when the cache may answer: [`Inner::cache_trust`] after the last successful keepalive, and not at all
    /// once a request failed after it (etcd unreachable): a black-holed network leaves a watch silent but not
    /// failed, and the first failed request is how this node learns of it. `None`: read from etcd.
    fn trusted_until(&self) -> Option<Instant> {
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

    /// Starts the watch task if none runs, from the cache's revision + 1 (the cache was just filled by a range).
    fn ensure_watch(self: &Arc<Self>) {
        let mut st = self.cache.state();
        if st.watch != WatchState::Stopped || st.revision == 0 {
            return;
        }
        st.generation += 1;
        st.watch = WatchState::Starting;
        let node = match &self.mode {
            Mode::Node { name } => name.as_str(),
            Mode::Ctl => "ctl",
        };
        // A root span: the task outlives the load that started it.
        let span =
            info_span!(parent: None, "etcd_dcs", node = %node, cluster = %self.scope, op = "watch");
        let task = tokio::spawn(
            run_watch(Arc::downgrade(self), st.generation, st.revision + 1).instrument(span),
        );
        st.task = Some(task.abort_handle());
    }

    async fn do_set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        if self.mode == Mode::Ctl {
            return Ok(());
        }
        let ttl_s = (ttl.as_secs_f64().ceil() as i64).max(1);
        let mut st = self.lease.lock().await;
        if st.ttl_s != ttl_s {
            // Patroni's etcd3 does the same: the next use grants a lease of the new length; the keys on the old one
            // move to the new one with the next renew and touch_member; the old lease is left to expire.
            info!(
                from_s = st.ttl_s,
                to_s = ttl_s,
                "ttl changed: a new lease will be granted"
            );
            st.ttl_s = ttl_s;
            st.id = None;
            st.refreshed_at = None;
            let mut seen = self.seen();
            seen.ttl = Duration::from_secs(ttl_s as u64);
            seen.lease_alive_at = None;
        }
        Ok(())
    }

    async fn do_initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        let key = self.keys.key(keys::INITIALIZE);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self
            .txn("initialize_race", txn)
            .await
            .map_err(|f| f.into_dcs("initialize_race"))?;
        Ok(resp.succeeded())
    }

    async fn do_acquire(&self, name: &str) -> Result<bool, DcsError> {
        let key = self.keys.key(keys::LEADER);
        for attempt in 0..2 {
            let lease = self.fresh_lease(LEASE_FRESH).await?;
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    name,
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key.clone(), None)]);
            match self.txn("acquire_leader", txn).await {
                Ok(resp) => {
                    let revision = revision_of(resp.header());
                    let mut seen = self.seen();
                    if resp.succeeded() {
                        seen.own_leader_write(revision);
                        seen.leader = Some((name.to_string(), lease));
                        return Ok(true);
                    }
                    let holder = resp.op_responses().into_iter().find_map(|r| match r {
                        TxnOpResponse::Get(g) => {
                            g.kvs().first().map(|kv| (text(kv.value()), kv.lease()))
                        }
                        _ => None,
                    });
                    // Our own earlier attempt may have landed although its answer was lost (a timeout, then the
                    // same request again on another endpoint): the key with our name on our lease is ours.
                    let ours = holder.as_ref() == Some(&(name.to_string(), lease));
                    seen.leader = holder;
                    return Ok(ours);
                }
                Err(Failure::LeaseNotFound) if attempt == 0 => self.drop_lease(lease).await,
                Err(f) => return Err(f.into_dcs("acquire_leader")),
            }
        }
        Err(Failure::LeaseNotFound.into_dcs("acquire_leader"))
    }

    async fn do_renew(&self, name: &str) -> Result<bool, DcsError> {
        let key = self.keys.key(keys::LEADER);
        for attempt in 0..2 {
            // Always a keepalive: the driver counts the lock from this call, so the lease must be refreshed now.
            let lease = self.fresh_lease(Duration::ZERO).await?;
            if self.seen().leader.as_ref() == Some(&(name.to_string(), lease)) {
                return Ok(true);
            }
            // The key is not on our current lease (a ttl change, a restart, a lost lease): move it to ours, but only
            // if it still names us. An absent key is not re-created: the lock was lost.
            let txn = Txn::new()
                .when([Compare::value(key.clone(), CompareOp::Equal, name)])
                .and_then([TxnOp::put(
                    key.clone(),
                    name,
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            match self.txn("renew_leader", txn).await {
                Ok(resp) => {
                    let mut seen = self.seen();
                    if resp.succeeded() {
                        debug!(lease, "moved the leader key to our lease");
                        seen.own_leader_write(revision_of(resp.header()));
                        seen.leader = Some((name.to_string(), lease));
                        return Ok(true);
                    }
                    seen.leader = None;
                    return Ok(false);
                }
                Err(Failure::LeaseNotFound) if attempt == 0 => self.drop_lease(lease).await,
                Err(f) => return Err(f.into_dcs("renew_leader")),
            }
        }
        Err(Failure::LeaseNotFound.into_dcs("renew_leader"))
    }

    async fn do_release(&self, name: &str) -> Result<(), DcsError> {
        let key = self.keys.key(keys::LEADER);
        let txn = Txn::new()
            .when([Compare::value(key.clone(), CompareOp::Equal, name)])
            .and_then([TxnOp::delete(key, None)]);
        let resp = self
            .txn("release_leader", txn)
            .await
            .map_err(|f| f.into_dcs("release_leader"))?;
        let mut seen = self.seen();
        if resp.succeeded() {
            seen.own_leader_write(revision_of(resp.header()));
            seen.leader = None;
        }
        Ok(())
    }

    async fn do_touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        let value = to_json(data);
        // Keeps the lease alive on every loop (a replica has no other keepalive), unless renew just did.
        let lease = self.fresh_lease(LEASE_FRESH).await?;
        let is_me = self.mode
            == Mode::Node {
                name: name.to_string(),
            };
        if is_me && self.seen().member.as_ref() == Some(&(value.clone(), lease)) {
            // Unchanged and on our live lease: Patroni skips the write too.
            return Ok(());
        }
        let key = self.keys.member(name);
        self.put_leased("touch_member", &key, &value).await?;
        if is_me {
            let lease = self.lease.lock().await.id.unwrap_or(0);
            self.seen().member = Some((value, lease));
        }
        Ok(())
    }

    async fn do_delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.delete("delete_member", self.keys.member(name), false)
            .await?;
        if self.mode
            == (Mode::Node {
                name: name.to_string(),
            })
        {
            self.seen().member = None;
        }
        Ok(())
    }

    async fn do_delete_cluster(&self) -> Result<(), DcsError> {
        self.delete("delete_cluster", self.keys.prefix().to_string(), true)
            .await?;
        let mut seen = self.seen();
        seen.leader = None;
        seen.member = None;
        Ok(())
    }

    /// `watch_leader` of a node: waits on the cache while its watch is live and trusted (no request at all), and
    /// with a Watch RPC of its own for the rest of the time when it is not (ctl mode, before the first load or
    /// keepalive, after the watch or a request failed), so the semantics do not depend on the cache.
    async fn do_watch(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        if timeout.is_zero() {
            return Ok(WatchOutcome::TimedOut);
        }
        let end = Instant::now() + timeout;
        if self.mode != Mode::Ctl {
            let mut changed = self.cache.changed.subscribe();
            loop {
                // The caller's snapshot is the last load when the versions agree: then every leader change after
                // that load's revision counts; otherwise compare the cached leader version with the caller's.
                let (base, own) = {
                    let seen = self.seen();
                    let base = (seen.load_revision > 0
                        && seen.loaded_leader_version == known_version)
                        .then_some(seen.load_revision);
                    (base, seen.own_leader_writes.clone())
                };
                let Some(trusted_until) = self.trusted_until() else {
                    break;
                };
                {
                    let st = self.cache.state();
                    if st.watch != WatchState::Live {
                        break;
                    }
                    let foreign = match base {
                        Some(b) => st.leader_changes.iter().any(|r| *r > b && !own.contains(r)),
                        None => {
                            let current =
                                st.entries.get(&self.cache.leader_key).map(|kv| kv.version);
                            current != known_version
                                && !current.is_some_and(|v| own.contains(&(v as i64)))
                        }
                    };
                    if foreign {
                        debug!("leader key changed (cluster watch)");
                        return Ok(WatchOutcome::LeaderChanged);
                    }
                }
                match tokio::time::timeout_at(end.min(trusted_until), changed.changed()).await {
                    Err(_) if trusted_until >= end => return Ok(WatchOutcome::TimedOut),
                    // No longer trusted: the rest of the wait is a Watch RPC.
                    Err(_) => break,
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                }
            }
        }
        self.watch_rpc(known_version, end.saturating_duration_since(Instant::now()))
            .await
    }

    /// `watch_leader` with a Watch RPC on the leader key, for `timeout`.
    async fn watch_rpc(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        if timeout.is_zero() {
            return Ok(WatchOutcome::TimedOut);
        }
        let end = Instant::now() + timeout;
        let key = self.keys.key(keys::LEADER);
        // Each request keeps its full deadline; only the caller's `timeout` cuts it short, and then the answer is
        // "nothing changed yet": a request cut by the caller says nothing about the endpoint, so its connection is
        // kept. An endpoint that fails within the deadline is an error as for any other call.
        //
        // Start right after the snapshot the caller decided on, so a change in between is seen at once.
        let cached = {
            let seen = self.seen();
            (seen.load_revision > 0 && seen.loaded_leader_version == known_version)
                .then_some(seen.load_revision + 1)
        };
        let from = match cached {
            Some(rev) => rev,
            None => {
                let get = self.conn.call("watch_leader", |mut c: Client| {
                    let k = key.clone();
                    async move { c.get(k, None).await }
                });
                let resp = match tokio::time::timeout(timeout, get).await {
                    Err(_) => return Ok(WatchOutcome::TimedOut),
                    Ok(r) => r.map_err(|f| f.into_dcs("watch_leader"))?,
                };
                let current = resp.kvs().first().map(version_of);
                if current != known_version {
                    return Ok(WatchOutcome::LeaderChanged);
                }
                revision_of(resp.header()) + 1
            }
        };
        let create = self.conn.call("watch_leader", |mut c: Client| {
            let k = key.clone();
            async move {
                let mut s = c
                    .watch(k, Some(WatchOptions::new().with_start_revision(from)))
                    .await?;
                let first = s.message().await?;
                Ok((s, first))
            }
        });
        let left = end.saturating_duration_since(Instant::now());
        let (mut stream, first) = match tokio::time::timeout(left, create).await {
            Err(_) => return Ok(WatchOutcome::TimedOut),
            Ok(r) => r.map_err(|f| f.into_dcs("watch_leader"))?,
        };
        let mut next = first;
        loop {
            match next {
                None => {
                    return Err(DcsError::Unreachable(
                        "watch_leader: the watch stream closed".into(),
                    ))
                }
                Some(resp) => {
                    if resp.canceled() {
                        // Compacted past our revision, or cancelled by the server: reloading is the safe answer.
                        debug!(reason = resp.cancel_reason(), "watch cancelled by etcd");
                        return Ok(WatchOutcome::LeaderChanged);
                    }
                    let seen = self.seen();
                    let foreign = resp.events().iter().any(|ev| {
                        let rev = ev.kv().map_or(0, |kv| kv.mod_revision());
                        let own = seen.own_leader_writes.contains(&rev);
                        if !own {
                            debug!(
                                kind = if ev.event_type() == EventType::Put {
                                    "put"
                                } else {
                                    "delete"
                                },
                                rev, "leader key changed"
                            );
                        }
                        !own
                    });
                    if foreign {
                        return Ok(WatchOutcome::LeaderChanged);
                    }
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.message()).await {
                Err(_) => return Ok(WatchOutcome::TimedOut),
                Ok(Ok(m)) => next = m,
                Ok(Err(e)) => {
                    return Err(DcsError::Unreachable(format!(
                        "watch_leader: the watch stream failed: {e}"
                    )))
                }
            }
        }
    }
}

/// The cluster watch of task `generation`: creates the watch from `from` (through the connection's endpoint
/// failover), then applies every response to the cache until the stream fails, closes or is cancelled (a
/// compaction past `from`, or etcd's "no leader" under `require_leader`). It then marks the cache stopped and ends:
/// the next load reads from etcd and starts a new watch from that range, so a failed watch costs no requests of its
/// own during an outage. It holds only a weak reference to the client, so dropping the client ends it.
async fn run_watch(inner: std::sync::Weak<Inner>, generation: u64, from: i64) {
    let Some(strong) = inner.upgrade() else {
        return;
    };
    let cache = strong.cache.clone();
    let prefix = strong.keys.prefix().to_string();
    let created = strong
        .conn
        .call("watch", |mut c: Client| {
            let p = prefix.clone();
            async move {
                let options = WatchOptions::new().with_prefix().with_start_revision(from);
                let mut s = c.watch(p, Some(options)).await?;
                let first = s.message().await?;
                Ok((s, first))
            }
        })
        .await;
    drop(strong);
    let mut stream = match created {
        Ok((s, Some(first))) if first.created() && !first.canceled() => s,
        Ok((_, Some(first))) => {
            return cache.stopped(
                generation,
                &format!("not created: {}", first.cancel_reason()),
            )
        }
        Ok((_, None)) => return cache.stopped(generation, "the stream closed at once"),
        Err(f) => return cache.stopped(generation, &format!("{f:?}")),
    };
    if !cache.went_live(generation) {
        return;
    }
    debug!(from, "the cluster watch is live");
    loop {
        match stream.message().await {
            Ok(Some(resp)) if resp.canceled() => {
                let why = format!(
                    "cancelled by etcd (compacted at {}): {}",
                    resp.compact_revision(),
                    resp.cancel_reason()
                );
                return cache.stopped(generation, &why);
            }
            Ok(Some(resp)) => {
                if !cache.apply(generation, &resp) {
                    return;
                }
            }
            Ok(None) => return cache.stopped(generation, "the stream closed"),
            Err(e) => return cache.stopped(generation, &format!("the stream failed: {e}")),
        }
    }
}

#[async_trait]
impl Dcs for EtcdDcs {
    async fn load(&self) -> Result<Cluster, DcsError> {
        self.inner
            .do_load()
            .instrument(self.inner.span("load"))
            .await
    }

    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        self.inner
            .do_set_ttl(ttl)
            .instrument(self.inner.span("set_ttl"))
            .await
    }

    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        self.inner
            .do_initialize_race(value)
            .instrument(self.inner.span("initialize_race"))
            .await
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.inner
            .put(
                "set_initialize",
                self.inner.keys.key(keys::INITIALIZE),
                sysid.to_string(),
            )
            .instrument(self.inner.span("set_initialize"))
            .await
            .map(|_| ())
    }

    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        self.inner
            .delete(
                "cancel_initialization",
                self.inner.keys.key(keys::INITIALIZE),
                false,
            )
            .instrument(self.inner.span("cancel_initialization"))
            .await
    }

    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.inner.node_name("acquire_leader")?;
        self.inner
            .do_acquire(name)
            .instrument(self.inner.span("acquire_leader"))
            .await
    }

    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.inner.node_name("renew_leader")?;
        self.inner
            .do_renew(name)
            .instrument(self.inner.span("renew_leader"))
            .await
    }

    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        self.inner
            .do_release(name)
            .instrument(self.inner.span("release_leader"))
            .await
    }

    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        self.inner.node_name("touch_member")?;
        self.inner
            .do_touch_member(name, data)
            .instrument(self.inner.span("touch_member"))
            .await
    }

    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.inner
            .do_delete_member(name)
            .instrument(self.inner.span("delete_member"))
            .await
    }

    async fn set_config(
        &self,
        config: &GlobalConfig,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner
            .write_versioned("set_config", keys::CONFIG, to_json(config), version)
            .instrument(self.inner.span("set_config"))
            .await
    }

    async fn set_failover(
        &self,
        failover: &Failover,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner
            .write_versioned("set_failover", keys::FAILOVER, to_json(failover), version)
            .instrument(self.inner.span("set_failover"))
            .await
    }

    async fn set_sync_state(&self, sync: &SyncState, version: Option<u64>) -> Result<(), DcsError> {
        self.inner
            .write_versioned("set_sync_state", keys::SYNC, to_json(sync), version)
            .instrument(self.inner.span("set_sync_state"))
            .await
    }

    async fn set_history(
        &self,
        history: &[HistoryEntry],
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner
            .write_versioned("set_history", keys::HISTORY, to_json(&history), version)
            .instrument(self.inner.span("set_history"))
            .await
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.inner
            .put(
                "write_status",
                self.inner.keys.key(keys::STATUS),
                to_json(status),
            )
            .instrument(self.inner.span("write_status"))
            .await
            .map(|_| ())
    }

    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        self.inner
            .put(
                "write_failsafe",
                self.inner.keys.key(keys::FAILSAFE),
                to_json(members),
            )
            .instrument(self.inner.span("write_failsafe"))
            .await
            .map(|_| ())
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.inner
            .do_delete_cluster()
            .instrument(self.inner.span("delete_cluster"))
            .await
    }

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        self.inner
            .do_watch(known_version, timeout)
            .instrument(self.inner.span("watch_leader"))
            .await
    }
}
