//! Patroni's REST API on axum: the same paths, status codes, JSON shapes and text bodies, so HAProxy checks,
//! patronictl, vip-manager and the Patroni Grafana dashboard work against a hactl node unchanged.
//!
//! The server is generic over where the node's state comes from ([`StateSource`]: the driver's report channel in
//! the daemon, a fixed report in a test) and over the DCS (any [`DcsClient`]: lease-less, for `/cluster`, `/config`
//! and the switchover writes), so every endpoint is tested without PostgreSQL.
//!
//! Routing follows Patroni's: the first path segment picks the handler (`/patroni`, `/cluster`, ...); any other
//! GET, HEAD or OPTIONS is a health check ([`health`]), HEAD and OPTIONS answering with the status line only.

pub mod access;
pub mod failsafe_promise;
mod handlers;
pub mod health;
pub mod metrics;
pub mod server;
pub mod view;

pub use handlers::merge_patch;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use ha_core::dcs::DcsClient;
use ha_core::decision::NodeIdentity;
use ha_core::driver::{CycleReport, FailsafeInbox, RequestBox};
use ha_core::pg::PgControl;
use ha_core::sync::lock;
use ha_core::time::Clock;
use serde_json::Value;
use tracing::info_span;

use crate::config::BasicAuth;
use handlers::ManualFailoverKind;
use view::{NodeView, StatusExtras};

/// Where the REST API reads the node's state: the latest loop report.
pub trait StateSource: Send + Sync {
    fn latest(&self) -> Option<CycleReport>;
}

impl StateSource for tokio::sync::watch::Receiver<Option<CycleReport>> {
    fn latest(&self) -> Option<CycleReport> {
        self.borrow().clone()
    }
}

/// A fixed state (tests, tools).
impl StateSource for Mutex<Option<CycleReport>> {
    fn latest(&self) -> Option<CycleReport> {
        lock(self).clone()
    }
}

/// A restart requested for later (`POST /restart {"schedule": ...}`), run by a timer task.
struct ScheduledRestart {
    json: Value,
    task: tokio::task::JoinHandle<()>,
}

/// Everything the handlers need. Build it with [`ApiContext::new`] and the `with_*` methods.
pub struct ApiContext {
    pub identity: NodeIdentity,
    pub scope: String,
    /// Basic auth required on POST/PATCH/PUT/DELETE when set.
    pub auth: Option<BasicAuth>,
    /// The allowlist and client-certificate rules on the same methods ([`access`]).
    pub access: access::AccessPolicy,
    pub state: Arc<dyn StateSource>,
    /// A lease-less DCS client: reads and compare-and-set writes only.
    pub dcs: Arc<dyn DcsClient>,
    pub clock: Arc<dyn Clock>,
    pub requests: Arc<RequestBox>,
    pub failsafe_inbox: FailsafeInbox,
    /// Where an accepted failsafe promise is written before it is acknowledged (`None`: kept in memory only).
    pub failsafe_promise: Option<Arc<failsafe_promise::PromiseFile>>,
    /// Called by `POST /reload` (the daemon's SIGHUP path).
    pub reload: Arc<dyn Fn() + Send + Sync>,
    /// How often switchover and restart requests poll for their outcome (Patroni: 1 s).
    pub poll_interval: Duration,
    /// Upper bound of those polls; `None`: Patroni's 2 × max(10 s, loop_wait).
    pub poll_timeout: Option<Duration>,
    /// This node's PostgreSQL, asked for its WAL position at each `GET /patroni` (`None`: the loop's view only).
    pub pg: Option<Arc<dyn PgControl>>,
    dcs_last_seen: AtomicI64,
    scheduled_restart: Mutex<Option<ScheduledRestart>>,
}

/// How long `GET /patroni` waits for PostgreSQL's position before it answers with the loop's (a peer asking
/// before a leader race gives up after 2 s).
const LIVE_POSITION_TIMEOUT: Duration = Duration::from_millis(1000);

impl ApiContext {
    pub fn new(
        identity: NodeIdentity,
        scope: impl Into<String>,
        state: Arc<dyn StateSource>,
        dcs: Arc<dyn DcsClient>,
        clock: Arc<dyn Clock>,
    ) -> ApiContext {
        ApiContext {
            identity,
            scope: scope.into(),
            auth: None,
            access: access::AccessPolicy::default(),
            state,
            dcs,
            clock,
            requests: Arc::default(),
            failsafe_inbox: Arc::default(),
            failsafe_promise: None,
            reload: Arc::new(|| {}),
            poll_interval: Duration::from_secs(1),
            poll_timeout: None,
            pg: None,
            dcs_last_seen: AtomicI64::new(0),
            scheduled_restart: Mutex::new(None),
        }
    }

    pub fn with_auth(mut self, auth: Option<BasicAuth>) -> Self {
        self.auth = auth;
        self
    }
    pub fn with_access(mut self, access: access::AccessPolicy) -> Self {
        self.access = access;
        self
    }
    /// The driver's request flags (restart, reinitialize) and failsafe inbox.
    pub fn with_driver_channels(mut self, requests: Arc<RequestBox>, inbox: FailsafeInbox) -> Self {
        self.requests = requests;
        self.failsafe_inbox = inbox;
        self
    }
    /// Failsafe promises written to this file before `POST /failsafe` answers `Accepted`.
    pub fn with_failsafe_promise_file(mut self, file: Arc<failsafe_promise::PromiseFile>) -> Self {
        self.failsafe_promise = Some(file);
        self
    }
    pub fn with_reload(mut self, f: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.reload = f;
        self
    }
    pub fn with_poll(mut self, interval: Duration, timeout: Option<Duration>) -> Self {
        self.poll_interval = interval;
        self.poll_timeout = timeout;
        self
    }

    /// `GET /patroni` reports the WAL position PostgreSQL has now, as Patroni does.
    pub fn with_pg(mut self, pg: Arc<dyn PgControl>) -> Self {
        self.pg = Some(pg);
        self
    }

    /// The view of this node with the WAL position as it is now, when PostgreSQL answers at once (the loop's
    /// otherwise): other members count quorum votes from it before a leader race.
    pub async fn live_view(&self) -> NodeView {
        let mut v = self.view();
        if let Some(pg) = self.pg.as_ref().filter(|_| v.pg.is_alive()) {
            if let Ok(Some(p)) =
                tokio::time::timeout(LIVE_POSITION_TIMEOUT, pg.wal_position()).await
            {
                p.refresh(&mut v.pg);
            }
        }
        v
    }

    /// The view of this node for one request.
    pub fn view(&self) -> NodeView {
        let report = self.state.latest();
        if let Some(r) = &report {
            if r.cluster.is_ok() {
                // The loop read the DCS at `r.now` on the monotonic clock: convert to epoch seconds.
                let age_ms = self.clock.now().since(r.now) as i64;
                let seen = (self.clock.unix_ms() - age_ms) / 1000;
                self.dcs_last_seen.fetch_max(seen, Ordering::Relaxed);
            }
        }
        let identity = self.identity_for(report.as_ref());
        NodeView::at(&identity, report, Some(self.clock.now()))
    }

    /// This node's identity with its current tags: those of the last re-read configuration file (which the next
    /// loop decides with), else those the loop last published.
    pub fn identity_for(&self, report: Option<&CycleReport>) -> NodeIdentity {
        let mut identity = self.identity.clone();
        if let Some(tags) = self.requests.tags() {
            identity.tags = tags;
        } else if let Some(r) = report {
            identity.tags = r.tags.clone();
        }
        identity
    }

    fn extras(&self) -> StatusExtras {
        let seen = self.dcs_last_seen.load(Ordering::Relaxed);
        StatusExtras {
            dcs_last_seen: (seen > 0).then_some(seen),
            scheduled_restart: lock(&self.scheduled_restart)
                .as_ref()
                .filter(|s| !s.task.is_finished())
                .map(|s| s.json.clone()),
        }
    }

    /// The `/patroni` body.
    pub fn status_json(&self, view: &NodeView) -> Value {
        let identity = self.identity_for(view.report.as_ref());
        view::patroni_json(view, &identity, &self.scope, &self.extras())
    }
}

/// The axum router serving every endpoint.
pub fn router(ctx: Arc<ApiContext>) -> Router {
    Router::new().fallback(dispatch).with_state(ctx)
}

/// Serves the API over plain HTTP on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<ApiContext>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, ctx, server::ServeOptions::default(), shutdown).await
}

/// Serves the API on `listener`, over HTTPS when `options.tls` is set, until `shutdown` resolves.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    ctx: Arc<ApiContext>,
    options: server::ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve_router(listener, router(ctx), options, shutdown).await
}

/// Request bodies above this are refused with 413: the largest real one, a `PATCH /config`, is a few kB.
pub const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) fn text(code: u16, body: impl Into<String>) -> Response {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub(crate) fn json_response(code: u16, v: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_string(v).unwrap_or_default()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn status_only(code: u16) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

pub(crate) fn unauthorized(msg: &str) -> Response {
    let mut r = text(401, msg);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Patroni\""),
    );
    r
}

/// Every request enters here and is routed on method and first path segment, as Patroni's handler does.
async fn dispatch(State(ctx): State<Arc<ApiContext>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let conn = parts.extensions.get::<server::ConnInfo>().copied();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return text(413, "request body too large");
    }
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return text(413, "request body too large"),
    };
    let span = info_span!("rest", node = %ctx.identity.name, cluster = %ctx.scope, %method, path = %uri.path());
    let _g = span.enter();
    let path = uri.path().to_string();
    let segment = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let query: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default();
    drop(_g);

    let unsafe_method = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if unsafe_method {
        // Patroni skips the members part of the allowlist for POST /failsafe: the leader asking is a member.
        let check_members = !(method == Method::POST && segment == "failsafe");
        if let Some(denied) = access::check_access(&ctx, conn, &headers, check_members).await {
            return denied;
        }
    }
    let req = handlers::Request {
        headers,
        body,
        query,
    };
    match (method.clone(), segment.as_str()) {
        (Method::GET, "patroni") => {
            let v = ctx.live_view().await;
            json_response(200, &ctx.status_json(&v))
        }
        (Method::GET, "cluster") => handlers::get_cluster(&ctx).await,
        (Method::GET, "history") => handlers::get_history(&ctx).await,
        (Method::GET, "config") => handlers::get_config(&ctx).await,
        (Method::GET, "failsafe") => handlers::get_failsafe(&ctx),
        (Method::GET, "metrics") => handlers::get_metrics(&ctx),
        (Method::GET, "liveness") => {
            let v = ctx.view();
            let ttl = v.config.timing().ttl_ms;
            status_only(health::liveness_status(&v, ctx.clock.now().0, ttl))
        }
        (Method::GET, "readiness") => {
            let v = ctx.view();
            match health::readiness(&v, &req.query) {
                Ok(()) => status_only(200),
                Err(reason) => {
                    tracing::debug!(%reason, "readiness check failure");
                    status_only(503)
                }
            }
        }
        (Method::GET | Method::HEAD | Method::OPTIONS, _) => {
            let v = ctx.view();
            let tags = ctx.identity_for(v.report.as_ref()).tags;
            let code = health::health_status(&path, &req.query, &v, &tags);
            if method == Method::GET {
                json_response(code, &ctx.status_json(&v))
            } else {
                status_only(code)
            }
        }
        (Method::PATCH, "config") => handlers::patch_config(&ctx, &req).await,
        (Method::PUT, "config") => handlers::put_config(&ctx, &req).await,
        (Method::POST, "switchover") => {
            handlers::post_failover(&ctx, &req, ManualFailoverKind::Switchover).await
        }
        (Method::POST, "failover") => {
            handlers::post_failover(&ctx, &req, ManualFailoverKind::Failover).await
        }
        (Method::DELETE, "switchover") => handlers::delete_switchover(&ctx).await,
        (Method::POST, "restart") => handlers::post_restart(&ctx, &req).await,
        (Method::DELETE, "restart") => handlers::delete_restart(&ctx),
        (Method::POST, "reload") => {
            (ctx.reload)();
            text(202, "reload scheduled")
        }
        (Method::POST, "reinitialize") => handlers::post_reinitialize(&ctx, &req),
        (Method::POST, "failsafe") => handlers::post_failsafe(&ctx, &req),
        _ => text(501, format!("Unsupported method ({method})")),
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query pairs as a map (last value wins).
pub fn query_map(q: &[(String, String)]) -> BTreeMap<&str, &str> {
    q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}
