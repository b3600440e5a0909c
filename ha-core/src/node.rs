//! The node builder: one place where a product that embeds hactl with its own configuration (not Patroni's YAML)
//! sets a node's name, timing, hooks and fence, and gets them checked once, before anything runs.
//!
//! It builds the same [`Driver`] the reference daemon runs; what it adds is the checks and defaults an embedder
//! would otherwise have to know: the timing is validated (an invalid one is an error, not a silent default), the
//! member's `conn_url` comes from the [`PgControl`] when it knows it, the ttl, loop_wait and retry_timeout go into
//! the cluster configuration the first node writes (every node then follows the cluster's values, and the DCS
//! client's deadline follows `retry_timeout`), and a node built without a watchdog says so in its log.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use ha_core::{node::NodeBuilder, driver::NodeRole, mock_dcs::MemoryDcs, sim::{SimPgNet, now_or_never},
//!               time::ManualClock};
//! let clock = ManualClock::new(0);
//! let dcs = MemoryDcs::new(Arc::new(clock.clone()));
//! let pgs = SimPgNet::new();
//! let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
//! let seen = changes.clone();
//! let mut node = NodeBuilder::new("node1", dcs.client("node1"), pgs.server("node1"))
//!     .conn_url("postgres://10.0.0.1:5432/postgres")
//!     .timing(Duration::from_secs(10), Duration::from_secs(2), Duration::from_secs(3))
//!     .on_role_change(move |old, new| seen.lock().unwrap().push((old, new)))
//!     .clock(Arc::new(clock.clone()))
//!     .build()?;
//! now_or_never(node.cycle());                           // bootstraps the cluster
//! assert_eq!(dcs.leader().unwrap().0, "node1");
//! assert_eq!(*changes.lock().unwrap(), [(NodeRole::Stopped, NodeRole::Primary)]);
//! // A timing that breaks `loop_wait + 2 * retry_timeout <= ttl` is refused, naming the rule.
//! let bad = NodeBuilder::new("node2", dcs.client("node2"), pgs.server("node2"))
//!     .conn_url("postgres://10.0.0.2:5432/postgres")
//!     .timing(Duration::from_secs(10), Duration::from_secs(5), Duration::from_secs(5))
//!     .build();
//! assert!(bad.is_err());
//! # Ok::<(), ha_core::node::NodeError>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::dcs::Dcs;
use crate::decision::NodeIdentity;
use crate::driver::{Driver, DriverSettings, Hooks, NodeRole, OnRoleChange};
use crate::model::{ConfigError, GlobalConfig, Tags, Timing};
use crate::pg::PgControl;
use crate::time::{Clock, SystemClock};
use crate::watchdog::Watchdog;

/// Why a node could not be built. Each names what to change.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The name given to [`NodeBuilder::new`] is empty.
    #[error("the node name is empty")]
    EmptyName,
    /// The timing breaks a minimum or the rule `loop_wait + 2 * retry_timeout <= ttl`.
    #[error("timing: {0}")]
    Timing(#[from] ConfigError),
    /// Neither [`NodeBuilder::conn_url`] was given nor does the PostgreSQL control know where it listens: replicas
    /// could not find this node's server.
    #[error("no conn_url: call NodeBuilder::conn_url (the PostgreSQL control does not know its own address)")]
    NoConnUrl,
}

/// Builds a [`Driver`] for one node of a product's cluster. See the [module doc](self).
pub struct NodeBuilder<D, P> {
    dcs: D,
    pg: P,
    identity: NodeIdentity,
    timing: (Duration, Duration, Duration),
    cluster_config: GlobalConfig,
    hooks: Option<Box<dyn Hooks>>,
    watchdog: Option<Box<dyn Watchdog>>,
    clock: Option<Arc<dyn Clock>>,
}

impl<D: Dcs, P: PgControl> NodeBuilder<D, P> {
    /// A node named `name` (its member key, its replication slot on the others) with Patroni's default timing
    /// (ttl 30 s, loop_wait 10 s, retry_timeout 10 s).
    pub fn new(name: impl Into<String>, dcs: D, pg: P) -> Self {
        NodeBuilder {
            dcs,
            pg,
            identity: NodeIdentity {
                name: name.into(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                ..Default::default()
            },
            timing: (
                Duration::from_secs(30),
                Duration::from_secs(10),
                Duration::from_secs(10),
            ),
            cluster_config: GlobalConfig::default(),
            hooks: None,
            watchdog: None,
            clock: None,
        }
    }

    /// How long a leader's lock lives unrenewed (`ttl`), how often the loop runs (`loop_wait`) and the deadline
    /// of each DCS call (`retry_timeout`). Checked by [`build`](Self::build). They seed the cluster's
    /// configuration: the node that bootstraps the cluster writes them, and every node follows what is written.
    pub fn timing(mut self, ttl: Duration, loop_wait: Duration, retry_timeout: Duration) -> Self {
        self.timing = (ttl, loop_wait, retry_timeout);
        self
    }

    /// The rest of the cluster-wide configuration the bootstrapping node writes (Patroni's `bootstrap.dcs`:
    /// PostgreSQL parameters, synchronous mode, failsafe mode, slots...). Its timing keys are replaced by
    /// [`timing`](Self::timing).
    pub fn cluster_config(mut self, config: GlobalConfig) -> Self {
        self.cluster_config = config;
        self
    }

    /// Where the other members reach this node's PostgreSQL (`postgres://host:port/postgres`). Defaults to what
    /// the PostgreSQL control reports ([`PgControl::conn_url`]).
    pub fn conn_url(mut self, url: impl Into<String>) -> Self {
        self.identity.conn_url = url.into();
        self
    }

    /// This node's REST API (`http://host:port/patroni`), if the product serves one; see [`NodeIdentity::api_url`].
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.identity.api_url = url.into();
        self
    }

    /// Patroni's tags (`nofailover`, `failover_priority`, `nosync`, ...).
    pub fn tags(mut self, tags: Tags) -> Self {
        self.identity.tags = tags;
        self
    }

    /// Hooks around the driver's actions. Replaces an [`on_role_change`](Self::on_role_change) given before.
    pub fn hooks(mut self, hooks: impl Hooks + 'static) -> Self {
        self.hooks = Some(Box::new(hooks));
        self
    }

    /// A function called with the old and the new role whenever what this node serves changes, including the
    /// final `→ Stopped` of a graceful stop ([`Hooks::on_role_change`]).
    pub fn on_role_change(self, f: impl Fn(NodeRole, NodeRole) + Send + Sync + 'static) -> Self {
        self.hooks(OnRoleChange(f))
    }

    /// What fences PostgreSQL when this node stops renewing its lock (a frozen or killed process): a
    /// `/dev/watchdog` device or `pg_control::fencer::spawn_self`. Without one, a frozen primary keeps taking
    /// writes after its lease ended and a replica promoted; the built node logs a warning saying so.
    pub fn watchdog(mut self, watchdog: impl Watchdog + 'static) -> Self {
        self.watchdog = Some(Box::new(watchdog));
        self
    }

    /// The clock the driver counts leases on (a [`crate::time::ManualClock`] in a product's tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks everything and builds the driver; run it with [`Driver::run`].
    pub fn build(self) -> Result<Driver<D, P>, NodeError> {
        let NodeBuilder {
            dcs,
            pg,
            mut identity,
            timing,
            mut cluster_config,
            hooks,
            watchdog,
            clock,
        } = self;
        if identity.name.trim().is_empty() {
            return Err(NodeError::EmptyName);
        }
        let (ttl, loop_wait, retry) = (
            timing.0.as_secs_f64(),
            timing.1.as_secs_f64(),
            timing.2.as_secs_f64(),
        );
        Timing::from_seconds(ttl, loop_wait, retry)?;
        cluster_config.ttl = Some(ttl);
        cluster_config.loop_wait = Some(loop_wait);
        cluster_config.retry_timeout = Some(retry);
        if identity.conn_url.is_empty() {
            identity.conn_url = pg.conn_url().ok_or(NodeError::NoConnUrl)?;
        }
        let settings = DriverSettings {
            identity,
            bootstrap_config: cluster_config,
            ..Default::default()
        };
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock::new()));
        let mut driver = Driver::new(dcs, pg, clock, settings);
        if let Some(h) = hooks {
            driver = driver.with_hooks(h);
        }
        match watchdog {
            Some(w) => driver = driver.with_watchdog(w),
            None => tracing::warn!(
                node = %driver.identity().name,
                "no watchdog: if this process freezes or dies while primary, PostgreSQL keeps taking writes after \
                 the lease ends and another node promotes (use pg_control::fencer::spawn_self or /dev/watchdog)"
            ),
        }
        Ok(driver)
    }
}
