//! The connection: one etcd-client [`Client`] per endpoint, one current endpoint, every call under the deadline.
//!
//! Why not etcd-client's own balanced channel over all endpoints: it does not skip a stopped member (its requests
//! fail with "load balancer discovery error", etcd-client issue #12), and a client whose server went away does not
//! always come back by itself. Here a call that fails to reach its endpoint drops that endpoint's client (it is
//! rebuilt, lazily, on its next use) and moves on to the next endpoint, round and round with short pauses while the
//! deadline allows, so a 3-member
//! cluster with one member down keeps answering, and a restarted server is reached again without help.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use ha_core::sync::lock;
use tokio::time::Instant;
use tracing::debug;

use crate::error::{classify, tls_failure_in, Failure};
use crate::settings::EtcdTls;
use crate::tls_probe;

/// The first pause between two rounds over all endpoints; it doubles up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(50);
/// The longest pause between two rounds: an etcd election takes ~1-2 s, so a member that got a leader is asked
/// again within a few hundred milliseconds.
const RETRY_PAUSE_MAX: Duration = Duration::from_millis(400);
/// A bound on the rounds, whatever the deadline: with the pauses above, 64 rounds last over 20 s.
const ROUNDS_MAX: u32 = 64;

/// How long the TLS probe may take at most (a handshake on a live server takes milliseconds).
const PROBE_BUDGET_MAX: Duration = Duration::from_secs(1);

/// An attempt the server ended by closing the connection (as opposed to refusing it or not answering): under TLS
/// 1.3 that is how a refused client certificate looks.
fn closed_by_server(e: &str) -> bool {
    e.contains("Cancelled") || e.contains("transport error") || e.contains("connection closed")
}

/// The clients of all endpoints and which one is in use.
pub(crate) struct Conn {
    endpoints: Vec<String>,
    options: ConnectOptions,
    /// For the probe of an https endpoint that closes our connections (see `tls_probe`).
    tls: Option<EtcdTls>,
    clients: Vec<Mutex<Option<Client>>>,
    current: AtomicUsize,
    /// The deadline of every call in ms (retry_timeout; changed at run time by `set_retry_timeout`).
    timeout_ms: AtomicU64,
    requests: AtomicU64,
    by_op: Mutex<BTreeMap<&'static str, u64>>,
    /// When a call last ended unreachable (every endpoint tried until the deadline).
    last_unreachable: Mutex<Option<Instant>>,
}

impl Conn {
    /// The deadline of every call.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }
    pub(crate) fn set_timeout(&self, t: Duration) {
        self.timeout_ms
            .store(t.as_millis().max(1) as u64, Ordering::Relaxed);
    }
    pub(crate) fn new(
        endpoints: Vec<String>,
        options: ConnectOptions,
        tls: Option<EtcdTls>,
        timeout: Duration,
    ) -> Conn {
        Conn {
            tls,
            clients: endpoints.iter().map(|_| Mutex::new(None)).collect(),
            endpoints,
            options,
            current: AtomicUsize::new(0),
            timeout_ms: AtomicU64::new(timeout.as_millis() as u64),
            requests: AtomicU64::new(0),
            by_op: Mutex::new(BTreeMap::new()),
            last_unreachable: Mutex::new(None),
        }
    }

    /// RPCs sent so far (each attempt on each endpoint counts: that is what the server sees).
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// [`Conn::requests`] per operation name.
    pub(crate) fn requests_by_op(&self) -> BTreeMap<&'static str, u64> {
        lock(&self.by_op).clone()
    }

    /// When a call last failed for want of a reachable etcd: the watch-fed cache is not trusted again until a
    /// request sent after it succeeded.
    pub(crate) fn last_unreachable(&self) -> Option<Instant> {
        *lock(&self.last_unreachable)
    }

    async fn client(&self, i: usize) -> Result<Client, etcd_client::Error> {
        if let Some(c) = lock(&self.clients[i]).clone() {
            return Ok(c);
        }
        // Lazy: without credentials this sends nothing; with them it authenticates (one RPC).
        let c = Client::connect([self.endpoints[i].as_str()], Some(self.options.clone())).await?;
        *lock(&self.clients[i]) = Some(c.clone());
        Ok(c)
    }

    /// A rejection naming the TLS setting at fault, if a handshake of our own with endpoint `i` says so.
    async fn probe(&self, i: usize, deadline: Instant) -> Option<Failure> {
        let default_tls = EtcdTls::default();
        let tls = self.tls.as_ref().unwrap_or(&default_tls);
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(PROBE_BUDGET_MAX);
        let e = tls_probe::tls_error(&self.endpoints[i], tls, budget).await?;
        tls_failure_in(&format!("{}: {e}", self.endpoints[i]))
    }

    fn drop_client(&self, i: usize) {
        *lock(&self.clients[i]) = None;
    }

    /// Runs `f` on the current endpoint, moving on to the next ones on an unreachable-kind failure, and going
    /// round again after a short pause, until the request timeout is spent. An etcd election ("leader changed",
    /// "no leader" on every member for a second or two) is thus ridden out inside the deadline instead of failing
    /// the loop. Each endpoint of a round gets an equal share of the time left, so a hung member cannot eat the
    /// whole deadline.
    pub(crate) async fn call<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let budget = self.timeout();
        let deadline = Instant::now() + budget;
        let n = self.endpoints.len();
        let mut first = self.current.load(Ordering::Relaxed) % n;
        let mut last = String::from("no attempt made");
        let mut pause = RETRY_PAUSE_MIN;
        let mut probed = false;
        for round in 0..ROUNDS_MAX {
            for attempt in 0..n {
                let i = (first + attempt) % n;
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let share = (deadline - now) / (n - attempt) as u32;
                self.requests.fetch_add(1, Ordering::Relaxed);
                *lock(&self.by_op).entry(op).or_default() += 1;
                let r = tokio::time::timeout(share, async {
                    let c = self.client(i).await?;
                    f(c).await
                })
                .await;
                let failure = match r {
                    Ok(Ok(v)) => {
                        self.current.store(i, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Ok(Err(e)) => classify(&e),
                    Err(_) => Failure::Unreachable(format!("no answer within {share:?}")),
                };
                match failure {
                    Failure::Unreachable(e) => {
                        if !probed
                            && closed_by_server(&e)
                            && self.endpoints[i].starts_with("https://")
                        {
                            probed = true;
                            if let Some(f) = self.probe(i, deadline).await {
                                return Err(f);
                            }
                        }
                        debug!(op, round, endpoint = %self.endpoints[i], error = %e, "etcd endpoint failed; trying the next");
                        self.drop_client(i);
                        last = format!("{}: {e}", self.endpoints[i]);
                    }
                    other => {
                        self.current.store(i, Ordering::Relaxed);
                        return Err(other);
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
            first = (first + 1) % n;
        }
        // Start from the next endpoint on the next call: this one just failed.
        self.current.store((first + 1) % n, Ordering::Relaxed);
        *lock(&self.last_unreachable) = Some(Instant::now());
        Err(Failure::Unreachable(format!(
            "no etcd endpoint answered within {budget:?} (last: {last})"
        )))
    }
}
