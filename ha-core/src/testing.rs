//! Test support shared by the DCS backends (feature `testing`, not for production):
//! - [`TcpProxy`]: a loopback TCP proxy that counts the bytes it forwards and can fail the network in the two ways a
//!   partition shows itself.
//! - [`DriverCluster`]: [`Driver`](crate::driver::Driver)s on a real DCS over a simulated PostgreSQL, each of
//!   whose HA loops can be frozen, reporting who leads and who is promoted.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use ha_core::testing::TcpProxy;
//! let proxy = TcpProxy::start(server).await?;   // clients connect to proxy.addr() instead of server
//! proxy.set_blackhole(true);                     // silence: connections stay open, nothing arrives
//! proxy.set_blackhole(false);
//! proxy.set_cut(true);                           // refusal: every connection closed, new ones closed at once
//! proxy.set_cut(false);
//! let (sent, received) = proxy.bytes();          // payload bytes client → server, server → client
//! # let _ = (sent, received); Ok(()) }
//! ```

mod cluster;
mod proxy;

pub use cluster::{DriverCluster, LoopEvent};
pub use proxy::TcpProxy;
