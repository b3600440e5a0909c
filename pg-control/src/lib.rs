//! `PgControl` over PostgreSQL's binaries: the real PostgreSQL under hactl's HA logic.
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo() -> Result<(), pg_control::Error> {
//! use pg_control::{Credentials, PgCtl, PgSettings};
//!
//! let mut s = PgSettings::new("node1", "/usr/lib/postgresql/15/bin", "/var/lib/hactl/node1", 5432);
//! s.os_user = Some("postgres".into()); // required when the daemon runs as root
//! s.replication = Credentials::new("replicator", Some("secret"));
//! let pg = PgCtl::new(s).await?;       // checks binaries, version, ownership, credentials; changes nothing
//! let sysid = pg.bootstrap().await?;   // initdb, managed config, start, roles
//! let obs = pg.observe().await;        // never hangs: a hung server shows as Unresponsive
//! # let _ = (sysid, obs); Ok(()) }
//! ```
//!
//! `PgCtl` implements [`ha_core::pg::PgControl`], so it plugs into [`ha_core::driver::Driver`]. Its inherent
//! methods of the same names return this crate's typed [`Error`]; the trait's map it to
//! [`ha_core::pg::PgError`]. The primary's daemon also calls [`PgCtl::ensure_slots`] with the member list.
//!
//! # Layout
//!
//! - `settings`: [`PgSettings`], Patroni's `postgresql:` section (credentials, initdb options, timeouts).
//! - `ctl`: [`PgCtl`] itself: checking the settings, connections, the files we own, starting the postmaster.
//! - `lifecycle`: bootstrap, start as primary or replica, stop, restart, reload, promote, follow, parameters.
//! - `replicas`: clone (pg_basebackup), rewind (pg_rewind), reinitialize, replication slots.
//! - `fence`: SIGKILL of the postmaster and all its children.
//! - `observe`: what state the server is in, from postmaster.pid, /proc, pg_controldata and one bounded query.
//! - `conf`: the files we own (managed postgresql.conf including the user's postgresql.base.conf, pg_hba, pgpass).
//! - `controldata`: parsing pg_controldata, timeline history files and LSNs.
//! - `os`: running binaries as the PostgreSQL user under a timeout, file ownership, /proc and signals.
//! - `error`: the typed [`Error`].
//!
//! # Rules it keeps
//!
//! - PostgreSQL never runs as root: as root, binaries are spawned as [`PgSettings::os_user`].
//! - Every call is bounded (see [`Timeouts`]): a hung server makes a call fail with a timeout, never hang.
//! - Passwords live in a 0600 pgpass file, never on a command line.
//! - Nothing is deleted on an error; a data directory of another cluster is never wiped.

mod binaries;
mod checks;
mod conf;
mod connect;
mod controldata;
mod ctl;
mod datadir;
mod error;
mod fence;
mod lifecycle;
mod observe;
mod os;
mod pidfile;
mod replicas;
mod settings;
mod state;

use std::collections::BTreeMap;

use async_trait::async_trait;
use ha_core::pg::{ParamChange, PgControl, PgError, PgObservation, StopMode, Upstream};

pub use checks::SUPPORTED_MAJORS;
pub use ctl::{PgCtl, SlotChanges};
pub use error::Error;
pub use settings::{Credentials, InitdbOption, PgSettings, Timeouts};

#[async_trait]
impl PgControl for PgCtl {
    async fn observe(&self) -> PgObservation {
        PgCtl::observe(self).await
    }
    async fn exited(&self) {
        PgCtl::postmaster_exited(self).await
    }
    async fn bootstrap(&self) -> Result<String, PgError> {
        Ok(PgCtl::bootstrap(self).await?)
    }
    async fn clone_from(&self, source: &Upstream) -> Result<(), PgError> {
        Ok(PgCtl::clone_from(self, source).await?)
    }
    async fn start_primary(&self) -> Result<(), PgError> {
        Ok(PgCtl::start_primary(self).await?)
    }
    async fn start_replica(&self, upstream: Option<&Upstream>) -> Result<(), PgError> {
        Ok(PgCtl::start_replica(self, upstream).await?)
    }
    async fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        Ok(PgCtl::stop(self, mode).await?)
    }
    async fn restart(&self) -> Result<(), PgError> {
        Ok(PgCtl::restart(self).await?)
    }
    async fn reload(&self) -> Result<(), PgError> {
        Ok(PgCtl::reload(self).await?)
    }
    async fn promote(&self) -> Result<(), PgError> {
        Ok(PgCtl::promote(self).await?)
    }
    async fn follow(&self, upstream: &Upstream) -> Result<(), PgError> {
        Ok(PgCtl::follow(self, upstream).await?)
    }
    async fn rewind(&self, source: &Upstream) -> Result<(), PgError> {
        Ok(PgCtl::rewind(self, source).await?)
    }
    async fn reinitialize(&self, source: &Upstream) -> Result<(), PgError> {
        Ok(PgCtl::reinitialize(self, source).await?)
    }
    async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Result<ParamChange, PgError> {
        let pending_restart = PgCtl::apply_parameters(self, parameters).await?;
        Ok(ParamChange { pending_restart })
    }
    async fn fence(&self) -> Result<(), PgError> {
        Ok(PgCtl::fence(self).await?)
    }
}
