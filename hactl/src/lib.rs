//! # hactl: the reference daemon, as a library
//!
//! Everything the `hactl` binary does lives here so that a product embedding ha-core can reuse it piece by piece:
//! load a Patroni config file, serve Patroni's REST API and metrics beside its own driver, or script the cluster with
//! the CLI's commands.
//!
//! # Layout
//! - [`config`]: Patroni's YAML configuration and its `PATRONI_*` environment overrides, typed, with errors that name
//!   the key.
//! - [`api`]: Patroni's REST API and `/metrics` on axum, generic over the state source and the DCS.
//! - [`cli`]: the command line (clap) and patronictl's commands over any [`ha_core::dcs::Dcs`] and members' REST API.
//! - [`dcs`]: builds the DCS client the config names (etcd3 today), with a lease for a node, without for the CLI.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dcs;

/// The version hactl reports (member keys, `/patroni`, metrics).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
