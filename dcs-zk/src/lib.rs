//! # dcs-zk: hactl's `Dcs` over ZooKeeper
//!
//! Byte-compatible with Patroni's ZooKeeper backend (`patroni/dcs/zookeeper.py`): znodes
//! `/<namespace>/<scope>/{initialize,config,leader,members/<name>,failover,sync,history,status,failsafe}` holding the
//! same UTF-8 values (plain leader name, compact JSON); `leader` and `members/<name>` are **ephemeral** znodes of
//! this process's session, whose timeout is hactl's `ttl`; versioned keys use the znode `version` for CAS.
//!
//! # Embedding
//! ```no_run
//! # async fn f() -> Result<(), ha_core::dcs::DcsError> {
//! use std::time::Duration;
//! use dcs_zk::{ZkDcs, ZkSettings};
//! let dcs = ZkDcs::new(ZkSettings::new(
//!     "127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183",
//!     "service",
//!     "batman",
//!     "node1",
//!     Duration::from_secs(30), // ttl
//!     Duration::from_secs(10), // retry_timeout
//! ));
//! // hand `dcs` to ha_core::driver::Driver::new(...)
//! # Ok(()) }
//! ```
//!
//! # Sessions
//! `leader` and `members/<name>` live as long as this client's session *and* its local lease: a lock that the HA loop
//! stops renewing goes within `ttl`, as with etcd and Consul, and a silently re-opened session (after an expiry) is
//! noticed and everything bound to the old one forgotten. The server's `maxSessionTimeout` must be at least `ttl`
//! (ZooKeeper's default is 20 × tickTime = 40 s): a node whose negotiated session is shorter refuses the lock
//! (`acquire_leader` and `renew_leader` fail naming `maxSessionTimeout`, and a held lock is given back), because the
//! server would drop its key before the lease the driver counts ends. The `session` module's head says how and why.
//!
//! # Round trips
//! Every request is counted ([`ZkDcs::requests_sent`]), and every wait for an answer ([`ZkDcs::round_trips`]).
//! `load` is 1 + (number of keys) + 1 + (number of members) requests in three pipelined waves (3 round trips);
//! `renew_leader` 2 (the read, then a write of our unchanged member key: a follower cut off from its quorum still
//! answers reads, but no write commits without a quorum); `touch_member` 0 when unchanged; `watch_leader` 1.
//! Measured (`benches/zk_dcs.rs`, 3 nodes, before the renewal's write): 4 round trips (10 requests) per loop on a
//! replica, 5 (11) on the leader, ~2.1 kB both ways; the leader now has one more.
//!
//! # Layout
//! - `settings`: [`ZkSettings`], where and who, with the credentials (`auth_data`) and ACLs (`set_acls`);
//! - `session`: one ZooKeeper session, its timeout (= ttl), expiry detection, the local lease and its reaper, and
//!   the one request runner (deadline, counting);
//! - `kv`: keys to znode paths, typed reads and writes, versions and CAS, ephemeral znodes, `load`;
//! - `watch`: the leader watch;
//! - `dcs`: [`ZkDcs`] and its [`Dcs`](ha_core::dcs::Dcs) implementation;
//! - [`error`]: the per-call error taxonomy folded into [`DcsError`](ha_core::dcs::DcsError);
//! - [`testing`]: a throw-away ZooKeeper server on a free loopback port, for tests and benchmarks.

#![warn(missing_docs)]

mod dcs;
pub mod error;
mod kv;
mod session;
mod settings;
pub mod testing;
mod watch;

pub use dcs::ZkDcs;
pub use error::CallError;
pub use settings::{acl_from_patroni, Acl, Permission, ZkSettings};
