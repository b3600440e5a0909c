//! An in-memory [`Dcs`] with a controllable clock, TTL expiry and injected faults: the mock users write their
//! unit tests with, and the DCS of the simulator.
//!
//! ```
//! use std::sync::Arc;
//! use ha_core::{mock_dcs::MemoryDcs, time::ManualClock, dcs::{Dcs, DcsClient}};
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let clock = ManualClock::new(0);
//! let dcs = MemoryDcs::new(Arc::new(clock.clone()));
//! let node1 = dcs.client("node1");
//! let node2 = dcs.client("node2");
//! node1.set_ttl(std::time::Duration::from_secs(10)).await.unwrap();
//! assert!(node1.acquire_leader("node1").await.unwrap());
//! assert!(!node2.acquire_leader("node2").await.unwrap());
//! clock.advance_ms(10_001);                      // node1 stops renewing: its lease runs out
//! assert!(node2.acquire_leader("node2").await.unwrap());
//! dcs.set_unavailable(true);                      // inject an outage
//! assert!(node1.load().await.unwrap_err().is_unreachable());
//! # });
//! ```
//!
//! Latency (`set_latency`) makes each call sleep on tokio's timer, so it needs a tokio runtime; the simulator keeps
//! it at zero so that every call completes at once on virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::dcs::{Dcs, DcsClient, DcsError, SharedKey, WatchOutcome};
use crate::model::codec::{keys, to_json};
use crate::model::{Cluster, Failover, MemberData, RawEntry, Status};
use crate::time::{Clock, Millis};

#[derive(Debug, Clone)]
struct Entry {
    value: String,
    version: u64,
    /// Client whose lease holds the key, and when that lease ends.
    lease: Option<(String, Millis)>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<String, Entry>,
    revision: u64,
    unavailable: bool,
    /// Only `load` is answered: an outage seen through a client-side cache (etcd's watch-fed one).
    only_loads: bool,
    partitioned: BTreeSet<String>,
    latency_ms: u64,
    /// Lease length per client.
    ttl_ms: BTreeMap<String, u64>,
    requests: BTreeMap<String, u64>,
    /// Leader keys the server expired (not deleted): who held each and when its lease ended, by the server's clock.
    leader_expiries: Vec<(String, Millis)>,
}

impl Inner {
    fn next_rev(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }
    fn purge(&mut self, now: Millis) {
        if !self
            .entries
            .values()
            .any(|e| e.lease.as_ref().map_or(false, |(_, until)| *until <= now))
        {
            return;
        }
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.lease.as_ref().map_or(false, |(_, until)| *until <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            if let Some(e) = self.entries.remove(&k) {
                if k == keys::LEADER {
                    if let Some((_, until)) = e.lease {
                        self.leader_expiries.push((e.value, until));
                    }
                }
            }
            self.next_rev();
        }
    }
    fn put(&mut self, key: &str, value: String, lease: Option<(String, Millis)>) {
        let version = self.next_rev();
        self.entries.insert(
            key.to_string(),
            Entry {
                value,
                version,
                lease,
            },
        );
    }
    fn cas(&mut self, key: &str, value: String, version: Option<u64>) -> Result<(), DcsError> {
        if let Some(v) = version {
            let current = self.entries.get(key).map(|e| e.version);
            if current != Some(v) {
                return Err(DcsError::Conflict(format!(
                    "{key}: version {v} is stale (now {current:?})"
                )));
            }
        }
        self.put(key, value, None);
        Ok(())
    }
}

/// The shared store. Hand each node its own [`MemoryDcsClient`] with [`MemoryDcs::client`].
#[derive(Clone)]
pub struct MemoryDcs {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
}

impl MemoryDcs {
    /// An empty store whose leases expire on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> MemoryDcs {
        MemoryDcs {
            inner: Arc::default(),
            clock,
        }
    }

    /// The DCS as node `name` sees it (its lease, its partition).
    pub fn client(&self, name: &str) -> MemoryDcsClient {
        MemoryDcsClient {
            store: self.clone(),
            name: name.to_string(),
            default_ttl_ms: AtomicU64::new(30_000),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock must not turn every later call into a panic.
        crate::sync::lock(&self.inner)
    }

    /// Every call fails with [`DcsError::Unreachable`] while set: a DCS outage.
    pub fn set_unavailable(&self, down: bool) {
        self.lock().unavailable = down;
    }
    /// Every call but `load` fails with [`DcsError::Unreachable`] while set: an outage as a client with a read cache
    /// (etcd's watch-fed one) first sees it, its loads still answered and its first renewal failing.
    pub fn set_only_loads(&self, on: bool) {
        self.lock().only_loads = on;
    }
    /// Cuts one node off from the DCS (or heals it).
    pub fn set_partitioned(&self, node: &str, cut: bool) {
        let mut g = self.lock();
        if cut {
            g.partitioned.insert(node.to_string());
        } else {
            g.partitioned.remove(node);
        }
    }
    /// Every call sleeps this long first (tokio timer).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency_ms = latency.as_millis() as u64;
    }
    /// Writes a raw value under a key relative to the cluster prefix, bypassing every check: for garbage tests.
    pub fn put_raw(&self, key: &str, value: &str) {
        self.lock().put(key, value.to_string(), None);
    }
    /// The raw value of a key, if present and not expired.
    pub fn get_raw(&self, key: &str) -> Option<String> {
        let now = self.clock.now();
        let mut g = self.lock();
        g.purge(now);
        g.entries.get(key).map(|e| e.value.clone())
    }
    /// The leader key's holder and version, as the server sees it now.
    pub fn leader(&self) -> Option<(String, u64)> {
        let now = self.clock.now();
        let mut g = self.lock();
        g.purge(now);
        g.entries
            .get(keys::LEADER)
            .map(|e| (e.value.clone(), e.version))
    }
    /// The leader keys the server expired since the last call (each holder and the moment, by the server's
    /// clock, its lease ended): the ground truth the simulator's lease-safety invariant checks against.
    pub fn take_leader_expiries(&self) -> Vec<(String, Millis)> {
        let now = self.clock.now();
        let mut g = self.lock();
        g.purge(now);
        std::mem::take(&mut g.leader_expiries)
    }
    /// Requests served per client so far (for footprint figures).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.lock().requests.clone()
    }
    /// Writes a switchover request as an operator would (`hactl switchover`).
    pub fn request_switchover(&self, failover: &Failover) {
        self.lock().put(keys::FAILOVER, to_json(failover), None);
    }
    /// The clock the store's leases expire on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

/// One node's connection to a [`MemoryDcs`].
pub struct MemoryDcsClient {
    store: MemoryDcs,
    name: String,
    default_ttl_ms: AtomicU64,
}

impl MemoryDcsClient {
    /// Runs `f` on the store as this client: counts the request, applies faults and expiry.
    async fn with<T>(
        &self,
        f: impl FnOnce(&mut Inner, Millis) -> Result<T, DcsError>,
    ) -> Result<T, DcsError> {
        self.with_op(false, f).await
    }

    /// [`MemoryDcsClient::with`] for a read that a client-side cache would answer (see [`MemoryDcs::set_only_loads`]).
    async fn with_op<T>(
        &self,
        cached_read: bool,
        f: impl FnOnce(&mut Inner, Millis) -> Result<T, DcsError>,
    ) -> Result<T, DcsError> {
        let latency = self.store.lock().latency_ms;
        if latency > 0 && tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let now = self.store.clock.now();
        let mut g = self.store.lock();
        *g.requests.entry(self.name.clone()).or_default() += 1;
        if g.unavailable || (g.only_loads && !cached_read) {
            return Err(DcsError::Unreachable("mock DCS is down".into()));
        }
        if g.partitioned.contains(&self.name) {
            return Err(DcsError::Unreachable(format!(
                "{} is partitioned from the mock DCS",
                self.name
            )));
        }
        g.purge(now);
        f(&mut g, now)
    }

    fn ttl_ms(&self, g: &Inner) -> u64 {
        g.ttl_ms
            .get(&self.name)
            .copied()
            .unwrap_or_else(|| self.default_ttl_ms.load(Ordering::SeqCst))
    }
}

#[async_trait]
impl DcsClient for MemoryDcsClient {
    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.with(|g, _| g.cas(key.path(), value, version)).await
    }

    async fn load(&self) -> Result<Cluster, DcsError> {
        self.with_op(true, |g, _| {
            Ok(Cluster::from_entries(g.entries.iter().map(|(k, e)| {
                RawEntry {
                    key: k.clone(),
                    value: e.value.clone(),
                    version: e.version,
                    session: e.lease.as_ref().map(|(c, _)| c.clone()),
                }
            })))
        })
        .await
    }

    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.with(|g, _| {
            if g.entries
                .remove(&format!("{}{}", keys::MEMBERS, name))
                .is_some()
            {
                g.next_rev();
            }
            Ok(())
        })
        .await
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.with(|g, _| {
            g.entries.clear();
            g.next_rev();
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Dcs for MemoryDcsClient {
    // Calls of the mock answer at once (or fail by injection): it has no deadline to change.
    fn set_retry_timeout(&self, _timeout: Duration) {}

    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        let ms = ttl.as_millis() as u64;
        self.default_ttl_ms.store(ms, Ordering::SeqCst);
        let name = self.name.clone();
        self.store.lock().ttl_ms.insert(name, ms);
        Ok(())
    }

    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        self.with(|g, _| {
            if g.entries.contains_key(keys::INITIALIZE) {
                return Ok(false);
            }
            g.put(keys::INITIALIZE, value.to_string(), None);
            Ok(true)
        })
        .await
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.with(|g, _| {
            g.put(keys::INITIALIZE, sysid.to_string(), None);
            Ok(())
        })
        .await
    }

    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        self.with(|g, _| {
            if g.entries.remove(keys::INITIALIZE).is_some() {
                g.next_rev();
            }
            Ok(())
        })
        .await
    }

    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.with(|g, now| {
            if g.entries.contains_key(keys::LEADER) {
                return Ok(false);
            }
            let until = now.plus_ms(self.ttl_ms(g));
            g.put(
                keys::LEADER,
                name.to_string(),
                Some((self.name.clone(), until)),
            );
            Ok(true)
        })
        .await
    }

    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.with(|g, now| {
            let ttl = self.ttl_ms(g);
            match g.entries.get_mut(keys::LEADER) {
                Some(e) if e.value == name => {
                    // Like etcd's keepalive, a renewal extends the lease without a new version.
                    e.lease = Some((self.name.clone(), now.plus_ms(ttl)));
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
        .await
    }

    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        self.with(|g, _| {
            if g.entries
                .get(keys::LEADER)
                .map_or(false, |e| e.value == name)
            {
                g.entries.remove(keys::LEADER);
                g.next_rev();
            }
            Ok(())
        })
        .await
    }

    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        self.with(|g, now| {
            let until = now.plus_ms(self.ttl_ms(g));
            let key = format!("{}{}", keys::MEMBERS, name);
            let value = to_json(data);
            match g.entries.get_mut(&key) {
                // Unchanged value: only the lease moves, as a keepalive would.
                Some(e) if e.value == value => e.lease = Some((self.name.clone(), until)),
                _ => g.put(&key, value, Some((self.name.clone(), until))),
            }
            Ok(())
        })
        .await
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.with(|g, _| g.cas(keys::STATUS, to_json(status), None))
            .await
    }

    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        self.with(|g, _| g.cas(keys::FAILSAFE, to_json(members), None))
            .await
    }

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        // Polls the store on tokio's timer: fine for a mock, and exact under a paused clock.
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        loop {
            let current = self
                .with(|g, _| Ok(g.entries.get(keys::LEADER).map(|e| e.version)))
                .await?;
            if current != known_version {
                return Ok(WatchOutcome::LeaderChanged);
            }
            if waited >= timeout {
                return Ok(WatchOutcome::TimedOut);
            }
            let s = step.min(timeout - waited);
            tokio::time::sleep(s).await;
            waited += s;
        }
    }
}
