//! # dcs-etcd: hactl's DCS over etcd v3
//!
//! [`EtcdDcs`] implements [`ha_core::dcs::Dcs`] on etcd's gRPC API with Patroni's etcd3 semantics, so a hactl node
//! and a Patroni node (or `patronictl`, vip-manager, a confd template) read and write the same keys:
//!
//! - keys under `/<namespace>/<scope>/`, values byte-for-byte as Patroni writes them (compact JSON; the leader key
//!   is the bare member name);
//! - one lease per process with TTL = `ttl`; `leader` and `members/<name>` are put with it;
//! - acquire = txn `create_revision == 0` → put with the lease (on `LeaseNotFound`: new lease, one retry);
//!   renew = lease keepalive, plus a txn `value == name` → put with our lease when the key sits on another lease;
//!   release = txn `value == name` → delete; `config`/`failover`/`sync`/`history` compare-and-set on `mod_revision`;
//! - a key's version is its `mod_revision`, a leader's session its lease id.
//!
//! A node keeps one watch on the cluster prefix and answers `load` and `watch_leader` from the copy it feeds, as
//! Patroni 4 does: an idle loop costs one request, the lease keepalive. The copy is trusted only while the watch
//! is live and the keepalives succeed, and never shows an older state than this node's own last write; otherwise
//! `load` reads linearizably from etcd (see the `cache` module doc for why that is safe).
//!
//! Every call runs under the request timeout (`retry_timeout`): an etcd that does not answer gives
//! `DcsError::Unreachable` within it, on any endpoint list. With several endpoints a call moves on to the next
//! member when one is down, and a server that comes back is reconnected to without help.
//!
//! # Embedding
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use dcs_etcd::{EtcdDcs, EtcdSettings};
//! use ha_core::dcs::{Dcs, DcsClient};
//! let mut settings = EtcdSettings::new(["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"], "batman", "node1");
//! settings.request_timeout = Duration::from_secs(10);   // retry_timeout
//! let dcs = EtcdDcs::new(settings)?;                    // no network yet: connects on first use
//! dcs.set_ttl(Duration::from_secs(30)).await?;
//! let cluster = dcs.load().await?;
//! # let _ = cluster; Ok(()) }
//! ```
//! Hand the `EtcdDcs` to `ha_core::driver::Driver::new`. A CLI uses [`EtcdDcs::ctl`] (no lease).
//!
//! # Layout
//! - [`settings`]: [`EtcdSettings`] and [`EtcdTls`] (CA, client certificate), validated before any traffic.
//! - [`error`]: [`EtcdDcsError`] (bad settings) and how etcd errors map onto `DcsError` kinds.
//! - `conn`: one client per endpoint, failover between endpoints, the deadline, the request counter.
//! - `dcs`: [`EtcdDcs`] itself and its `impl Dcs`, which runs each operation inside its span.
//! - `lease`: the lease, and the leader and member keys put with it (acquire, renew, release, touch).
//! - `kv`: plain puts, deletes and ranges, transactions, compare-and-set on a key's `mod_revision`.
//! - `tls_probe`: why an https endpoint closed the connection (a refused client certificate, under TLS 1.3).
//! - `seen`: what this client's own loads and writes told it (read-your-writes, the write shortcuts).
//! - `cache`: the watch-fed copy of the prefix that answers `load`, and why a cached load is safe.
//! - `watch`: the cluster watch that feeds the cache, and `watch_leader`.
//! - [`testing`]: real etcd servers and clusters for tests (yours too), and a byte-counting proxy.

#![warn(missing_docs)]

mod cache;
mod conn;
mod dcs;
pub mod error;
mod kv;
mod lease;
mod seen;
pub mod settings;
pub mod testing;
mod tls_probe;
pub mod v2;
mod watch;

pub use dcs::EtcdDcs;
pub use error::EtcdDcsError;
pub use settings::{EtcdSettings, EtcdTls, DEFAULT_NAMESPACE, DEFAULT_REQUEST_TIMEOUT};
pub use v2::EtcdV2Dcs;
