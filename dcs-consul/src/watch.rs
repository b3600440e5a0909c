//! The blocking watch on the leader key: Consul's blocking queries (`?index=&wait=`), re-armed until the key itself
//! changed.
//!
//! A blocking query on one key also wakes on unrelated writes in the KV store, so one wake-up is not one change: the
//! loop compares the leader's ModifyIndex with the one the caller knows and re-arms. The requests are raw reqwest
//! calls, not consulrs ones, because consulrs drops X-Consul-Index on a 404 (no leader), the very answer this watch
//! must re-arm from.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ha_core::dcs::{DcsError, WatchOutcome};
use ha_core::model::codec::keys;
use tracing::{debug, info_span, Instrument};

use crate::error::CallError;
use crate::ConsulDcs;

/// A blocking query returns up to `wait / 16` late (Consul adds jitter); the HTTP call is cut this much after that.
const BLOCKING_MARGIN: Duration = Duration::from_millis(250);

impl ConsulDcs {
    /// One raw `GET` of the leader key, blocking when `index` is given. Returns (leader ModifyIndex or `None`,
    /// X-Consul-Index). Raw reqwest because consulrs loses X-Consul-Index on a 404, which is the answer while there
    /// is no leader.
    pub(crate) async fn get_leader_raw(
        &self,
        index: Option<u64>,
        wait: Duration,
    ) -> Result<(Option<u64>, Option<u64>), CallError> {
        const WHAT: &str = "watch leader";
        let url = format!("{}/v1/kv/{}", self.base_url, self.key(keys::LEADER));
        let mut req = self.http.get(&url);
        if let Some(i) = index {
            req = req.query(&[
                ("index", i.to_string()),
                ("wait", format!("{}ms", wait.as_millis().max(1))),
            ]);
        }
        if let Some(t) = &self.client.settings.token {
            req = req.header("X-Consul-Token", t);
        }
        if let Some(dc) = &self.dc {
            req = req.query(&[("dc", dc.as_str())]);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| CallError::Transport {
            what: WHAT,
            detail: e.to_string(),
        })?;
        let idx = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let code = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| CallError::Transport {
            what: WHAT,
            detail: e.to_string(),
        })?;
        match code {
            404 => Ok((None, idx)),
            200 => {
                let pairs: Vec<consulrs::api::kv::common::KVPair> =
                    serde_json::from_slice(&body).map_err(|e| CallError::Decode {
                        what: WHAT,
                        detail: e.to_string(),
                    })?;
                Ok((pairs.first().map(|p| p.modify_index), idx))
            }
            code => Err(CallError::Status {
                what: WHAT,
                code,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    /// The body of [`Dcs::watch_leader`](ha_core::dcs::Dcs::watch_leader): blocking queries on the leader key, from
    /// the index of the last `load`, until its ModifyIndex differs from `known_version` or `timeout` has passed.
    pub(crate) async fn blocking_watch(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        let span = info_span!(
            "consul_watch",
            ?known_version,
            timeout_ms = timeout.as_millis() as u64
        );
        async {
            let deadline = Instant::now() + timeout;
            // Start from the index of the last load: a change since then returns at once and is compared below.
            let mut index = self.state().last_index;
            // Bounded: each pass either returns or waits for a new index; 1000 passes is far beyond any real wait.
            for _ in 0..1000 {
                let left = deadline.saturating_duration_since(Instant::now());
                if left < Duration::from_millis(5) {
                    return Ok(WatchOutcome::TimedOut);
                }
                let (call_limit, wait) = match index {
                    Some(_) => (left + BLOCKING_MARGIN, left),
                    None => (left.min(self.retry_timeout()), Duration::ZERO),
                };
                let got = tokio::time::timeout(call_limit, self.get_leader_raw(index, wait)).await;
                let (leader_version, new_index) = match got {
                    // The blocking query outlived our deadline (Consul's jitter): nothing changed in time.
                    Err(_) if index.is_some() => return Ok(WatchOutcome::TimedOut),
                    Err(_) => {
                        return Err(CallError::Timeout {
                            what: "watch leader",
                            timeout: call_limit,
                        }
                        .into())
                    }
                    Ok(r) => r?,
                };
                if leader_version != known_version {
                    debug!(?leader_version, "leader key changed");
                    return Ok(WatchOutcome::LeaderChanged);
                }
                // Consul's rule: an index that goes backwards (a restored snapshot) restarts from 0.
                index = match (index, new_index) {
                    (Some(old), Some(new)) if new < old => Some(0),
                    (_, Some(new)) => Some(new.max(1)),
                    (_, None) => Some(1),
                };
            }
            Ok(WatchOutcome::TimedOut)
        }
        .instrument(span)
        .await
    }
}
