//! # dcs-zk: hactl's `Dcs` over ZooKeeper
//!
//! Byte-compatible with Patroni's ZooKeeper backend (`patroni/dcs/zookeeper.py`): znodes
//! `/<namespace>/<scope>/{initialize,config,leader,members/<name>,failover,sync,history,status,failsafe}` holding the
//! same UTF-8 values (plain leader name, compact JSON); `leader` and `members/<name>` are **ephemeral** znodes of
//! this process's session, whose timeout is hactl's `ttl`; versioned keys use the znode `version` for CAS.
//!
//! # Embedding
//! ```no_run
//! # async fn f() -> Result<(), ha_core::dcs::DcsError> {
//! use std::time::Duration;
//! use dcs_zk::{ZkDcs, ZkSettings};
//! let dcs = ZkDcs::new(ZkSettings {
//!     hosts: "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183".into(),
//!     namespace: "service".into(),
//!     scope: "batman".into(),
//!     name: "node1".into(),
//!     ttl: Duration::from_secs(30),
//!     retry_timeout: Duration::from_secs(10),
//! });
//! // hand `dcs` to ha_core::driver::Driver::new(...)
//! # Ok(()) }
//! ```
//!
//! # Sessions, and why the lock is also bound to the HA loop
//! A ZooKeeper session stays alive as long as the client library pings, which it does from its own task whether or
//! not the HA loop runs. hactl's lease model wants the opposite: a lock that is *not renewed* must go within `ttl`
//! (the conformance suite checks it, and etcd and Consul behave so). So this client keeps a local lease: every
//! successful `acquire_leader`, `renew_leader` or `touch_member` extends it to `sent + ttl`, and a small reaper task
//! closes the session when it runs out, which makes the server delete our ephemerals at once. A frozen *process*
//! (no pings) loses them by the server's own session timeout (= ttl). The server's `maxSessionTimeout` must be at
//! least `ttl` (ZooKeeper's default is 20 × tickTime = 40 s).
//!
//! # Session expiry
//! `zookeeper-async` opens a new session silently after an expiry, with no `Expired` event: it only passes through
//! [`ZkState::NotConnected`](zookeeper_async::ZkState). A listener marks the connection lost on that state (or
//! `Closed`/`AuthFailed`); the next call drops it and connects afresh, so everything bound to the old session (the
//! session id learnt from our ephemerals, the member key we wrote) is forgotten: `renew_leader` says `false`,
//! `touch_member` re-creates the member key, a pending watch wakes up.
//!
//! # Round trips
//! Every request is counted ([`ZkDcs::requests_sent`]), and every wait for an answer ([`ZkDcs::round_trips`]).
//! `load` is 1 + (number of keys) + 1 + (number of members) requests in three pipelined waves (3 round trips);
//! `renew_leader` 1; `touch_member` 0 when unchanged; `watch_leader` 1. Measured (`benches/zk_dcs.rs`, 3 nodes):
//! 4 round trips (10 requests) per loop on a replica, 5 (11) on the leader, ~2.1 kB both ways.
//!
//! # Layout
//! - this file: [`ZkDcs`] and its settings;
//! - [`error`]: the per-call error taxonomy folded into [`DcsError`];
//! - [`testing`]: a throw-away ZooKeeper server on a free loopback port, for tests and benchmarks.

pub mod error;
pub mod testing;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ha_core::dcs::{Dcs, DcsError, WatchOutcome};
use ha_core::model::codec::{keys, to_json};
use ha_core::model::{
    Cluster, Failover, GlobalConfig, HistoryEntry, KeyPath, MemberData, RawEntry, Status, SyncState,
};
use ha_core::sync::lock;
use tracing::{debug, info, info_span, warn, Instrument};
use zookeeper_async::{Acl, CreateMode, Stat, WatchedEvent, ZkError, ZkState, ZooKeeper};

pub use error::CallError;

/// Requests `load` sends in pipelined waves: each wave is counted as one round trip by `load` itself.
const PIPELINED: [&str; 3] = ["load value", "load members", "load member"];

/// How often the lease reaper looks at the local lease.
const REAP_INTERVAL: Duration = Duration::from_millis(100);
/// Pause between TCP connection attempts while the servers are down (0 would spin a core).
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// Where and who.
#[derive(Debug, Clone)]
pub struct ZkSettings {
    /// `host:port[,host:port...]`
    pub hosts: String,
    /// Patroni's `namespace` (default `service`).
    pub namespace: String,
    pub scope: String,
    /// This node's name.
    pub name: String,
    /// hactl's ttl: the session timeout, and the local lease of our ephemerals.
    pub ttl: Duration,
    /// Deadline of every call.
    pub retry_timeout: Duration,
}

/// One ZooKeeper session (one `ZooKeeper` object). Replaced as a whole when it is lost.
struct Conn {
    zk: ZooKeeper,
    /// The session ended (expired, closed): everything below belongs to a dead session.
    lost: Arc<AtomicBool>,
    /// Wakes watches on every state change of the connection.
    changed: Arc<tokio::sync::Notify>,
    /// One watch on the leader key at a time: the crate keeps every watcher closure until its znode changes, so
    /// arming one per `watch_leader` call would pile up thousands in a stable cluster. Disarmed when it fires and on
    /// every connection state change (a new connection carries no server-side watch).
    leader_armed: Arc<AtomicBool>,
    /// Bumped each time the armed leader watch fires.
    leader_fired: Arc<tokio::sync::watch::Sender<u64>>,
    /// Our session id, learnt from the `ephemeralOwner` of an ephemeral we created (the crate does not expose it).
    session_id: Mutex<Option<i64>>,
    /// The member value we wrote in this session.
    member_written: Mutex<Option<String>>,
    /// The session timeout this connection asked for.
    timeout: Duration,
}

impl Conn {
    fn session_id(&self) -> Option<i64> {
        *lock(&self.session_id)
    }
    fn learn_session(&self, stat: &Stat) {
        if stat.ephemeral_owner != 0 {
            *lock(&self.session_id) = Some(stat.ephemeral_owner);
        }
    }
    fn member_written(&self) -> Option<String> {
        lock(&self.member_written).clone()
    }
    fn set_member_written(&self, v: Option<String>) {
        *lock(&self.member_written) = v;
    }
    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

struct Inner {
    settings: ZkSettings,
    path: KeyPath,
    /// `None`: a ctl client.
    name: Option<String>,
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    ttl: Mutex<Duration>,
    /// Until when our ephemerals may live without a renewal (see the crate doc).
    lease_until: Mutex<Option<Instant>>,
    /// Our member key as the last `load` saw it: (value, ephemeralOwner).
    member_seen: Mutex<Option<(String, i64)>>,
    requests: AtomicU64,
    /// Sequential waits for an answer: a pipelined wave of `load` counts once.
    round_trips: AtomicU64,
    /// Test switch: when false the local lease never closes the session (only the server's timeout does).
    local_lease: AtomicBool,
}

/// hactl's [`Dcs`] over ZooKeeper. See the crate doc.
pub struct ZkDcs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ZkDcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkDcs")
            .field("hosts", &self.inner.settings.hosts)
            .field("prefix", &self.inner.path.prefix())
            .field("name", &self.inner.name)
            .finish()
    }
}

impl ZkDcs {
    /// A node's client. Connects lazily (the first call); must be created inside a tokio runtime (it spawns the
    /// lease reaper).
    pub fn new(settings: ZkSettings) -> ZkDcs {
        let name = Some(settings.name.clone());
        Self::build(settings, name)
    }

    /// A client for tools: no ephemerals, no lease. `acquire_leader`, `renew_leader` and `touch_member` return
    /// [`DcsError::Rejected`].
    pub fn ctl(settings: ZkSettings) -> ZkDcs {
        Self::build(settings, None)
    }

    fn build(settings: ZkSettings, name: Option<String>) -> ZkDcs {
        let inner = Arc::new(Inner {
            path: KeyPath::new(&settings.namespace, &settings.scope),
            ttl: Mutex::new(settings.ttl),
            settings,
            name,
            conn: tokio::sync::Mutex::new(None),
            lease_until: Mutex::new(None),
            member_seen: Mutex::new(None),
            requests: AtomicU64::new(0),
            round_trips: AtomicU64::new(0),
            local_lease: AtomicBool::new(true),
        });
        if inner.name.is_some() {
            tokio::spawn(reaper(Arc::downgrade(&inner)));
        }
        ZkDcs { inner }
    }

    /// Requests sent so far (ZooKeeper pipelines them on one connection), for benchmarks and metrics.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Round trips so far: like [`ZkDcs::requests_sent`], but the requests `load` pipelines in one wave count once.
    pub fn round_trips(&self) -> u64 {
        self.inner.round_trips.load(Ordering::Relaxed)
    }

    /// Our current session id, once learnt from an ephemeral we created.
    pub async fn session_id(&self) -> Option<i64> {
        self.inner
            .conn
            .lock()
            .await
            .as_ref()
            .and_then(|c| c.session_id())
    }

    /// Test support: stops the local lease from closing the session, so that only the server's session timeout ends
    /// it (to exercise the silent-new-session detection). Never use it in production: a frozen HA loop would then
    /// keep the lock for as long as the process lives.
    #[doc(hidden)]
    pub fn disable_local_lease_for_tests(&self) {
        self.inner.local_lease.store(false, Ordering::SeqCst);
    }

    /// Writes a raw value under a key relative to the cluster prefix, creating it (persistent) if needed. For tests
    /// and tools that need to plant exact bytes (a Patroni snapshot, garbage).
    pub async fn put_raw(&self, rel: &str, value: &str) -> Result<(), DcsError> {
        self.inner
            .put("put raw", rel, value.to_string(), None)
            .await
    }

    /// Reads the raw value of a key relative to the cluster prefix.
    pub async fn get_raw(&self, rel: &str) -> Result<Option<String>, DcsError> {
        let c = self.inner.conn().await?;
        Ok(self
            .inner
            .get(&c, "get raw", &self.inner.key(rel))
            .await?
            .map(|(v, _)| v))
    }

    /// Closes our session now: the server deletes our ephemerals (leader, member) at once. Returns when the close
    /// was answered or after `retry_timeout`; in the latter case the close stays queued and is sent once the server is reachable again.
    pub async fn close(&self) {
        if let Some(c) = self.inner.conn.lock().await.take() {
            let done = close_detached(c);
            let _ = tokio::time::timeout(self.inner.settings.retry_timeout, done).await;
        }
    }
}

impl Drop for ZkDcs {
    fn drop(&mut self) {
        // Dropping a ZooKeeper object does not end its session (its task keeps pinging): close it, or our
        // ephemerals would outlive us for as long as the process runs.
        let inner = self.inner.clone();
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                if let Some(c) = inner.conn.lock().await.take() {
                    close_detached(c);
                }
            });
        }
    }
}

/// Closes the session when the local lease ran out (the HA loop stopped renewing): see the crate doc.
async fn reaper(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(REAP_INTERVAL).await;
        let Some(inner) = inner.upgrade() else { return };
        let expired = {
            let mut l = lock(&inner.lease_until);
            match *l {
                Some(t) if Instant::now() >= t => {
                    *l = None;
                    true
                }
                _ => false,
            }
        };
        if expired && inner.local_lease.load(Ordering::SeqCst) {
            warn!("no renewal within ttl: closing the ZooKeeper session so our leader and member keys go");
            let taken = inner.conn.lock().await.take();
            if let Some(c) = taken {
                close_detached(c);
            }
        }
    }
}

/// Ends a session without waiting, and without a deadline on purpose: the close request must reach the client's
/// queue even when the server is unreachable. Requests are sent in order on the session's connection, so a request
/// that timed out earlier (an ephemeral `create` we gave up on) reaches the server *before* the close, and whatever
/// it created is deleted with the session: no orphan lock outlives us. The returned receiver says when it is done.
fn close_detached(c: Arc<Conn>) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    c.lost.store(true, Ordering::SeqCst);
    c.changed.notify_waiters();
    tokio::spawn(async move {
        if let Err(e) = c.zk.close().await {
            debug!(error = ?e, "closing a ZooKeeper session");
        }
        let _ = tx.send(());
    });
    rx
}

fn zk_path(p: &str) -> String {
    p.trim_end_matches('/').to_string()
}

impl Inner {
    fn retry_timeout(&self) -> Duration {
        self.settings.retry_timeout
    }

    fn key(&self, rel: &str) -> String {
        zk_path(&self.path.key(rel))
    }

    fn prefix(&self) -> String {
        zk_path(self.path.prefix())
    }

    fn extend_lease(&self, sent: Instant) {
        let ttl = *lock(&self.ttl);
        *lock(&self.lease_until) = Some(sent + ttl);
    }

    /// The live connection, or a new one (the old one's session ended).
    async fn conn(&self) -> Result<Arc<Conn>, CallError> {
        let mut slot = self.conn.lock().await;
        let ttl = *lock(&self.ttl);
        if let Some(c) = slot.as_ref() {
            // A longer ttl than the session timeout would let the server expire us before our lease ends:
            // restart the session then (Patroni restarts it on any change).
            if !c.is_lost() && c.timeout >= ttl {
                return Ok(c.clone());
            }
            let old = slot.take().expect("checked above");
            if old.is_lost() {
                warn!("the ZooKeeper session was lost: our ephemerals are gone; opening a new session");
            } else {
                info!(
                    old_ms = old.timeout.as_millis() as u64,
                    new_ms = ttl.as_millis() as u64,
                    "ttl grew past the session timeout: opening a new session"
                );
            }
            close_detached(old);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let lost = Arc::new(AtomicBool::new(false));
        let changed = Arc::new(tokio::sync::Notify::new());
        let leader_armed = Arc::new(AtomicBool::new(false));
        let connect = ZooKeeper::connect_with_retry_time(
            &self.settings.hosts,
            ttl,
            |_e: WatchedEvent| {},
            RECONNECT_PAUSE,
        );
        let zk = match tokio::time::timeout(self.retry_timeout(), connect).await {
            Ok(Ok(zk)) => zk,
            Ok(Err(code)) => {
                return Err(CallError::Zk {
                    what: "connect",
                    code,
                })
            }
            Err(_) => {
                return Err(CallError::Timeout {
                    what: "connect",
                    timeout: self.retry_timeout(),
                })
            }
        };
        {
            let lost = lost.clone();
            let changed = changed.clone();
            let leader_armed = leader_armed.clone();
            #[allow(deprecated)]
            zk.add_listener(move |state| {
                debug!(?state, "ZooKeeper connection state");
                match state {
                    // NotConnected: the crate's only trace of an expired session (it then opens a new one silently).
                    ZkState::NotConnected | ZkState::Closed | ZkState::AuthFailed => {
                        lost.store(true, Ordering::SeqCst)
                    }
                    _ => {}
                }
                leader_armed.store(false, Ordering::SeqCst);
                changed.notify_waiters();
            });
        }
        let c = Arc::new(Conn {
            zk,
            lost,
            changed,
            leader_armed,
            leader_fired: Arc::new(tokio::sync::watch::channel(0).0),
            session_id: Mutex::new(None),
            member_written: Mutex::new(None),
            timeout: ttl,
        });
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs one request under `retry_timeout`, counting it; an expired session marks the connection lost.
    async fn op<T, F>(&self, c: &Conn, what: &'static str, fut: F) -> Result<T, CallError>
    where
        F: std::future::Future<Output = Result<T, ZkError>>,
    {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !PIPELINED.contains(&what) {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
        }
        match tokio::time::timeout(self.retry_timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(ZkError::SessionExpired)) => {
                c.lost.store(true, Ordering::SeqCst);
                Err(CallError::SessionLost { what })
            }
            Ok(Err(code)) => Err(CallError::Zk { what, code }),
            Err(_) => Err(CallError::Timeout {
                what,
                timeout: self.retry_timeout(),
            }),
        }
    }

    /// Creates the persistent parents of `path` (Patroni's `makepath`).
    async fn make_parents(&self, c: &Conn, path: &str) -> Result<(), CallError> {
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            cur.push('/');
            cur.push_str(part);
            match self
                .op(
                    c,
                    "create parent",
                    c.zk.create(
                        &cur,
                        Vec::new(),
                        Acl::open_unsafe().clone(),
                        CreateMode::Persistent,
                    ),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some(ZkError::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `create2`, making the parents on `NoNode`.
    async fn create(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
        value: &str,
        mode: CreateMode,
    ) -> Result<Stat, CallError> {
        let attempt = || {
            c.zk.create2(
                path,
                value.as_bytes().to_vec(),
                Acl::open_unsafe().clone(),
                mode,
            )
        };
        match self.op(c, what, attempt()).await {
            Err(e) if e.code() == Some(ZkError::NoNode) => {
                self.make_parents(c, path).await?;
                Ok(self.op(c, what, attempt()).await?.1)
            }
            r => Ok(r?.1),
        }
    }

    /// Unconditional (`version: None`, creating the key if needed) or compare-and-set write of a persistent key.
    async fn put(
        &self,
        what: &'static str,
        rel: &str,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        let c = self.conn().await?;
        let path = self.key(rel);
        let v = version.map(|v| v as i32);
        match self
            .op(&c, what, c.zk.set_data(&path, value.as_bytes().to_vec(), v))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(ZkError::BadVersion) => Err(DcsError::Conflict(format!(
                "{what}: version {version:?} is stale"
            ))),
            Err(e) if e.code() == Some(ZkError::NoNode) => {
                if version.is_some() {
                    return Err(DcsError::Conflict(format!("{what}: the key is gone")));
                }
                match self
                    .create(&c, what, &path, &value, CreateMode::Persistent)
                    .await
                {
                    Ok(_) => Ok(()),
                    // Created concurrently: write over it, as an unconditional write would have.
                    Err(e) if e.code() == Some(ZkError::NodeExists) => Ok(self
                        .op(&c, what, c.zk.set_data(&path, value.into_bytes(), None))
                        .await
                        .map(|_| ())?),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
    ) -> Result<Option<(String, Stat)>, CallError> {
        match self.op(c, what, c.zk.get_data(path, false)).await {
            Ok((data, stat)) => Ok(Some((String::from_utf8_lossy(&data).into_owned(), stat))),
            Err(e) if e.code() == Some(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn children(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
    ) -> Result<Vec<String>, CallError> {
        match self.op(c, what, c.zk.get_children(path, false)).await {
            Ok(v) => Ok(v),
            Err(e) if e.code() == Some(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn delete(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
        version: Option<i32>,
    ) -> Result<bool, CallError> {
        match self.op(c, what, c.zk.delete(path, version)).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(ZkError::NoNode) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Our own leader key, from a session of ours that is gone on our side (a restarted daemon; a server restart
    /// that brought the old session back), recreated under this session, as Patroni does ("Recreating the leader
    /// ZNode due to ownership mismatch"), instead of leaving the cluster leaderless until the server expires the old
    /// session. The version check makes it lose to any change in between: `false` then.
    async fn recreate_own_leader_key(
        &self,
        c: &Conn,
        name: &str,
        old: &Stat,
    ) -> Result<bool, CallError> {
        let path = self.key(keys::LEADER);
        match self
            .delete(c, "renew leader", &path, Some(old.version))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) if e.code() == Some(ZkError::BadVersion) => return Ok(false),
            Err(e) => return Err(e),
        }
        match self
            .create(c, "renew leader", &path, name, CreateMode::Ephemeral)
            .await
        {
            Ok(created) => {
                c.learn_session(&created);
                Ok(true)
            }
            Err(e) if e.code() == Some(ZkError::NodeExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes `path` and everything under it (children first).
    async fn delete_tree(&self, c: &Conn, path: &str) -> Result<(), CallError> {
        let mut stack = vec![(path.to_string(), false)];
        // Bounded: the cluster prefix is 3 levels deep; a runaway tree stops at 100,000 nodes.
        let mut budget = 100_000u32;
        while let Some((p, expanded)) = stack.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
            if expanded {
                match self.delete(c, "delete cluster", &p, None).await {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(ZkError::NotEmpty) => stack.push((p, false)),
                    Err(e) => return Err(e),
                }
                continue;
            }
            let kids = self.children(c, "delete cluster", &p).await?;
            stack.push((p.clone(), true));
            for k in kids {
                stack.push((format!("{p}/{k}"), false));
            }
        }
        Ok(())
    }
}

/// The version hactl sees for a key: the znode `version` for CAS keys (it is what `set_data` compares), the
/// modification zxid for `leader` and members, which change identity when re-created (their `version` restarts at
/// 0, so a new leader would look unchanged to a watch).
fn version_of(rel: &str, stat: &Stat) -> u64 {
    if rel == keys::LEADER || rel.starts_with(keys::MEMBERS) {
        stat.mzxid as u64
    } else {
        stat.version as u64
    }
}

fn owner(stat: &Stat) -> Option<String> {
    (stat.ephemeral_owner != 0).then(|| stat.ephemeral_owner.to_string())
}

#[async_trait]
impl Dcs for ZkDcs {
    async fn load(&self) -> Result<Cluster, DcsError> {
        let inner = &self.inner;
        let span = info_span!("zk_load", prefix = %inner.prefix());
        async {
            let c = inner.conn().await?;
            let prefix = inner.prefix();
            let top = inner.children(&c, "load", &prefix).await?;
            // Wave 2: every top-level value and the member list, pipelined on the one connection.
            let leaves: Vec<String> = top
                .iter()
                .filter(|k| *k != "members" && *k != "optime")
                .cloned()
                .chain(
                    top.iter()
                        .any(|k| k == "optime")
                        .then(|| keys::OPTIME_LEADER.to_string()),
                )
                .collect();
            let members_path = inner.key("members");
            let (values, member_names) = tokio::join!(
                futures::future::join_all(leaves.iter().map(|k| {
                    let path = format!("{prefix}/{k}");
                    let c = &c;
                    async move { inner.get(c, "load value", &path).await }
                })),
                async {
                    if top.iter().any(|k| k == "members") {
                        inner.children(&c, "load members", &members_path).await
                    } else {
                        Ok(Vec::new())
                    }
                }
            );
            inner.round_trips.fetch_add(1, Ordering::Relaxed);
            let member_names = member_names?;
            // Wave 3: the members.
            let member_values = futures::future::join_all(member_names.iter().map(|m| {
                let path = format!("{members_path}/{m}");
                let c = &c;
                async move { inner.get(c, "load member", &path).await }
            }))
            .await;
            if !member_names.is_empty() {
                inner.round_trips.fetch_add(1, Ordering::Relaxed);
            }
            let mut entries = Vec::new();
            for (k, v) in leaves.iter().zip(values) {
                if let Some((value, stat)) = v? {
                    entries.push(RawEntry {
                        key: k.clone(),
                        version: version_of(k, &stat),
                        session: owner(&stat),
                        value,
                    });
                }
            }
            let mut member_seen = None;
            for (m, v) in member_names.iter().zip(member_values) {
                if let Some((value, stat)) = v? {
                    if inner.name.as_deref() == Some(m.as_str()) {
                        member_seen = Some((value.clone(), stat.ephemeral_owner));
                    }
                    let key = format!("{}{m}", keys::MEMBERS);
                    entries.push(RawEntry {
                        version: version_of(&key, &stat),
                        key,
                        session: owner(&stat),
                        value,
                    });
                }
            }
            *lock(&inner.member_seen) = member_seen;
            debug!(keys = entries.len(), "loaded");
            Ok(Cluster::from_entries(entries))
        }
        .instrument(span)
        .await
    }

    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        let mut t = lock(&self.inner.ttl);
        if *t != ttl {
            info!(
                old_ms = t.as_millis() as u64,
                new_ms = ttl.as_millis() as u64,
                "ttl changed"
            );
            *t = ttl;
        }
        Ok(())
    }

    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        let inner = &self.inner;
        let c = inner.conn().await?;
        match inner
            .create(
                &c,
                "initialize",
                &inner.key(keys::INITIALIZE),
                value,
                CreateMode::Persistent,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(ZkError::NodeExists) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.inner
            .put("initialize", keys::INITIALIZE, sysid.to_string(), None)
            .await
    }

    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        let inner = &self.inner;
        let c = inner.conn().await?;
        inner
            .delete(
                &c,
                "cancel initialization",
                &inner.key(keys::INITIALIZE),
                None,
            )
            .await?;
        Ok(())
    }

    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        let inner = &self.inner;
        let span = info_span!("zk_acquire", node = %name);
        async {
            if inner.name.is_none() {
                return Err(CallError::NoSession {
                    what: "acquire leader",
                }
                .into());
            }
            let c = inner.conn().await?;
            let sent = Instant::now();
            match inner
                .create(
                    &c,
                    "acquire leader",
                    &inner.key(keys::LEADER),
                    name,
                    CreateMode::Ephemeral,
                )
                .await
            {
                Ok(stat) => {
                    c.learn_session(&stat);
                    inner.extend_lease(sent);
                    info!(session = stat.ephemeral_owner, "took the leader lock");
                    Ok(true)
                }
                Err(e) if e.code() == Some(ZkError::NodeExists) => {
                    // Ours already? (an earlier acquire that timed out on our side but reached the server)
                    let got = inner
                        .get(&c, "acquire leader", &inner.key(keys::LEADER))
                        .await?;
                    let ours = matches!((&got, c.session_id()),
                        (Some((v, stat)), Some(sid)) if v.trim() == name && stat.ephemeral_owner == sid);
                    if ours {
                        inner.extend_lease(sent);
                    }
                    Ok(ours)
                }
                Err(e) => Err(e.into()),
            }
        }
        .instrument(span)
        .await
    }

    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        let inner = &self.inner;
        let span = info_span!("zk_renew", node = %name);
        async {
            if inner.name.is_none() {
                return Err(CallError::NoSession {
                    what: "renew leader",
                }
                .into());
            }
            let c = inner.conn().await?;
            let sent = Instant::now();
            let got = inner
                .get(&c, "renew leader", &inner.key(keys::LEADER))
                .await?;
            let ours = match (&got, c.session_id()) {
                (Some((value, stat)), Some(sid))
                    if value.trim() == name && stat.ephemeral_owner != sid && !c.is_lost() =>
                {
                    warn!(
                        old_session = stat.ephemeral_owner,
                        session = sid,
                        "recreating the leader key under this session"
                    );
                    inner.recreate_own_leader_key(&c, name, stat).await?
                }
                (Some((value, stat)), Some(sid)) => {
                    value.trim() == name && stat.ephemeral_owner == sid && !c.is_lost()
                }
                _ => false,
            };
            if ours {
                inner.extend_lease(sent);
            } else {
                warn!(leader = ?got.as_ref().map(|(v, s)| (v.clone(), s.ephemeral_owner)),
                      session = ?c.session_id(), "the leader key is not ours any more");
            }
            Ok(ours)
        }
        .instrument(span)
        .await
    }

    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        let inner = &self.inner;
        let c = inner.conn().await?;
        let path = inner.key(keys::LEADER);
        if let Some((value, stat)) = inner.get(&c, "release leader", &path).await? {
            if value.trim() == name {
                match inner
                    .delete(&c, "release leader", &path, Some(stat.version))
                    .await
                {
                    Ok(_) => info!("released the leader lock"),
                    // Re-created meanwhile by someone else: theirs now.
                    Err(e) if e.code() == Some(ZkError::BadVersion) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        let inner = &self.inner;
        if inner.name.is_none() {
            return Err(CallError::NoSession {
                what: "touch member",
            }
            .into());
        }
        let c = inner.conn().await?;
        let sent = Instant::now();
        let value = to_json(data);
        let path = inner.key(&format!("{}{name}", keys::MEMBERS));
        let written = c.member_written();
        let seen_ok = lock(&inner.member_seen)
            .as_ref()
            .is_some_and(|(v, o)| *v == value && Some(*o) == c.session_id());
        if written.as_deref() == Some(value.as_str()) && seen_ok {
            inner.extend_lease(sent);
            return Ok(());
        }
        if written.is_some() {
            match inner
                .op(
                    &c,
                    "touch member",
                    c.zk.set_data(&path, value.as_bytes().to_vec(), None),
                )
                .await
            {
                Ok(stat) if Some(stat.ephemeral_owner) == c.session_id() => {
                    c.set_member_written(Some(value));
                    inner.extend_lease(sent);
                    return Ok(());
                }
                Ok(_) => {} // not ours (deleted and re-created by someone): re-create below
                Err(e) if e.code() == Some(ZkError::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let created = match inner
            .create(&c, "touch member", &path, &value, CreateMode::Ephemeral)
            .await
        {
            Err(e) if e.code() == Some(ZkError::NodeExists) => {
                // A member key of another session (ours before a restart): replace it, as Patroni does.
                inner.delete(&c, "touch member", &path, None).await?;
                inner
                    .create(&c, "touch member", &path, &value, CreateMode::Ephemeral)
                    .await?
            }
            r => r?,
        };
        c.learn_session(&created);
        c.set_member_written(Some(value));
        inner.extend_lease(sent);
        Ok(())
    }

    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        let inner = &self.inner;
        let c = inner.conn().await?;
        inner
            .delete(
                &c,
                "delete member",
                &inner.key(&format!("{}{name}", keys::MEMBERS)),
                None,
            )
            .await?;
        if inner.name.as_deref() == Some(name) {
            c.set_member_written(None);
        }
        Ok(())
    }

    async fn set_config(
        &self,
        config: &GlobalConfig,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner
            .put("config", keys::CONFIG, to_json(config), version)
            .await
    }

    async fn set_failover(
        &self,
        failover: &Failover,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner
            .put("failover", keys::FAILOVER, to_json(failover), version)
            .await
    }

    async fn set_sync_state(&self, sync: &SyncState, version: Option<u64>) -> Result<(), DcsError> {
        self.inner
            .put("sync", keys::SYNC, to_json(sync), version)
            .await
    }

    async fn set_history(
        &self,
        history: &[HistoryEntry],
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner
            .put("history", keys::HISTORY, to_json(&history), version)
            .await
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.inner
            .put("status", keys::STATUS, to_json(status), None)
            .await
    }

    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        self.inner
            .put("failsafe", keys::FAILSAFE, to_json(members), None)
            .await
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        let inner = &self.inner;
        let c = inner.conn().await?;
        inner.delete_tree(&c, &inner.prefix()).await?;
        c.set_member_written(None);
        Ok(())
    }

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        let inner = &self.inner;
        let span = info_span!(
            "zk_watch",
            ?known_version,
            timeout_ms = timeout.as_millis() as u64
        );
        async {
            let deadline = tokio::time::Instant::now() + timeout;
            let c = inner.conn().await?;
            // Subscribed before looking, so a change between the look and the wait is not missed.
            let mut fired = c.leader_fired.subscribe();
            let path = inner.key(keys::LEADER);
            let stat = if c.leader_armed.swap(true, Ordering::SeqCst) {
                inner
                    .op(&c, "watch leader", c.zk.exists(&path, false))
                    .await?
            } else {
                let armed = c.leader_armed.clone();
                let tx = c.leader_fired.clone();
                let r = inner
                    .op(
                        &c,
                        "watch leader",
                        c.zk.exists_w(&path, move |_e: WatchedEvent| {
                            armed.store(false, Ordering::SeqCst);
                            tx.send_modify(|n| *n += 1);
                        }),
                    )
                    .await;
                if r.is_err() {
                    c.leader_armed.store(false, Ordering::SeqCst);
                }
                r?
            };
            let current = stat.as_ref().map(|s| version_of(keys::LEADER, s));
            if current != known_version || c.is_lost() {
                return Ok(WatchOutcome::LeaderChanged);
            }
            // Bounded by the deadline; each pass waits for the watch, a connection state change or the deadline.
            loop {
                let changed = c.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if c.is_lost() {
                    // The session ended: the watch will never fire, and our view is stale. Look again now.
                    return Ok(WatchOutcome::LeaderChanged);
                }
                tokio::select! {
                    _ = fired.changed() => return Ok(WatchOutcome::LeaderChanged),
                    _ = &mut changed => continue,
                    _ = tokio::time::sleep_until(deadline) => return Ok(WatchOutcome::TimedOut),
                }
            }
        }
        .instrument(span)
        .await
    }
}
