//! # hactl: the reference daemon, as a library
//!
//! Everything the `hactl` binary does lives here so that a product embedding ha-core can reuse it piece by piece:
//! load a Patroni config file, serve Patroni's REST API and metrics beside its own driver, or script the cluster with
//! the CLI's commands.
//!
//! # Embedding
//! The `hactl` binary is [`cli::main_with`]; the pieces compose the same way in a product:
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use hactl::{api, config::Config, dcs};
//! use ha_core::{driver::{Driver, DriverSettings}, time::SystemClock};
//! let config = Config::load(Some("node1.yml".as_ref()), &hactl::config::process_env())?;
//! config.validate_for_daemon()?;                           // errors name the key: `postgresql.data_dir` is required
//! let identity = config.node_identity(hactl::VERSION);
//! let pg = pg_control::PgCtl::new(hactl::daemon::pg_settings(&config)?).await?;
//! let driver = Driver::new(
//!     dcs::connect_node(&config)?,
//!     pg,
//!     Arc::new(SystemClock::new()),
//!     DriverSettings { identity: identity.clone(), bootstrap_config: config.bootstrap.dcs.clone(), ..Default::default() },
//! );
//! let ctx = api::ApiContext::new(identity, config.scope.clone(), Arc::new(driver.subscribe()),
//!                                dcs::connect_ctl(&config)?, Arc::new(SystemClock::new()))
//!     .with_auth(config.restapi.authentication.clone())
//!     .with_driver_channels(driver.requests(), driver.failsafe_inbox());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8008").await?;
//! tokio::spawn(api::serve(listener, Arc::new(ctx), std::future::pending()));
//! driver.run(async { let _ = tokio::signal::ctrl_c().await; }).await;  // stops PostgreSQL, releases the lock
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: Patroni's YAML configuration and its `PATRONI_*` environment overrides, typed, with errors that name
//!   the key: a schema and one parser per section.
//! - [`api`]: Patroni's REST API and `/metrics` on axum, generic over the state source and the DCS.
//! - [`cli`]: the command line (clap) and patronictl's commands over any [`ha_core::dcs::Dcs`] and members' REST API,
//!   one file per command under `cli/ctl/` with the shared context in [`cli::ctl`].
//! - [`dcs`]: builds the DCS client the config names (etcd3, Consul, ZooKeeper), with a lease for a node, without
//!   for the CLI.
//! - [`tls`]: HTTPS for the REST API as server and client (rustls), from Patroni's `restapi`/`ctl` keys.
//! - [`daemon`]: `hactl run`: composition, Patroni's callbacks, the fencer (watchdog process), signals.
//! - [`client`]: the REST client to members (timeouts, URLs, one request), used by the CLI and the daemon's
//!   failsafe probe.
//! - [`logging`]: Patroni's `log` section: its line format, JSON lines, per-crate levels, a rotated log file.
//! - [`json`]: the JSON views both the REST API and the CLI use (`cluster_as_json`, the config merge patch).
//!
//! - [`files`]: small files written whole (temporary file, fsync, rename).
//!
//! Imports go one way, so no module imports one that imports it back: `cli` → `daemon` → `api` → `json`; `cli` and
//! `daemon` also use `client` and `dcs`; every one of them may use the leaves `config`, `tls`, `files` and
//! `logging`, and `config` uses only `tls` (its tests also call `daemon`'s settings builder).

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod dcs;
pub mod files;
pub mod json;
pub mod logging;
pub mod template;
pub mod tls;

/// The version hactl reports (member keys, `/patroni`, metrics).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from (`unknown` outside a git checkout); see `build.rs`.
pub const COMMIT: &str = env!("HACTL_COMMIT");

/// `hactl --version`: the version and the commit, e.g. `0.1.0 (38fa2ac1b2c3)`.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HACTL_COMMIT"), ")");
