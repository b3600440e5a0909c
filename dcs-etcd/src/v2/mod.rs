//! etcd's v2 API, for Patroni's `etcd:` section: HTTP and JSON, one TTL per key instead of a lease. Clusters
//! Patroni ran there keep their keys in the v2 store, apart from the v3 one, and tools built on the v2 client read
//! only that store (Debian's vip-manager 1.0 among them). etcd 3.4 serves it with `--enable-v2`; 3.6 dropped it.
//!
//! The keys and values are Patroni's (`etcd.py`): `/<namespace>/<scope>/leader` holding the leader's name with a TTL,
//! `members/<name>` with a TTL, the rest without. Every write that decides something is a compare-and-set the server
//! checks: `prevExist=false` to create the lock or `initialize`, `prevValue=<name>` to renew or delete our lock
//! (never re-creating one we lost), `prevIndex=<version>` for the shared keys, a key's `modifiedIndex` being its
//! version. The lease the driver counts starts when it sends a request; the server starts the key's TTL when it
//! receives it, later, so the driver never believes in a lock longer than the server keeps it.
//!
//! Every call is bounded by `retry_timeout` ([`Dcs::set_retry_timeout`]) across all endpoints; an endpoint that does
//! not answer is skipped for the next one, and the one that answered is tried first next time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ha_core::dcs::{Dcs, DcsClient, DcsError, SharedKey, WatchOutcome};
use ha_core::model::codec::{keys, to_json};
use ha_core::model::{Cluster, KeyPath, MemberData, RawEntry, Status};
use reqwest::Method;
use serde_json::Value;

use crate::settings::EtcdSettings;
use crate::EtcdDcsError;

mod dcs;

/// etcd v2 error codes (`errorCode` in an error body).
mod code {
    /// Key not found.
    pub const KEY_NOT_FOUND: u64 = 100;
    /// Compare failed (`prevValue` or `prevIndex`).
    pub const COMPARE_FAILED: u64 = 101;
    /// Key already exists (`prevExist=false`).
    pub const NODE_EXIST: u64 = 105;
    /// The event at `waitIndex` was compacted away: the watcher must read again.
    pub const EVENT_INDEX_CLEARED: u64 = 401;
}

/// A client of one cluster's keys over etcd's v2 API, as one node (with its member name) or as a ctl client.
pub struct EtcdV2Dcs {
    http: reqwest::Client,
    endpoints: Vec<String>,
    /// `/service/batman`: the cluster's directory, no trailing slash.
    base: String,
    auth: Option<(String, Option<String>)>,
    ttl_s: AtomicU64,
    timeout_ms: AtomicU64,
    /// The endpoint that answered last: tried first.
    preferred: AtomicUsize,
}

/// One answer: the HTTP status, etcd's index at the time (`X-Etcd-Index`) and the JSON body.
struct Reply {
    status: u16,
    index: Option<u64>,
    body: Value,
}

impl Reply {
    fn error_code(&self) -> Option<u64> {
        self.body.get("errorCode").and_then(Value::as_u64)
    }
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    fn message(&self) -> String {
        self.body
            .get("message")
            .and_then(Value::as_str)
            .map(|m| format!("{m} ({})", self.status))
            .unwrap_or_else(|| format!("HTTP {}", self.status))
    }
    /// A refusal that is not a lost compare-and-set: permissions, a bad request, the v2 API switched off.
    fn rejected(&self, op: &str) -> DcsError {
        if self.status == 404 && self.error_code().is_none() {
            return DcsError::Rejected(format!(
                "{op}: this etcd does not serve the v2 API (start it with --enable-v2, or use the etcd3 section)"
            ));
        }
        DcsError::Rejected(format!("{op}: {}", self.message()))
    }
}

impl EtcdV2Dcs {
    /// A node's client (`settings.name` is its member name).
    pub fn new(settings: EtcdSettings) -> Result<EtcdV2Dcs, EtcdDcsError> {
        settings.validate(true)?;
        EtcdV2Dcs::build(settings)
    }

    /// A client without a member name (the CLI, the REST API).
    pub fn ctl(settings: EtcdSettings) -> Result<EtcdV2Dcs, EtcdDcsError> {
        settings.validate(false)?;
        EtcdV2Dcs::build(settings)
    }

    fn build(s: EtcdSettings) -> Result<EtcdV2Dcs, EtcdDcsError> {
        let mut b = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(60));
        if let Some(tls) = &s.tls {
            let bad = |e: reqwest::Error| EtcdDcsError::BadTls(e.to_string());
            if let Some(ca) = &tls.ca_pem {
                b = b
                    .add_root_certificate(reqwest::Certificate::from_pem(ca).map_err(bad)?)
                    .tls_built_in_root_certs(false);
            }
            if let Some((cert, key)) = &tls.identity {
                let mut pem = cert.clone();
                pem.push(b'\n');
                pem.extend_from_slice(key);
                b = b.identity(reqwest::Identity::from_pem(&pem).map_err(bad)?);
            }
        }
        let http = b
            .build()
            .map_err(|e| EtcdDcsError::BadTls(format!("the HTTP client: {e}")))?;
        let prefix = KeyPath::new(&s.namespace, &s.scope);
        Ok(EtcdV2Dcs {
            http,
            endpoints: s
                .endpoints
                .iter()
                .map(|e| {
                    if e.contains("://") {
                        e.trim_end_matches('/').to_string()
                    } else {
                        format!("http://{e}")
                    }
                })
                .collect(),
            base: prefix.prefix().trim_end_matches('/').to_string(),
            auth: s.username.clone().map(|u| (u, s.password.clone())),
            ttl_s: AtomicU64::new(30),
            timeout_ms: AtomicU64::new(s.request_timeout.as_millis() as u64),
            preferred: AtomicUsize::new(0),
        })
    }

    fn deadline(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed).max(1))
    }

    fn ttl(&self) -> String {
        self.ttl_s.load(Ordering::Relaxed).to_string()
    }

    /// `method` on the key `rel` under the cluster's directory (`""`: the directory), with `query` parameters and
    /// a form body, endpoint after endpoint until one answers, all within `within`.
    async fn call(
        &self,
        method: Method,
        rel: &str,
        query: &[(&str, String)],
        form: &[(&str, String)],
        within: Duration,
    ) -> Result<Reply, DcsError> {
        let end = Instant::now() + within;
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut last = String::from("no endpoint configured");
        for i in 0..n {
            let k = (first + i) % n;
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let url = if rel.is_empty() {
                format!("{}/v2/keys{}", self.endpoints[k], self.base)
            } else {
                format!("{}/v2/keys{}/{rel}", self.endpoints[k], self.base)
            };
            let mut req = self
                .http
                .request(method.clone(), &url)
                .timeout(left)
                .query(query);
            if !form.is_empty() {
                req = req.form(form);
            }
            if let Some((user, password)) = &self.auth {
                req = req.basic_auth(user, password.as_deref());
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let index = resp
                        .headers()
                        .get("X-Etcd-Index")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    let text = match resp.text().await {
                        Ok(t) => t,
                        Err(e) => {
                            last = format!("{}: {e}", self.endpoints[k]);
                            continue;
                        }
                    };
                    // etcd answers 5xx while it has no leader: another member may have one.
                    if status >= 500 {
                        last = format!("{}: HTTP {status}: {}", self.endpoints[k], text.trim());
                        continue;
                    }
                    self.preferred.store(k, Ordering::Relaxed);
                    return Ok(Reply {
                        status,
                        index,
                        body: serde_json::from_str(&text).unwrap_or(Value::Null),
                    });
                }
                Err(e) => {
                    let text = chain(&e);
                    // A certificate the client refuses, or one the server refuses: retrying will not help, and a
                    // node must not wait forever on a TLS setting it cannot honour.
                    if text.contains("certificate") || text.contains("UnknownIssuer") {
                        return Err(DcsError::Rejected(format!(
                            "{}: TLS: {text} (check `cacert`, `cert` and `key`)",
                            self.endpoints[k]
                        )));
                    }
                    last = format!("{}: {text}", self.endpoints[k]);
                }
            }
        }
        Err(DcsError::Unreachable(last))
    }

    async fn put(
        &self,
        op: &str,
        rel: &str,
        value: &str,
        conditions: &[(&str, String)],
    ) -> Result<Reply, DcsError> {
        let form = [("value", value.to_string())];
        self.call(Method::PUT, rel, conditions, &form, self.deadline())
            .await
            .map_err(|e| context(op, e))
    }

    async fn delete(&self, op: &str, rel: &str, query: &[(&str, String)]) -> Result<(), DcsError> {
        let r = self
            .call(Method::DELETE, rel, query, &[], self.deadline())
            .await
            .map_err(|e| context(op, e))?;
        match r.error_code() {
            _ if r.ok() => Ok(()),
            // Gone already, or not ours: nothing to delete.
            Some(code::KEY_NOT_FOUND | code::COMPARE_FAILED) => Ok(()),
            _ => Err(r.rejected(op)),
        }
    }

    /// A create-if-absent: `Ok(false)` when the key exists.
    async fn create(&self, op: &str, rel: &str, value: &str, ttl: bool) -> Result<bool, DcsError> {
        let mut cond = vec![("prevExist", "false".to_string())];
        if ttl {
            cond.push(("ttl", self.ttl()));
        }
        let r = self.put(op, rel, value, &cond).await?;
        match r.error_code() {
            _ if r.ok() => Ok(true),
            Some(code::NODE_EXIST) => Ok(false),
            _ => Err(r.rejected(op)),
        }
    }

    async fn set(&self, op: &str, rel: &str, value: &str, ttl: bool) -> Result<(), DcsError> {
        let cond: Vec<(&str, String)> = if ttl {
            vec![("ttl", self.ttl())]
        } else {
            Vec::new()
        };
        let r = self.put(op, rel, value, &cond).await?;
        if r.ok() {
            Ok(())
        } else {
            Err(r.rejected(op))
        }
    }
}

/// An error with its causes, for the message and for telling a TLS refusal from an endpoint that is down.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn context(op: &str, e: DcsError) -> DcsError {
    match e {
        DcsError::Unreachable(m) => DcsError::Unreachable(format!("{op}: {m}")),
        other => other,
    }
}

/// The leaves of a v2 directory listing, with their keys relative to `base` and their `modifiedIndex`.
fn leaves(node: &Value, base: &str, out: &mut Vec<RawEntry>) {
    if node.get("dir").and_then(Value::as_bool) == Some(true) {
        for child in node
            .get("nodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            leaves(child, base, out);
        }
        return;
    }
    let (Some(key), Some(value)) = (
        node.get("key").and_then(Value::as_str),
        node.get("value").and_then(Value::as_str),
    ) else {
        return;
    };
    let Some(rel) = key.strip_prefix(base).map(|r| r.trim_start_matches('/')) else {
        return;
    };
    let version = node
        .get("modifiedIndex")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    out.push(RawEntry::new(rel, value, version));
}
