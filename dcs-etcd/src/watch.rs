//! The watches: the cluster watch that feeds the cache (one task per node, started by a load that read from etcd,
//! ended by the first failure, so an outage costs it no requests), and `watch_leader`, which waits on the cache
//! while the cache is trusted and on a Watch RPC of its own otherwise.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use ha_core::dcs::{DcsError, WatchOutcome};
use ha_core::model::codec::keys;
use tokio::time::Instant;
use tracing::{debug, info_span, Instrument};

use crate::cache::WatchState;
use crate::dcs::{Inner, Mode};
use crate::kv::{revision_of, version_of};

impl Inner {
    /// Starts the watch task if none runs, from the cache's revision + 1 (the cache was just filled by a range).
    pub(crate) fn ensure_watch(self: &Arc<Self>) {
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

    /// `watch_leader` of a node: waits on the cache while its watch is live and trusted (no request at all), and
    /// with a Watch RPC of its own for the rest of the time when it is not (ctl mode, before the first load or
    /// keepalive, after the watch or a request failed), so the semantics do not depend on the cache.
    pub(crate) async fn do_watch(
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
