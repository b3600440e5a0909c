//! [`ZkDcs`], the handle, and its [`Dcs`] implementation: each trait method is one operation on the cluster's
//! znodes, built from the session ([`crate::session`]), the key/value calls ([`crate::kv`]) and the leader watch
//! ([`crate::watch`]). [`Inner`] is the state behind the handle, shared with the lease reaper.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ha_core::dcs::{Dcs, DcsClient, DcsError, SharedKey, WatchOutcome};
use ha_core::model::codec::{keys, to_json};
use ha_core::model::{Cluster, KeyPath, MemberData, Status};
use ha_core::sync::lock;
use tracing::{info, info_span, warn, Instrument};
use zookeeper_async::{CreateMode, ZkError};

use crate::error::CallError;
use crate::session::{close_detached, reaper, Conn};
use crate::settings::ZkSettings;

/// The state behind a [`ZkDcs`], shared with the lease reaper (which holds it weakly).
pub(crate) struct Inner {
    pub(crate) settings: ZkSettings,
    pub(crate) path: KeyPath,
    /// `None`: a ctl client.
    pub(crate) name: Option<String>,
    pub(crate) conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
    pub(crate) ttl: Mutex<Duration>,
    /// Until when our ephemerals may live without a renewal (see `crate::session`).
    pub(crate) lease_until: Mutex<Option<Instant>>,
    /// Our member key as the last `load` saw it: (value, ephemeralOwner).
    pub(crate) member_seen: Mutex<Option<(String, i64)>>,
    pub(crate) requests: AtomicU64,
    /// The deadline of every call in ms (`retry_timeout`: the settings' value until the cluster's configuration
    /// sets another).
    pub(crate) retry_timeout_ms: AtomicU64,
    /// Sequential waits for an answer: a pipelined wave of `load` counts once.
    pub(crate) round_trips: AtomicU64,
    /// Test switch: when false the local lease never closes the session (only the server's timeout does).
    pub(crate) local_lease: AtomicBool,
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
            retry_timeout_ms: AtomicU64::new(settings.retry_timeout.as_millis().max(1) as u64),
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
            let _ = tokio::time::timeout(self.inner.retry_timeout(), done).await;
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

#[async_trait]
impl DcsClient for ZkDcs {
    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner.put(key.path(), key.path(), value, version).await
    }

    async fn load(&self) -> Result<Cluster, DcsError> {
        self.inner.load().await
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

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        let inner = &self.inner;
        let c = inner.conn().await?;
        inner.delete_tree(&c, &inner.prefix()).await?;
        c.set_member_written(None);
        Ok(())
    }
}

#[async_trait]
impl Dcs for ZkDcs {
    fn set_retry_timeout(&self, timeout: Duration) {
        self.inner
            .retry_timeout_ms
            .store(timeout.as_millis().max(1) as u64, Ordering::Relaxed);
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
            inner.check_session_timeout(&c, "acquire leader").await?;
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
            if let Err(e) = inner.check_session_timeout(&c, "renew leader").await {
                // Holding a lock the server may drop before our lease ends: give it back (the error says why).
                let _ = self.release_leader(name).await;
                return Err(e.into());
            }
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
                // The read above may have been answered by a follower cut off from its quorum (it serves reads
                // until it notices): a write goes through the ensemble's leader and a quorum, so a renewal whose
                // write succeeds proves the ensemble still counts our session (#11 hole 2). Our own member key with
                // the value it already holds: nobody watches it, nothing changes.
                if let Some(value) = c.member_written() {
                    let member = inner.key(&format!("{}{name}", keys::MEMBERS));
                    inner
                        .op(
                            &c,
                            "renew leader (quorum write)",
                            c.zk.set_data(&member, value.into_bytes(), None),
                        )
                        .await?;
                }
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

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        self.inner.watch_leader(known_version, timeout).await
    }
}
