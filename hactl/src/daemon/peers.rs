//! The other members' WAL positions over HTTP (`GET /patroni`, Patroni's `fetch_nodes_statuses`): asked at once
//! before a leader race in quorum mode, so a vote counts what a member has now, never a stale member key.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use ha_core::driver::{PeerProbe, PeerStatus};
use serde_json::Value;

use crate::client::base_url;
use crate::config::BasicAuth;

/// Each member gets this long to answer (Patroni: 2 s); one that does not answer in time gives no vote.
pub const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub struct HttpPeerProbe {
    pub http: reqwest::Client,
    pub auth: Option<BasicAuth>,
}

/// The position a `/patroni` body reports: `xlog.location` on a primary, the further of `received_location` and
/// `replayed_location` on a replica (Patroni's `wal_position`). `None` when PostgreSQL is not running there.
pub fn status_of(body: &Value) -> Option<PeerStatus> {
    if body.get("state").and_then(Value::as_str) != Some("running") {
        return None;
    }
    let xlog = body.get("xlog")?;
    let field = |k: &str| xlog.get(k).and_then(Value::as_u64);
    match field("location") {
        Some(lsn) => Some(PeerStatus {
            lsn,
            in_recovery: false,
        }),
        None => Some(PeerStatus {
            lsn: field("received_location")
                .unwrap_or(0)
                .max(field("replayed_location").unwrap_or(0)),
            in_recovery: true,
        }),
    }
}

#[async_trait]
impl PeerProbe for HttpPeerProbe {
    async fn statuses(&self, members: &BTreeMap<String, String>) -> BTreeMap<String, PeerStatus> {
        let mut tasks = Vec::new();
        for (name, api_url) in members {
            let mut req = self
                .http
                .get(format!("{}/patroni", base_url(api_url)))
                .timeout(PEER_REQUEST_TIMEOUT);
            if let Some(a) = &self.auth {
                req = req.basic_auth(&a.username, Some(&a.password));
            }
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                // A 503 still carries the body (a replica whose PostgreSQL is down says so).
                let body: Option<Value> = match req.send().await {
                    Ok(r) => r.json().await.ok(),
                    Err(e) => {
                        tracing::info!(member = %name, error = %e, "member did not answer its status");
                        None
                    }
                };
                (name, body.as_ref().and_then(status_of))
            }));
        }
        let mut out = BTreeMap::new();
        for t in tasks {
            if let Ok((name, Some(s))) = t.await {
                out.insert(name, s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_position_is_read_as_patroni_reports_it() {
        let primary = json!({"state": "running", "role": "primary", "xlog": {"location": 500}});
        assert_eq!(
            status_of(&primary),
            Some(PeerStatus {
                lsn: 500,
                in_recovery: false
            })
        );
        let replica = json!({"state": "running", "role": "replica",
            "xlog": {"received_location": 400, "replayed_location": 350}});
        assert_eq!(
            status_of(&replica),
            Some(PeerStatus {
                lsn: 400,
                in_recovery: true
            })
        );
        assert_eq!(
            status_of(&json!({"state": "stopped", "xlog": {"location": 1}})),
            None
        );
        assert_eq!(status_of(&json!({"state": "running"})), None);
    }
}
