//! Watching the leader key: [`Inner::watch_leader`] returns when the leader znode changes, when the session is lost
//! (its watch would never fire), or at the deadline. One server-side watch is armed at a time per session (see
//! `Conn::leader_armed`), so a stable cluster does not pile up watcher closures in the client.

use std::sync::atomic::Ordering;
use std::time::Duration;

use ha_core::dcs::{DcsError, WatchOutcome};
use ha_core::model::codec::keys;
use tracing::{info_span, Instrument};
use zookeeper_async::WatchedEvent;

use crate::dcs::Inner;
use crate::kv::version_of;

impl Inner {
    /// Waits until the leader key's version differs from `known_version`, the session is lost, or `timeout` passes.
    pub(crate) async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        let span = info_span!(
            "zk_watch",
            ?known_version,
            timeout_ms = timeout.as_millis() as u64
        );
        async {
            let deadline = tokio::time::Instant::now() + timeout;
            let c = self.conn().await?;
            // Subscribed before looking, so a change between the look and the wait is not missed.
            let mut fired = c.leader_fired.subscribe();
            let path = self.key(keys::LEADER);
            let stat = if c.leader_armed.swap(true, Ordering::SeqCst) {
                self.op(&c, "watch leader", c.zk.exists(&path, false))
                    .await?
            } else {
                let armed = c.leader_armed.clone();
                let tx = c.leader_fired.clone();
                let r = self
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
