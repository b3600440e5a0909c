//! # ha-core: PostgreSQL high availability as a library
//!
//! hactl keeps one PostgreSQL primary per cluster and fails over to a replica when it goes, like Patroni, with
//! Patroni's DCS layout and formats. This crate holds the parts that do not touch the outside world, so a product can
//! embed them with its own DCS, its own PostgreSQL control and its own process model.
//!
//! # Layout
//! - [`model`]: the cluster snapshot, members, global config and tags, byte-compatible with Patroni's DCS values.
//! - [`dcs`]: the [`Dcs`](dcs::Dcs) trait and its typed errors; [`mock_dcs`] is an in-memory one with fault
//!   injection for your tests; [`conformance`] is the suite every implementation passes (with feature `testing`,
//!   also `conformance::bench`, the benchmark every backend runs, and `testing`, a counting, cutting TCP proxy).
//! - [`pg`]: the [`PgControl`](pg::PgControl) trait and what it observes.
//! - [`decision`]: the pure HA decision, observation in, ordered actions and a reason out.
//! - [`driver`]: observe → decide → execute on a clock; owns the lease, the watchdog and the member key.
//! - [`node`]: the node builder a product uses (timing checked once, hooks, watchdog).
//! - [`watchdog`]: fencing that works when the loop itself is frozen.
//! - [`sim`]: a simulated PostgreSQL and a deterministic many-node simulator with invariants.
//! - [`time`]: the clocks.
//! - [`sync`]: the one policy for a poisoned lock (recover and go on).
//!
//! # Embedding
//! 1. Implement [`Dcs`](dcs::Dcs) or take one of `dcs-etcd`, `dcs-consul`, `dcs-zk`.
//! 2. Implement [`PgControl`](pg::PgControl) or take `pg-control`.
//! 3. Build the node with [`node::NodeBuilder`] (name, timing checked once, hooks such as
//!    [`on_role_change`](node::NodeBuilder::on_role_change), a watchdog such as `pg_control::fencer::spawn_self`),
//!    then [`run`](driver::Driver::run) it until your stop signal: it stops PostgreSQL and hands the lock over.
//!
//! `examples/embed_etcd_postgres.rs` in the repository is a whole product node on etcd or Consul and real
//! PostgreSQL; `examples/tests/product_failover_sim.rs` is a product's own failover test on [`mock_dcs`] and the
//! simulated PostgreSQL ([`sim::SimPgNet`]) on a [`time::ManualClock`]. The lower-level way, used below and by the
//! reference daemon, builds the [`Driver`](driver::Driver) directly from [`DriverSettings`](driver::DriverSettings).
//!
//! ```
//! use std::sync::Arc;
//! use ha_core::{driver::{Driver, DriverSettings}, decision::NodeIdentity, mock_dcs::MemoryDcs,
//!               sim::{SimPgNet, now_or_never}, time::ManualClock};
//! let clock = ManualClock::new(0);
//! let dcs = MemoryDcs::new(Arc::new(clock.clone()));
//! let pgs = SimPgNet::new();
//! let settings = DriverSettings {
//!     identity: NodeIdentity { name: "node1".into(), conn_url: "postgres://node1:5432/postgres".into(), ..Default::default() },
//!     ..Default::default()
//! };
//! let mut node1 = Driver::new(dcs.client("node1"), pgs.server("node1"), Arc::new(clock.clone()), settings);
//! let report = now_or_never(node1.cycle());          // the first loop bootstraps a new cluster
//! assert_eq!(report.decision.reason, "bootstrapping a new cluster from node1");
//! assert_eq!(dcs.leader().unwrap().0, "node1");
//! ```

#![warn(missing_docs)]

pub mod dcs;
pub mod decision;
pub mod driver;
pub mod mock_dcs;
pub mod model;
pub mod mutants;
pub mod node;
pub mod pg;
pub mod sim;
pub mod sync;
pub mod time;
pub mod watchdog;

pub mod conformance;
pub mod testing;

/// Re-exported so a product implements [`driver::Hooks`], [`dcs::Dcs`] or [`pg::PgControl`] without a dependency of
/// its own on the same version.
pub use async_trait::async_trait;
