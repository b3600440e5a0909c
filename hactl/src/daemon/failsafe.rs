//! Failsafe mode over HTTP: with the DCS unreachable, the leader asks every member in the `failsafe` key to accept
//! it (`POST /failsafe`, Patroni's request body, its slots' positions included) and keeps its role only if all of
//! them answer 200 `Accepted`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use ha_core::driver::FailsafeProbe;
use serde_json::json;

use crate::client::base_url;
use crate::config::BasicAuth;

/// Each member gets this long to answer (Patroni: 2 s): a member that does not answer in time has not accepted.
pub const FAILSAFE_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub struct HttpFailsafeProbe {
    pub http: reqwest::Client,
    pub auth: Option<BasicAuth>,
    pub conn_url: String,
    pub api_url: String,
}

#[async_trait]
impl FailsafeProbe for HttpFailsafeProbe {
    async fn confirm_all(
        &self,
        leader: &str,
        members: &BTreeMap<String, String>,
        slots: &BTreeMap<String, u64>,
    ) -> Option<BTreeMap<String, u64>> {
        let body = json!({ "name": leader, "conn_url": self.conn_url, "api_url": self.api_url, "slots": slots });
        let mut tasks = Vec::new();
        for (name, api_url) in members {
            let url = format!("{}/failsafe", base_url(api_url));
            let mut req = self
                .http
                .post(url)
                .timeout(FAILSAFE_REQUEST_TIMEOUT)
                .json(&body);
            if let Some(a) = &self.auth {
                req = req.basic_auth(&a.username, Some(&a.password));
            }
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                match req.send().await {
                    // Accepted, with the member's WAL position in Patroni's `lsn` header (absent: not known).
                    Ok(r) if r.status().as_u16() == 200 => {
                        let lsn = r
                            .headers()
                            .get("lsn")
                            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                        Some((name, lsn))
                    }
                    Ok(r) => {
                        tracing::info!(member = %name, status = r.status().as_u16(), "failsafe refused");
                        None
                    }
                    Err(e) => {
                        tracing::info!(member = %name, error = %e, "failsafe member unreachable");
                        None
                    }
                }
            }));
        }
        let mut lsns = BTreeMap::new();
        let mut all = true;
        for t in tasks {
            match t.await.ok().flatten() {
                Some((name, Some(lsn))) => {
                    lsns.insert(name, lsn);
                }
                Some((_, None)) => {}
                None => all = false,
            }
        }
        all.then_some(lsns)
    }
}
