//! [`EtcdDcs`]: the [`Dcs`] trait over etcd v3, with Patroni's etcd3 semantics so a Patroni node and a hactl node
//! read each other's keys.
//!
//! One lease per process, TTL = ttl; `leader` and `members/<name>` are put with it, no other key is. The lease is
//! the liveness: keepalives renew it, and when the process stops they stop, the lease expires and etcd deletes both
//! keys. The object version everywhere is the key's `mod_revision`; a key's session is its lease id.
//!
//! This module holds the client (its mode, its shared state, its construction) and the trait impl, which runs each
//! operation inside its span; the operations live with what they touch:
//! - `lease`: the lease, and the leader and member keys put with it;
//! - `kv`: plain reads and writes, transactions, compare-and-set on `mod_revision`;
//! - `seen`: what this client's own loads and writes told it;
//! - `cache`: the watch-fed copy of the prefix that answers `load` in node mode (and why that is safe);
//! - `watch`: the cluster watch that feeds the copy, and `watch_leader`.
//!
//! A CLI ([`EtcdDcs::ctl`]) runs once and has no lease: it reads with plain ranges and starts no task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::ConnectOptions;
use ha_core::dcs::{Dcs, DcsClient, DcsError, SharedKey, WatchOutcome};
use ha_core::model::codec::{keys, to_json, KeyPath};
use ha_core::model::{Cluster, MemberData, Status};
use tracing::{info_span, Instrument, Span};

use crate::cache::Cache;
use crate::conn::Conn;
use crate::error::EtcdDcsError;
use crate::lease::{LeaseState, DEFAULT_TTL_S};
use crate::seen::Seen;
use crate::settings::{endpoint_url, EtcdSettings};

/// HTTP/2 pings on an idle connection, so a dead connection is noticed without a request. Not below etcd's
/// `--grpc-keepalive-min-time` (5 s by default): a client that pings more often is disconnected ("too_many_pings").
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

/// Node mode (a daemon with a lease) or ctl mode (a CLI: reads and compare-and-set writes, no lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Node { name: String },
    Ctl,
}

/// The [`Dcs`] of one node (or of a CLI, see [`EtcdDcs::ctl`]) over etcd v3. Cloning is cheap and shares
/// everything (connections, lease, counters): the driver can own one clone while a REST API or a benchmark keeps
/// another.
#[derive(Clone)]
pub struct EtcdDcs {
    inner: Arc<Inner>,
}

/// What the clones of one [`EtcdDcs`] share. The operations on it are spread over the modules named in this
/// module's doc, each next to the state it touches.
pub(crate) struct Inner {
    pub(crate) conn: Conn,
    pub(crate) keys: KeyPath,
    pub(crate) mode: Mode,
    pub(crate) scope: String,
    pub(crate) lease: tokio::sync::Mutex<LeaseState>,
    pub(crate) seen: std::sync::Mutex<Seen>,
    /// The watch-fed copy of the prefix; unused in ctl mode.
    pub(crate) cache: Arc<Cache>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The watch task holds only the cache, not the client: the last clone going away ends it.
        if let Some(task) = self.cache.state().task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for EtcdDcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdDcs")
            .field("prefix", &self.inner.keys.prefix())
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

impl EtcdDcs {
    /// A node's DCS: it owns a lease (granted on first use) for its leader and member keys. No network traffic
    /// happens here, so a node can start while etcd is down; the first call that needs etcd connects.
    pub fn new(settings: EtcdSettings) -> Result<EtcdDcs, EtcdDcsError> {
        settings.validate(true)?;
        let mode = Mode::Node {
            name: settings.name.clone(),
        };
        EtcdDcs::build(settings, mode)
    }

    /// A lease-less DCS for a `patronictl`-like CLI: loads, watches, and compare-and-set writes of `config`,
    /// `failover`, `sync`, `history`, member and cluster removal. The lease operations (acquire, renew,
    /// touch_member) answer `DcsError::Rejected`: a CLI that held a lease would hold it only while it runs.
    pub fn ctl(settings: EtcdSettings) -> Result<EtcdDcs, EtcdDcsError> {
        settings.validate(false)?;
        EtcdDcs::build(settings, Mode::Ctl)
    }

    fn build(settings: EtcdSettings, mode: Mode) -> Result<EtcdDcs, EtcdDcsError> {
        let endpoints = settings
            .endpoints
            .iter()
            .map(|e| endpoint_url(e))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = settings.request_timeout;
        // A member without a leader (cut off from the others) refuses requests instead of answering stale data
        // or hanging; the call then moves to the next endpoint.
        let mut options = ConnectOptions::new()
            .with_require_leader(true)
            .with_connect_timeout(timeout)
            .with_keep_alive(HTTP2_PING_INTERVAL, timeout);
        if let Some(user) = &settings.username {
            options = options
                .with_user(user.clone(), settings.password.clone().unwrap_or_default())
                .with_auto_token_refresh(true);
        }
        if let Some(tls) = &settings.tls {
            options = options.with_tls(tls.options());
        } else if endpoints.iter().any(|e| e.starts_with("https://")) {
            // etcd-client's default for https is no CA at all: trust the system's, as Patroni does.
            options = options.with_tls(crate::settings::EtcdTls::default().options());
        }
        let key_path = KeyPath::new(&settings.namespace, &settings.scope);
        let leader_key = key_path.key(keys::LEADER);
        Ok(EtcdDcs {
            inner: Arc::new(Inner {
                conn: Conn::new(endpoints, options, settings.tls.clone(), timeout),
                keys: key_path,
                mode,
                scope: settings.scope.trim_matches('/').to_string(),
                lease: tokio::sync::Mutex::new(LeaseState {
                    id: None,
                    ttl_s: DEFAULT_TTL_S,
                    refreshed_at: None,
                }),
                seen: std::sync::Mutex::new(Seen {
                    ttl: Duration::from_secs(DEFAULT_TTL_S as u64),
                    ..Seen::default()
                }),
                cache: Arc::new(Cache::new(leader_key)),
            }),
        })
    }

    /// The RPCs this client has sent (every attempt on every endpoint, watches included): the benchmark's count of
    /// DCS round trips.
    pub fn requests(&self) -> u64 {
        self.inner.conn.requests()
    }

    /// [`EtcdDcs::requests`] per operation (`load`, `lease_keepalive`, `acquire_leader`, `watch_leader`, ...;
    /// `watch` is the creation of the cluster watch that feeds the cache, `load` a read that the cache could not
    /// answer).
    pub fn requests_by_op(&self) -> BTreeMap<&'static str, u64> {
        self.inner.conn.requests_by_op()
    }

    /// The lease this node holds now, if one was granted (`Leader.session` of a key we hold).
    pub async fn lease_id(&self) -> Option<i64> {
        self.inner.lease.lock().await.id
    }

    /// The cluster prefix, `/<namespace>/<scope>/`.
    pub fn key_path(&self) -> &KeyPath {
        &self.inner.keys
    }
}

impl Inner {
    fn span(&self, op: &'static str) -> Span {
        let node = match &self.mode {
            Mode::Node { name } => name.as_str(),
            Mode::Ctl => "ctl",
        };
        info_span!("etcd_dcs", node = %node, cluster = %self.scope, op)
    }

    fn node_name(&self, op: &str) -> Result<&str, DcsError> {
        match &self.mode {
            Mode::Node { name } => Ok(name),
            Mode::Ctl => Err(DcsError::Rejected(format!(
                "{op}: a ctl-mode client has no lease"
            ))),
        }
    }
}

#[async_trait]
impl DcsClient for EtcdDcs {
    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.inner
            .write_versioned(key.op(), key.path(), value, version)
            .instrument(self.inner.span(key.op()))
            .await
    }

    async fn load(&self) -> Result<Cluster, DcsError> {
        self.inner
            .do_load()
            .instrument(self.inner.span("load"))
            .await
    }

    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.inner
            .do_delete_member(name)
            .instrument(self.inner.span("delete_member"))
            .await
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        self.inner
            .do_delete_cluster()
            .instrument(self.inner.span("delete_cluster"))
            .await
    }
}

#[async_trait]
impl Dcs for EtcdDcs {
    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        self.inner
            .do_set_ttl(ttl)
            .instrument(self.inner.span("set_ttl"))
            .await
    }

    fn set_retry_timeout(&self, timeout: Duration) {
        self.inner.conn.set_timeout(timeout);
    }

    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        self.inner
            .do_initialize_race(value)
            .instrument(self.inner.span("initialize_race"))
            .await
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        self.inner
            .put(
                "set_initialize",
                self.inner.keys.key(keys::INITIALIZE),
                sysid.to_string(),
            )
            .instrument(self.inner.span("set_initialize"))
            .await
            .map(|_| ())
    }

    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        self.inner
            .delete(
                "cancel_initialization",
                self.inner.keys.key(keys::INITIALIZE),
                false,
            )
            .instrument(self.inner.span("cancel_initialization"))
            .await
    }

    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.inner.node_name("acquire_leader")?;
        self.inner
            .do_acquire(name)
            .instrument(self.inner.span("acquire_leader"))
            .await
    }

    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        self.inner.node_name("renew_leader")?;
        self.inner
            .do_renew(name)
            .instrument(self.inner.span("renew_leader"))
            .await
    }

    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        self.inner
            .do_release(name)
            .instrument(self.inner.span("release_leader"))
            .await
    }

    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        self.inner.node_name("touch_member")?;
        self.inner
            .do_touch_member(name, data)
            .instrument(self.inner.span("touch_member"))
            .await
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        self.inner
            .put(
                "write_status",
                self.inner.keys.key(keys::STATUS),
                to_json(status),
            )
            .instrument(self.inner.span("write_status"))
            .await
            .map(|_| ())
    }

    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        self.inner
            .put(
                "write_failsafe",
                self.inner.keys.key(keys::FAILSAFE),
                to_json(members),
            )
            .instrument(self.inner.span("write_failsafe"))
            .await
            .map(|_| ())
    }

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        self.inner
            .do_watch(known_version, timeout)
            .instrument(self.inner.span("watch_leader"))
            .await
    }
}
