//! Test support shared by the DCS backends, pg-control and hactl's tests (not for production):
//! - [`free_port`]: the loopback port every test server binds (always built: std only).
//! - [`ServerProcess`], [`Restartable`], [`or_skip`]: the test-server kit (always built: std only): a server process
//!   spawned with its log, waited for, killed by PID and started again; the one rule for a server binary that is not
//!   installed.
//! - `TcpProxy` (feature `testing`): a loopback TCP proxy that counts the bytes it forwards and can fail the
//!   network in the two ways a partition shows itself.
//! - `pki` (feature `pki`): test certificates, a CA with server and client certificates.
//! - `DriverCluster` (feature `testing`): [`Driver`](crate::driver::Driver)s on a real DCS over a simulated
//!   PostgreSQL, each of whose HA loops can be frozen, reporting who leads and who is promoted.

#[cfg(feature = "testing")]
mod cluster;
#[cfg(feature = "pki")]
pub mod pki;
mod ports;
mod process;
#[cfg(feature = "testing")]
mod proxy;

#[cfg(feature = "testing")]
pub use cluster::{frozen_leader_is_replaced_after_its_lease, DriverCluster, LoopEvent};
pub use ports::free_port;
pub use process::{or_skip, NotReady, Restartable, ServerProcess};
#[cfg(feature = "testing")]
pub use proxy::TcpProxy;
