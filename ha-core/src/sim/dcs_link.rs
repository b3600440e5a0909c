//! The network between a simulated node and the DCS server: each request travels for a while before the server
//! applies it, its reply travels back, and either leg may take longer than the client's deadline (`retry_timeout`).
//! A request the server applied may so be answered with a timeout (its reply lost or late): the client does not know
//! whether its renewal, acquire or write took effect, as with a real DCS. The server applies each request at the
//! true time it arrives; the lease the driver counts runs from the send on its own clock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::clock::Until;
use crate::dcs::{Dcs, DcsClient, DcsError, SharedKey, WatchOutcome};
use crate::mock_dcs::MemoryDcsClient;
use crate::model::{Cluster, MemberData, Status};
use crate::sync::lock;
use crate::time::{Clock, ManualClock, Millis};

/// What is wrong with one node's link to the DCS for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTrouble {
    /// Each leg (request, reply) takes up to this long, drawn per call.
    pub max_latency_ms: u64,
    /// The share of replies lost on the way back (the request was applied), in percent.
    pub reply_loss_pct: u32,
    /// The share of reads answered from an older state (a lagging etcd member's serializable read, a client cache
    /// behind its watch, a ZooKeeper follower cut off from its quorum), in percent: the snapshot an earlier read on
    /// this troubled link got.
    pub stale_read_pct: u32,
}

/// The troubled links, by node name (a node absent here has a perfect link), and what they did to calls.
#[derive(Clone, Default)]
pub struct DcsLinks(
    pub(super) Arc<Mutex<BTreeMap<String, LinkTrouble>>>,
    pub(super) Arc<LinkCounts>,
);

/// What troubled links did to calls, over the run.
#[derive(Default)]
pub struct LinkCounts {
    /// Applied by the server, answered too late or not at all.
    pub applied_unanswered: AtomicU64,
    /// Timed out before reaching the server.
    pub timed_out: AtomicU64,
    /// Reads answered from an older snapshot.
    pub stale_reads: AtomicU64,
}

impl DcsLinks {
    pub(super) fn set(&self, node: &str, trouble: Option<LinkTrouble>) {
        let mut g = lock(&self.0);
        match trouble {
            Some(t) => g.insert(node.to_string(), t),
            None => g.remove(node),
        };
    }
}

/// One call's fate, drawn when it is sent.
struct Flight {
    counts: Arc<LinkCounts>,
    truth: ManualClock,
    sent: Millis,
    request_ms: u64,
    reply_ms: u64,
    reply_lost: bool,
    stale: bool,
    deadline_ms: u64,
}

impl Flight {
    /// Waits for the request to reach the server; a request slower than the deadline is given up on (and never
    /// applied: a real client closes the connection).
    async fn arrive(&self) -> Result<(), DcsError> {
        if self.request_ms >= self.deadline_ms {
            Until::new(&self.truth, self.sent.plus_ms(self.deadline_ms)).await;
            self.counts.timed_out.fetch_add(1, Ordering::Relaxed);
            return Err(DcsError::Unreachable(
                "simulated DCS request timed out".into(),
            ));
        }
        Until::new(&self.truth, self.sent.plus_ms(self.request_ms)).await;
        Ok(())
    }

    /// Carries the server's answer back, or times out after the server applied the request.
    async fn answer<T>(&self, r: Result<T, DcsError>) -> Result<T, DcsError> {
        if self.reply_lost || self.request_ms + self.reply_ms >= self.deadline_ms {
            Until::new(&self.truth, self.sent.plus_ms(self.deadline_ms)).await;
            self.counts
                .applied_unanswered
                .fetch_add(1, Ordering::Relaxed);
            return Err(DcsError::Unreachable(
                "simulated DCS reply lost or late: the request may have been applied".into(),
            ));
        }
        Until::new(
            &self.truth,
            self.sent.plus_ms(self.request_ms + self.reply_ms),
        )
        .await;
        r
    }
}

/// A node's DCS client as the driver holds it: the [`MemoryDcsClient`] behind a link with latency and lost replies.
pub struct SimDcsLink {
    inner: MemoryDcsClient,
    name: String,
    truth: ManualClock,
    links: DcsLinks,
    rng: Mutex<ChaCha8Rng>,
    deadline_ms: AtomicU64,
    /// The snapshot a read on the troubled link got, which a stale read answers again.
    seen: Mutex<Option<Cluster>>,
}

impl SimDcsLink {
    pub(super) fn new(
        inner: MemoryDcsClient,
        name: &str,
        truth: ManualClock,
        links: DcsLinks,
        rng: ChaCha8Rng,
        retry_timeout_ms: u64,
    ) -> SimDcsLink {
        SimDcsLink {
            inner,
            name: name.to_string(),
            truth,
            links,
            rng: Mutex::new(rng),
            deadline_ms: AtomicU64::new(retry_timeout_ms),
            seen: Mutex::new(None),
        }
    }

    fn flight(&self) -> Flight {
        let trouble = lock(&self.links.0).get(&self.name).copied();
        let (request_ms, reply_ms, reply_lost, stale) = match trouble {
            None => (0, 0, false, false),
            Some(t) => {
                let mut rng = lock(&self.rng);
                (
                    rng.gen_range(0..=t.max_latency_ms),
                    rng.gen_range(0..=t.max_latency_ms),
                    rng.gen_range(0..100) < t.reply_loss_pct,
                    rng.gen_range(0..100) < t.stale_read_pct,
                )
            }
        };
        Flight {
            counts: self.links.1.clone(),
            truth: self.truth.clone(),
            sent: self.truth.now(),
            request_ms,
            reply_ms,
            reply_lost,
            stale,
            deadline_ms: self.deadline_ms.load(Ordering::SeqCst),
        }
    }
}

/// Sends one call over the link: request leg, the server applies it, reply leg.
macro_rules! over_link {
    ($self:ident, $call:expr) => {{
        let flight = $self.flight();
        flight.arrive().await?;
        let r = $call.await;
        flight.answer(r).await
    }};
}

#[async_trait]
impl DcsClient for SimDcsLink {
    async fn load(&self) -> Result<Cluster, DcsError> {
        let flight = self.flight();
        flight.arrive().await?;
        let fresh = self.inner.load().await;
        let answer = match fresh {
            Ok(c) if flight.stale => {
                let mut seen = lock(&self.seen);
                match seen.as_ref() {
                    Some(old) => {
                        self.links.1.stale_reads.fetch_add(1, Ordering::Relaxed);
                        Ok(old.clone())
                    }
                    None => {
                        *seen = Some(c.clone());
                        Ok(c)
                    }
                }
            }
            Ok(c) => {
                // Kept only while the link is troubled (a stale read answers from it); cleared once it is not.
                let mut seen = lock(&self.seen);
                if lock(&self.links.0).contains_key(&self.name) {
                    *seen = Some(c.clone());
                } else {
                    *seen = None;
                }
                Ok(c)
            }
            e => e,
        };
        flight.answer(answer).await
    }
    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        over_link!(self, self.inner.delete_member(name))
    }
    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        over_link!(self, self.inner.write_shared(key, value, version))
    }
    async fn delete_cluster(&self) -> Result<(), DcsError> {
        over_link!(self, self.inner.delete_cluster())
    }
}

#[async_trait]
impl Dcs for SimDcsLink {
    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        // Local to the client (etcd and Consul make the next lease with it): no message.
        self.inner.set_ttl(ttl).await
    }
    fn set_retry_timeout(&self, timeout: Duration) {
        self.deadline_ms
            .store(timeout.as_millis() as u64, Ordering::SeqCst);
    }
    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        over_link!(self, self.inner.initialize_race(value))
    }
    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        over_link!(self, self.inner.set_initialize(sysid))
    }
    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        over_link!(self, self.inner.cancel_initialization())
    }
    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        over_link!(self, self.inner.acquire_leader(name))
    }
    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        over_link!(self, self.inner.renew_leader(name))
    }
    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        over_link!(self, self.inner.release_leader(name))
    }
    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        over_link!(self, self.inner.touch_member(name, data))
    }
    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        over_link!(self, self.inner.write_status(status))
    }
    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        over_link!(self, self.inner.write_failsafe(members))
    }
    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        // The simulator wakes daemons on a leader change itself (with a per-node delay); the driver's `run` loop,
        // the only caller, is not what it steps.
        self.inner.watch_leader(known_version, timeout).await
    }
}
