//! The ZooKeeper session: one [`Conn`] per session, opened lazily and replaced as a whole when it is lost; the
//! session timeout it negotiated (hactl's `ttl`); expiry detection; the local lease and its reaper; and [`Inner::op`],
//! the one way a request goes out (deadline, counting, expiry).
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
//! # Credentials (`auth_data`)
//! ZooKeeper binds credentials to the TCP connection, not to the session, and `zookeeper-async` does not re-send
//! them when it reconnects the session to another server. So they are added right after a session is opened, and
//! again before the next request whenever the listener saw the connection come back (`reauth`). A request that
//! slips out before that gets `NoAuth`, an error like any other: the client never acts without its credentials.
//!
//! # Session expiry
//! `zookeeper-async` opens a new session silently after an expiry, with no `Expired` event: it only passes through
//! [`ZkState::NotConnected`](zookeeper_async::ZkState). A listener marks the connection lost on that state (or
//! `Closed`/`AuthFailed`); the next call drops it and connects afresh, so everything bound to the old session (the
//! session id learnt from our ephemerals, the member key we wrote) is forgotten: `renew_leader` says `false`,
//! `touch_member` re-creates the member key, a pending watch wakes up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ha_core::sync::lock;
use tracing::{debug, info, warn};
use zookeeper_async::{Stat, WatchedEvent, ZkError, ZkState, ZooKeeper};

use crate::dcs::Inner;
use crate::error::CallError;

/// Requests `load` sends in pipelined waves: each wave is counted as one round trip by `load` itself.
const PIPELINED: [&str; 3] = ["load value", "load members", "load member"];

/// How often the lease reaper looks at the local lease.
const REAP_INTERVAL: Duration = Duration::from_millis(100);
/// Pause between TCP connection attempts while the servers are down (0 would spin a core).
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// One ZooKeeper session (one `ZooKeeper` object). Replaced as a whole when it is lost.
pub(crate) struct Conn {
    pub(crate) zk: ZooKeeper,
    /// The session ended (expired, closed): everything below belongs to a dead session.
    lost: Arc<AtomicBool>,
    /// Wakes watches on every state change of the connection.
    pub(crate) changed: Arc<tokio::sync::Notify>,
    /// One watch on the leader key at a time: the crate keeps every watcher closure until its znode changes, so
    /// arming one per `watch_leader` call would pile up thousands in a stable cluster. Disarmed when it fires and on
    /// every connection state change (a new connection carries no server-side watch).
    pub(crate) leader_armed: Arc<AtomicBool>,
    /// Bumped each time the armed leader watch fires.
    pub(crate) leader_fired: Arc<tokio::sync::watch::Sender<u64>>,
    /// Our session id, learnt from the `ephemeralOwner` of an ephemeral we created (the crate does not expose it).
    session_id: Mutex<Option<i64>>,
    /// The member value we wrote in this session.
    member_written: Mutex<Option<String>>,
    /// The session timeout this connection asked for.
    timeout: Duration,
    /// The connection came back after a break: its credentials must be added again (see the module head).
    reauth: Arc<AtomicBool>,
    /// The warning about a session longer than the ttl was logged (once per session).
    longer_said: AtomicBool,
}

impl Conn {
    pub(crate) fn session_id(&self) -> Option<i64> {
        *lock(&self.session_id)
    }
    pub(crate) fn learn_session(&self, stat: &Stat) {
        if stat.ephemeral_owner != 0 {
            *lock(&self.session_id) = Some(stat.ephemeral_owner);
        }
    }
    pub(crate) fn member_written(&self) -> Option<String> {
        lock(&self.member_written).clone()
    }
    pub(crate) fn set_member_written(&self, v: Option<String>) {
        *lock(&self.member_written) = v;
    }
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

/// Closes the session when the local lease ran out (the HA loop stopped renewing): see the module head.
pub(crate) async fn reaper(inner: Weak<Inner>) {
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
pub(crate) fn close_detached(c: Arc<Conn>) -> tokio::sync::oneshot::Receiver<()> {
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

impl Inner {
    pub(crate) fn retry_timeout(&self) -> Duration {
        Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }

    /// Checks the session timeout the server negotiated against the ttl before this node holds the lock on it
    /// (#11 hole 2): the server expires a silent session after the *negotiated* timeout, which its
    /// `maxSessionTimeout` may have cut below the ttl the driver counts its lease on. One cheap read completes the
    /// handshake first if it has not happened yet. A longer one (the server's `minSessionTimeout`) is only slower.
    pub(crate) async fn check_session_timeout(
        &self,
        c: &Conn,
        what: &'static str,
    ) -> Result<(), CallError> {
        if c.zk.negotiated_session_timeout().is_none() {
            self.op(c, what, c.zk.exists("/", false)).await?;
        }
        let ttl = *lock(&self.ttl);
        match c.zk.negotiated_session_timeout() {
            Some(negotiated) if negotiated < ttl => Err(CallError::SessionTooShort {
                what,
                negotiated,
                ttl,
            }),
            Some(negotiated) if negotiated > ttl && !c.longer_said.swap(true, Ordering::SeqCst) => {
                warn!(
                    negotiated_ms = negotiated.as_millis() as u64,
                    ttl_ms = ttl.as_millis() as u64,
                    "ZooKeeper raised the session timeout above the ttl (its minSessionTimeout): a frozen node's keys \
                     outlive the ttl, so a failover takes that much longer"
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn extend_lease(&self, sent: Instant) {
        let ttl = *lock(&self.ttl);
        *lock(&self.lease_until) = Some(sent + ttl);
    }

    /// The live connection, or a new one (the old one's session ended).
    pub(crate) async fn conn(&self) -> Result<Arc<Conn>, CallError> {
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
        let reauth = Arc::new(AtomicBool::new(false));
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
            let reauth = reauth.clone();
            #[allow(deprecated)]
            zk.add_listener(move |state| {
                debug!(?state, "ZooKeeper connection state");
                match state {
                    // NotConnected: the crate's only trace of an expired session (it then opens a new one silently).
                    ZkState::NotConnected | ZkState::Closed | ZkState::AuthFailed => {
                        lost.store(true, Ordering::SeqCst)
                    }
                    // Registered after the first connection: any Connected here is a reconnection.
                    ZkState::Connected | ZkState::ConnectedReadOnly => {
                        reauth.store(true, Ordering::SeqCst)
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
            reauth,
            longer_said: AtomicBool::new(false),
        });
        if let Err(e) = self.authenticate(&c).await {
            close_detached(c);
            return Err(e);
        }
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Adds `auth_data` to the connection, in order, each under the deadline.
    async fn authenticate(&self, c: &Conn) -> Result<(), CallError> {
        for (scheme, credential) in &self.settings.auth {
            self.requests.fetch_add(1, Ordering::Relaxed);
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let add = c.zk.add_auth(scheme, credential.as_bytes().to_vec());
            match tokio::time::timeout(self.retry_timeout(), add).await {
                Ok(Ok(())) => {}
                Ok(Err(code)) => {
                    return Err(CallError::Zk {
                        what: "add auth_data",
                        code,
                    })
                }
                Err(_) => {
                    return Err(CallError::Timeout {
                        what: "add auth_data",
                        timeout: self.retry_timeout(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Runs one request under `retry_timeout`, counting it; an expired session marks the connection lost.
    pub(crate) async fn op<T, F>(
        &self,
        c: &Conn,
        what: &'static str,
        fut: F,
    ) -> Result<T, CallError>
    where
        F: std::future::Future<Output = Result<T, ZkError>>,
    {
        if !self.settings.auth.is_empty() && c.reauth.swap(false, Ordering::SeqCst) {
            debug!("the ZooKeeper connection came back: adding auth_data again");
            self.authenticate(c).await?;
        }
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
}
