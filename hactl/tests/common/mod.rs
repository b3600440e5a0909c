//! A simulated cluster for the REST and CLI tests: ha-core's real driver over the in-memory DCS and the simulated
//! PostgreSQL, on a manual clock, with each node's REST API context wired to its driver.
#![allow(dead_code)]

pub mod certs;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request};
use ha_core::decision::NodeIdentity;
use ha_core::driver::{CycleReport, Driver, DriverSettings};
use ha_core::mock_dcs::{MemoryDcs, MemoryDcsClient};
use ha_core::model::{GlobalConfig, Tags};
use ha_core::sim::{now_or_never, SimPg, SimPgNet};
use ha_core::time::ManualClock;
use hactl::api::{ApiContext, StateSource};
use hactl::config::BasicAuth;
use http_body_util::BodyExt;
use tower::ServiceExt;

pub const SCOPE: &str = "batman";

pub struct TestCluster {
    pub clock: ManualClock,
    pub dcs: MemoryDcs,
    pub pgs: SimPgNet,
    pub drivers: Arc<Mutex<Vec<Driver<MemoryDcsClient, SimPg>>>>,
    pub ctxs: Vec<Arc<ApiContext>>,
}

pub fn identity(i: usize, tags: Tags) -> NodeIdentity {
    NodeIdentity {
        name: format!("node{i}"),
        conn_url: format!("postgres://127.0.0.1:{}/postgres", 5431 + i),
        api_url: format!("http://127.0.0.1:{}/patroni", 8007 + i),
        tags,
        version: hactl::VERSION.to_string(),
    }
}

pub fn bootstrap_config() -> GlobalConfig {
    GlobalConfig {
        ttl: Some(5.0),
        loop_wait: Some(1.0),
        retry_timeout: Some(2.0),
        ..Default::default()
    }
}

impl TestCluster {
    /// `n` nodes; `auth` on every REST API; node `i` gets `tags[i]` when given.
    pub fn new(n: usize, auth: Option<BasicAuth>, tags: &[Tags]) -> TestCluster {
        TestCluster::with_api_ports(n, auth, tags, None)
    }

    /// `n` nodes whose REST APIs listen on real sockets (their member keys carry those URLs), served until the test
    /// ends.
    pub async fn served(n: usize, auth: Option<BasicAuth>) -> TestCluster {
        let mut listeners = Vec::new();
        for _ in 0..n {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let c = TestCluster::with_api_ports(n, auth, &[], Some(ports));
        for (l, ctx) in listeners.into_iter().zip(c.ctxs.iter()) {
            tokio::spawn(hactl::api::serve(l, ctx.clone(), std::future::pending()));
        }
        c
    }

    fn with_api_ports(
        n: usize,
        auth: Option<BasicAuth>,
        tags: &[Tags],
        ports: Option<Vec<u16>>,
    ) -> TestCluster {
        let clock = ManualClock::new(1_767_225_600_000);
        let dcs = MemoryDcs::new(Arc::new(clock.clone()));
        let pgs = SimPgNet::new();
        let mut drivers = Vec::new();
        let mut ctxs = Vec::new();
        for i in 1..=n {
            let mut id = identity(i, tags.get(i - 1).cloned().unwrap_or_default());
            if let Some(p) = &ports {
                id.api_url = format!("http://127.0.0.1:{}/patroni", p[i - 1]);
            }
            let settings = DriverSettings {
                identity: id.clone(),
                bootstrap_config: bootstrap_config(),
                ..Default::default()
            };
            let d = Driver::new(
                dcs.client(&id.name),
                pgs.server(&id.name),
                Arc::new(clock.clone()),
                settings,
            );
            let ctx = ApiContext::new(
                id,
                SCOPE,
                Arc::new(d.subscribe()),
                Arc::new(dcs.client(&format!("api-node{i}"))),
                Arc::new(clock.clone()),
            )
            .with_auth(auth.clone())
            .with_driver_channels(d.requests(), d.failsafe_inbox())
            .with_poll(Duration::from_millis(5), Some(Duration::from_secs(10)));
            drivers.push(d);
            ctxs.push(Arc::new(ctx));
        }
        TestCluster {
            clock,
            dcs,
            pgs,
            drivers: Arc::new(Mutex::new(drivers)),
            ctxs,
        }
    }

    /// One loop of every node, WAL shipped, one second passes.
    pub fn step(&self) {
        step(&self.drivers, &self.pgs, &self.clock);
    }

    /// Runs until node1 leads and every other node streams from it.
    pub fn settle(&self) {
        for _ in 0..30 {
            self.step();
        }
        assert_eq!(self.dcs.leader().map(|l| l.0).as_deref(), Some("node1"));
    }

    /// Runs the loops in the background (for requests that wait for a loop to act).
    pub fn pump(&self) -> tokio::task::JoinHandle<()> {
        let drivers = self.drivers.clone();
        let pgs = self.pgs.clone();
        let clock = self.clock.clone();
        tokio::spawn(async move {
            for _ in 0..2000 {
                step(&drivers, &pgs, &clock);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    }

    pub fn router(&self, i: usize) -> axum::Router {
        hactl::api::router(self.ctxs[i - 1].clone())
    }

    pub fn report(&self, i: usize) -> CycleReport {
        self.ctxs[i - 1].state.latest().expect("a loop ran")
    }
}

fn step(drivers: &Mutex<Vec<Driver<MemoryDcsClient, SimPg>>>, pgs: &SimPgNet, clock: &ManualClock) {
    let mut ds = drivers.lock().unwrap();
    for d in ds.iter_mut() {
        now_or_never(d.cycle());
    }
    drop(ds);
    for _ in 0..5 {
        pgs.replicate_step();
    }
    clock.advance_ms(1000);
}

/// A context over a fixed report (a stopped node, a lagging replica...).
pub fn fixed_context(base: &ApiContext, report: Option<CycleReport>) -> Arc<ApiContext> {
    let state: Arc<dyn StateSource> = Arc::new(Mutex::new(report));
    Arc::new(
        ApiContext::new(
            base.identity.clone(),
            SCOPE,
            state,
            base.dcs.clone(),
            base.clock.clone(),
        )
        .with_auth(base.auth.clone()),
    )
}

pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: HeaderMap,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One request through the router (no socket). A body gets its Content-Length, as any HTTP client sends it.
pub async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    auth: Option<(&str, &str)>,
) -> Reply {
    use base64::Engine;
    let mut b = Request::builder().method(method).uri(uri);
    if let Some((u, p)) = auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        b = b.header("authorization", format!("Basic {token}"));
    }
    let req = match body {
        Some(text) => b
            .header("content-length", text.len())
            .header("content-type", "application/json")
            .body(Body::from(text.to_string()))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    };
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    }
}
