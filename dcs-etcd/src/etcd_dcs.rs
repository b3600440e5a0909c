//! [`EtcdDcs`]: the [`Dcs`] trait over etcd v3, with Patroni's etcd3 semantics so a Patroni node and a hactl node
//! read each other's keys.
//!
//! One lease per process, TTL = ttl; `leader` and `members/<name>` are put with it, no other key is. The lease is
//! the liveness: keepalives renew it, and when the process stops they stop, the lease expires and etcd deletes both
//! keys. The object version everywhere is the key's `mod_revision`; a key's session is its lease id.

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
}

impl Seen {
    fn own_leader_write(&mut self, revision: i64) {
        if self.own_leader_writes.len() == OWN_LEADER_WRITES_MAX {
            self.own_leader_writes.pop_front();
        }
        self.own_leader_writes.push_back(revision);
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
        Ok(EtcdDcs {
            inner: Arc::new(Inner {
                conn: Conn::new(endpoints, options, timeout),
                keys: KeyPath::new(&settings.namespace, &settings.scope),
                mode,
                scope: settings.scope.trim_matches('/').to_string(),
                lease: tokio::sync::Mutex::new(LeaseState {
                    id: None,
                    ttl_s: DEFAULT_TTL_S,
                    refreshed_at: None,
                }),
                seen: std::sync::Mutex::new(Seen::default()),
            }),
        })
    }

    /// The RPCs this client has sent (every attempt on every endpoint, watches included): the benchmark's count of
    /// DCS round trips.
    pub fn requests(&self) -> u64 {
        self.inner.conn.requests()
    }

    /// [`EtcdDcs::requests`] per operation (`load`, `lease_keepalive`, `acquire_leader`, `watch_leader`, ...).
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
        self.seen.lock().expect("seen cache")
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
                Ok(id)
            }
            Err(Failure::LeaseNotFound) => {
                warn!(lease = id, "our lease expired; granting a new one");
                st.id = None;
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
        Ok(revision_of(resp.header()))
    }

    async fn delete(&self, op: &'static str, key: String, prefix: bool) -> Result<(), DcsError> {
        self.conn
            .call(op, |mut c: Client| {
                let k = key.clone();
                let opts = prefix.then(|| DeleteOptions::new().with_prefix());
                async move { c.delete(k, opts).await }
            })
            .await
            .map_err(|f| f.into_dcs(op))?;
        Ok(())
    }

    async fn txn(&self, op: &'static str, txn: Txn) -> Result<etcd_client::TxnResponse, Failure> {
        self.conn
            .call(op, |mut c: Client| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await
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
                Ok(resp) => return Ok(revision_of(resp.header())),
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

    async fn do_load(&self) -> Result<Cluster, DcsError> {
        let prefix = self.keys.prefix().to_string();
        // Linearizable (not Patroni's serializable): the read goes through the etcd leader, so a member that
        // lags cannot show this node a leader key that is already gone. It is still one round trip.
        let mut resp = self
            .conn
            .call("load", |mut c: Client| {
                let p = prefix.clone();
                async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
            })
            .await
            .map_err(|f| f.into_dcs("load"))?;
        let revision = revision_of(resp.header());
        let me = match &self.mode {
            Mode::Node { name } => Some(self.keys.member(name)),
            Mode::Ctl => None,
        };
        let leader_key = self.keys.key(keys::LEADER);
        let mut seen_leader = None;
        let mut seen_member = None;
        let mut loaded_leader_version = None;
        let mut entries = Vec::with_capacity(resp.kvs().len());
        for kv in resp.take_kvs() {
            let full = text(kv.key());
            let Some(rel) = self.keys.relative(&full) else {
                continue;
            };
            let value = text(kv.value());
            if full == leader_key {
                seen_leader = Some((value.clone(), kv.lease()));
                loaded_leader_version = Some(version_of(&kv));
            }
            if Some(&full) == me.as_ref() {
                seen_member = Some((value.clone(), kv.lease()));
            }
            entries.push(RawEntry {
                key: rel.to_string(),
                value,
                version: version_of(&kv),
                session: (kv.lease() != 0).then(|| kv.lease().to_string()),
            });
        }
        {
            let mut seen = self.seen();
            seen.load_revision = revision;
            seen.loaded_leader_version = loaded_leader_version;
            seen.leader = seen_leader;
            seen.member = seen_member;
        }
        Ok(Cluster::from_entries(entries))
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

    async fn do_watch(
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
