//! [`ConsulDcs`] itself: its fields and per-process state, the one gate every consulrs request passes (a deadline and
//! the round-trip counter), and its [`Dcs`] impl, which composes the session, KV and watch modules into hactl's DCS
//! operations with Patroni's keys and locking rules.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use consulrs::client::ConsulClient;
use ha_core::dcs::{Dcs, DcsClient, DcsError, SharedKey, WatchOutcome};
use ha_core::model::codec::{keys, to_json};
use ha_core::model::{Cluster, KeyPath, MemberData, RawEntry, Status};
use ha_core::sync::lock;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::error::CallError;
use crate::kv::decode_value;
use crate::session::session_ttl_for;

/// Mutable client state; never held across an await.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) session: Option<String>,
    pub(crate) session_ttl: Duration,
    /// Renewed since the last `load`: the leader's `renew_leader` and the `touch_member` of one loop renew once.
    pub(crate) renewed_since_load: bool,
    /// X-Consul-Index of the last `load`, the starting point of the next blocking watch.
    pub(crate) last_index: Option<u64>,
    /// Our member key as the last `load` saw it: (value, session). An unchanged value is not rewritten.
    pub(crate) member_seen: Option<(String, Option<String>)>,
    /// The session was dropped on purpose (a new ttl), not lost: the next renewal moves our keys to the new one.
    pub(crate) replaced_for_ttl: bool,
}

/// hactl's [`Dcs`] over Consul. One session per process; see the crate doc for the timing.
pub struct ConsulDcs {
    pub(crate) client: ConsulClient,
    /// The same reqwest client consulrs uses, for the blocking watch (consulrs drops X-Consul-Index on a 404).
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    pub(crate) path: KeyPath,
    pub(crate) scope: String,
    /// `None`: a ctl client (no session, cannot hold keys).
    pub(crate) name: Option<String>,
    /// The deadline of every call in ms (`retry_timeout`; see [`ConsulDcs::retry_timeout`]).
    pub(crate) retry_timeout_ms: AtomicU64,
    /// `?dc=` on every call.
    pub(crate) dc: Option<String>,
    /// `?consistent` / `?stale` on reads.
    pub(crate) consistency: Option<crate::settings::Consistency>,
    pub(crate) state: Mutex<State>,
    pub(crate) requests: AtomicU64,
}

impl std::fmt::Debug for ConsulDcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulDcs")
            .field("url", &self.base_url)
            .field("prefix", &self.prefix())
            .field("name", &self.name)
            .finish()
    }
}

impl ConsulDcs {
    /// HTTP requests sent so far (each is one round trip), for benchmarks and metrics.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The current session ID, if one was created (tests, diagnostics).
    pub fn session_id(&self) -> Option<String> {
        self.state().session.clone()
    }

    /// The Consul key prefix, `service/<scope>/` (Patroni strips the leading slash for Consul).
    pub fn prefix(&self) -> &str {
        self.path.prefix().trim_start_matches('/')
    }

    pub(crate) fn key(&self, rel: &str) -> String {
        format!("{}{}", self.prefix(), rel)
    }

    pub(crate) fn member_key(&self, name: &str) -> String {
        format!("{}{}{}", self.prefix(), keys::MEMBERS, name)
    }

    /// The client state, through the workspace's poisoned-lock policy ([`ha_core::sync::lock`]).
    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Runs one consulrs call under `retry_timeout`, counting it.
    pub(crate) async fn call<T, F>(&self, what: &'static str, fut: F) -> Result<T, CallError>
    where
        F: std::future::Future<Output = Result<T, consulrs::error::ClientError>>,
    {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(self.retry_timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(crate::error::from_consulrs(what, e)),
            Err(_) => Err(CallError::Timeout {
                what,
                timeout: self.retry_timeout(),
            }),
        }
    }

    /// The deadline of every call (`retry_timeout`, as the cluster's configuration last set it).
    pub(crate) fn retry_timeout(&self) -> Duration {
        Duration::from_millis(self.retry_timeout_ms.load(Ordering::Relaxed))
    }
}

#[async_trait]
impl DcsClient for ConsulDcs {
    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.put_versioned(key.path(), key.path(), value, version)
            .await
    }

    async fn load(&self) -> Result<Cluster, DcsError> {
        let span = info_span!("consul_load", prefix = %self.prefix());
        async {
            let got = self.read("load", self.prefix().to_string(), true).await?;
            let (pairs, index) = got.unwrap_or_default();
            let prefix = self.prefix().to_string();
            let member_key = self.name.as_ref().map(|n| self.member_key(n));
            let mut member_seen = None;
            let entries: Vec<RawEntry> = pairs
                .into_iter()
                .filter_map(|p| {
                    let rel = p.key.strip_prefix(&prefix)?.to_string();
                    let value = decode_value(p.value);
                    if member_key.as_deref() == Some(p.key.as_str()) {
                        member_seen = Some((value.clone(), p.session.clone()));
                    }
                    Some(RawEntry {
                        key: rel,
                        value,
                        version: p.modify_index,
                        session: p.session,
                    })
                })
                .collect();
            {
                let mut st = self.state();
                st.last_index = index;
                st.member_seen = member_seen;
                st.renewed_since_load = false;
            }
            debug!(keys = entries.len(), index, "loaded");
            Ok(Cluster::from_entries(entries))
        }
        .instrument(span)
        .await
    }

    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.delete("delete member", self.member_key(name), None, false)
            .await?;
        self.state().member_seen = None;
        Ok(())
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.delete("delete cluster", self.prefix().to_string(), None, true)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Dcs for ConsulDcs {
    fn set_retry_timeout(&self, timeout: Duration) {
        self.retry_timeout_ms
            .store(timeout.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        let new = session_ttl_for(ttl);
        let mut st = self.state();
        if st.session_ttl != new {
            // A session's TTL cannot change: the next call creates a new session, and the leader re-takes its key
            // in `renew_leader` (Patroni does the same). The old session is left to expire.
            info!(
                old_ms = st.session_ttl.as_millis() as u64,
                new_ms = new.as_millis() as u64,
                "session TTL changed: a new Consul session will be created"
            );
            st.session_ttl = new;
            if st.session.take().is_some() {
                st.replaced_for_ttl = true;
            }
        }
        Ok(())
    }

    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        Ok(self
            .put(
                "initialize",
                self.key(keys::INITIALIZE),
                value.to_string(),
                Some(0),
                None,
            )
            .await?)
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.put_versioned("initialize", keys::INITIALIZE, sysid.to_string(), None)
            .await
    }

    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        self.delete(
            "cancel initialization",
            self.key(keys::INITIALIZE),
            None,
            false,
        )
        .await?;
        Ok(())
    }

    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        let span = info_span!("consul_acquire", node = %name);
        async {
            // The lock lives as long as the session it hangs on, which Consul counts from its last renewal, not from
            // this acquire: renew it first, so the lease the driver counts from the acquire's send time (which
            // precedes this renewal) holds on the server (#11 hole 1). A session found gone is replaced here; the
            // acquire then hangs the lock on the new one.
            if self.name.is_some() && self.state().session.is_some() {
                self.renew_session().await?;
            }
            let won = self
                .put_acquire("acquire leader", self.key(keys::LEADER), name.to_string())
                .await?;
            if won {
                info!("took the leader lock");
            } else {
                debug!("the leader lock is held by another session");
            }
            Ok(won)
        }
        .instrument(span)
        .await
    }

    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        let span = info_span!("consul_renew", node = %name);
        async {
            if self.name.is_none() {
                return Err(CallError::NoSession {
                    what: "renew leader",
                }
                .into());
            }
            if !self.renew_session().await? {
                // The session expired: Consul deleted the key with it (Behavior=delete). Never re-create it here.
                return Ok(false);
            }
            let sid = self.state().session.clone();
            match self.read_leader().await? {
                Some((value, _, session)) if value.trim() == name && session == sid => Ok(true),
                Some((value, version, session)) if value.trim() == name => {
                    // Our name under another session: our previous session (a restart, a TTL change). Patroni
                    // deletes it with CAS and re-acquires; a concurrent writer makes the CAS or the acquire fail.
                    warn!(
                        ?session,
                        "the leader key names us under another session: re-taking it"
                    );
                    if !self
                        .delete("renew leader", self.key(keys::LEADER), Some(version), false)
                        .await?
                    {
                        return Ok(false);
                    }
                    Ok(self
                        .put_acquire("renew leader", self.key(keys::LEADER), name.to_string())
                        .await?)
                }
                _ => Ok(false),
            }
        }
        .instrument(span)
        .await
    }

    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        // Delete (not `?release=`: that would leave the key with our name and no session) with CAS on the version
        // read, so a key someone else took meanwhile is left alone.
        if let Some((value, version, _)) = self.read_leader().await? {
            if value.trim() == name {
                let deleted = self
                    .delete(
                        "release leader",
                        self.key(keys::LEADER),
                        Some(version),
                        false,
                    )
                    .await?;
                info!(deleted, "released the leader lock");
            }
        }
        Ok(())
    }

    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        if self.name.is_none() {
            return Err(CallError::NoSession {
                what: "touch member",
            }
            .into());
        }
        // The session is renewed once per loop; a lost session means our member key is gone with it.
        let fresh = {
            let st = self.state();
            st.renewed_since_load && st.session.is_some()
        };
        let renewed = if fresh {
            true
        } else {
            self.renew_session().await?
        };
        let value = to_json(data);
        let sid = self.state().session.clone();
        let unchanged = renewed
            && self
                .state()
                .member_seen
                .as_ref()
                .is_some_and(|(v, s)| *v == value && *s == sid);
        if unchanged {
            return Ok(());
        }
        let key = self.member_key(name);
        if self
            .put_acquire("touch member", key.clone(), value.clone())
            .await?
        {
            let mut st = self.state();
            st.member_seen = Some((value, st.session.clone()));
            return Ok(());
        }
        // Locked by another session: ours from before a restart. Drop it and write it under ours (Patroni too).
        self.delete("touch member", key.clone(), None, false)
            .await?;
        if self.put_acquire("touch member", key, value.clone()).await? {
            let mut st = self.state();
            st.member_seen = Some((value, st.session.clone()));
            Ok(())
        } else {
            Err(DcsError::Conflict(format!(
                "member key {name} is locked by another session"
            )))
        }
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.put_versioned("status", keys::STATUS, to_json(status), None)
            .await
    }

    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        self.put_versioned("failsafe", keys::FAILSAFE, to_json(members), None)
            .await
    }

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        self.blocking_watch(known_version, timeout).await
    }
}
