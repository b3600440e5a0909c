//! # dcs-consul: hactl's `Dcs` over Consul
//!
//! Byte-compatible with Patroni's Consul backend (`patroni/dcs/consul.py`): the same keys
//! (`service/<scope>/leader`, ...; Consul keys carry no leading slash), the same values (plain leader name, compact
//! JSON), the same locking: one session per process named `<scope>-<name>` with `Behavior=delete`, and the `leader`
//! and `members/<name>` keys written with `?acquire=<session>`.
//!
//! # Embedding
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use dcs_consul::{ConsulDcs, ConsulSettings};
//! let dcs = ConsulDcs::new(ConsulSettings {
//!     url: "http://127.0.0.1:8500".into(),
//!     namespace: "service".into(),
//!     scope: "batman".into(),
//!     name: "node1".into(),
//!     ttl: Duration::from_secs(30),
//!     retry_timeout: Duration::from_secs(10),
//!     token: None,
//!     tls: Default::default(),
//!     dc: None,
//!     consistency: None,
//! })?;
//! // hand `dcs` to ha_core::driver::Driver::new(...)
//! # Ok(()) }
//! ```
//!
//! # Timing: how hactl's ttl maps onto Consul, and the failover bound
//! Consul refuses session TTLs under 10 s and destroys an unrenewed session lazily, up to **2 × its TTL** after the
//! last renewal (its timers run at twice the TTL). As Patroni does, the session TTL is `ttl / 2`, floored at Consul's
//! 10 s minimum: `session_ttl = max(10 s, ttl / 2)`. Consequences:
//! - with `ttl >= 20 s` (Patroni's default is 30 s) a dead leader's key disappears at most `ttl` after its last
//!   renewal, the same bound as etcd and ZooKeeper;
//! - with `ttl < 20 s` the key may survive up to **20 s**: the failover bound is `max(ttl, 20 s)` after the last
//!   renewal, plus one `loop_wait` for a replica to notice, plus its `retry_timeout`.
//!
//! Safety does not depend on this bound: the holder stops acting as primary when its *own* lease runs out
//! (`ttl` minus a margin from the renewal it sent), which is never later than Consul's destruction of the session.
//! `LockDelay` is set to 0: Consul's default (15 s) would forbid anyone to take a lock for 15 s after the session that
//! held it was invalidated, stalling every failover by 15 s.
//!
//! # Round trips
//! Every request goes through one counter ([`ConsulDcs::requests_sent`]). A steady HA loop costs: `load` 1, the
//! session renew 1 (in `touch_member`, or in `renew_leader` for the leader, which then reads the leader key: +1),
//! the member key write only when its value changed, and the blocking watch (≥ 1: Consul's blocking query on one key
//! also wakes on unrelated writes in the KV store, so it re-arms until the leader key itself changed). Measured
//! (`benches/consul_dcs.rs`, 3 nodes): 3 round trips per loop on a replica, 4 on the leader, ~3.4 kB both ways.
//!
//! # Layout
//! One file per thing the crate holds, in the layout the three DCS backends share:
//! - `settings.rs`: [`ConsulSettings`] (where and who) and the constructors built from them, [`ConsulDcs::new`]
//!   and [`ConsulDcs::ctl`];
//! - `session.rs`: the Consul session every held key hangs on: its TTL rule ([`session_ttl_for`]), its creation and
//!   renewal;
//! - `kv.rs`: typed reads and writes of the KV store, compare-and-set on `ModifyIndex`, `?acquire=` writes;
//! - `watch.rs`: the blocking watch on the leader key (Consul's blocking queries);
//! - `dcs.rs`: [`ConsulDcs`] itself, its state, and its [`Dcs`](ha_core::dcs::Dcs) impl;
//! - [`error`]: the per-call error taxonomy folded into [`DcsError`](ha_core::dcs::DcsError);
//! - [`testing`]: a throw-away Consul server on free loopback ports, for tests and benchmarks.

#![warn(missing_docs)]

mod dcs;
pub mod error;
mod kv;
mod session;
mod settings;
pub mod testing;
mod watch;

pub use dcs::ConsulDcs;
pub use error::CallError;
pub use session::{session_ttl_for, worst_case_session_lifetime, MIN_SESSION_TTL};
pub use settings::{Consistency, ConsulSettings, ConsulTls};
