//! [`PgCtl`]: one local PostgreSQL driven through its binaries (initdb, pg_ctl, pg_basebackup, pg_rewind,
//! pg_controldata) and tokio-postgres.
//!
//! This file holds the type, its constructor and its [`PgControl`] impl; the methods live beside what they work on
//! (`lifecycle`, `replicas`, `observe`, `conf`, `connect`, ...; see the crate's layout).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use ha_core::pg::{
    ParamChange, PgControl, PgError, PgObservation, StopMode, Upstream, WalPosition,
};
use ha_core::sync::lock;

use crate::checks;
use crate::conn_options::RoleOptions;
use crate::error::{Error, Result};
use crate::os::RunAs;
use crate::settings::PgSettings;
use crate::state::NodeState;

/// The node's own configuration that may change at run time.
#[derive(Debug, Clone)]
pub(crate) struct LocalConf {
    pub parameters: BTreeMap<String, String>,
    pub pg_hba: Vec<String>,
}

/// One local PostgreSQL. Implements [`ha_core::pg::PgControl`]; the inherent methods of the same names return this
/// crate's typed [`Error`] (the trait's return [`ha_core::pg::PgError`]).
///
/// Mutating operations are serialized; [`PgCtl::observe`](crate::PgCtl::observe) never waits for them.
pub struct PgCtl {
    pub(crate) s: PgSettings,
    pub(crate) run_as: RunAs,
    pub(crate) version_num: u32,
    /// The parameter names the binaries know; `None` if `postgres --describe-config` could not be read.
    pub(crate) server_params: Option<crate::conf::ServerParameters>,
    /// Each role's connection options (`sslmode` & co.), checked.
    pub(crate) conn: RoleOptions,
    /// The parameter adaptations last logged (see `conf::adapt_to_server`).
    pub(crate) adaptations_said: Mutex<Vec<String>>,
    pub(crate) state: Mutex<NodeState>,
    /// The node's own parameters and pg_hba lines: from the settings, replaceable at run time
    /// ([`PgCtl::set_local_config`]) when the daemon re-reads its configuration file.
    local: Mutex<LocalConf>,
    pub(crate) op_lock: tokio::sync::Mutex<()>,
    /// The timeline the running postmaster's WAL receiver last streamed on, with that postmaster's start time
    /// (see `observe::StreamedTimeline`).
    pub(crate) streamed: crate::observe::StreamedTimeline,
}

impl std::fmt::Debug for PgCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCtl")
            .field("name", &self.s.name)
            .field("data_dir", &self.s.data_dir)
            .field("port", &self.s.port)
            .field("version_num", &self.version_num)
            .finish()
    }
}

impl PgCtl {
    /// Checks the settings against the machine (user, binaries and their version, data directory ownership and
    /// version, credentials and their connection options) without changing anything, and loads the state file.
    pub async fn new(settings: PgSettings) -> Result<PgCtl> {
        let s = settings;
        checks::check_name_and_port(&s)?;
        let run_as = RunAs::resolve(s.os_user.as_deref())?;
        checks::check_binaries(&s)?;
        let version_num = checks::binary_version(&s, &run_as).await?;
        let server_params = checks::server_parameters(&s, &run_as, version_num).await;
        checks::check_usernames(&s)?;
        checks::check_passwords(&s, &s.pg_hba)?;
        let conn = RoleOptions::new(&s, version_num)?;
        let ctl = PgCtl {
            run_as,
            version_num,
            server_params,
            conn,
            adaptations_said: Mutex::new(Vec::new()),
            state: Mutex::new(NodeState::default()),
            local: Mutex::new(LocalConf {
                parameters: s.parameters.clone(),
                pg_hba: s.pg_hba.clone(),
            }),
            op_lock: tokio::sync::Mutex::new(()),
            streamed: Default::default(),
            s,
        };
        ctl.check_data_dir()?;
        ctl.load_state_file();
        Ok(ctl)
    }

    /// Waits for the other operations on this server to finish, bounded: a call queued behind a long clone
    /// fails with a timeout instead of hanging its caller. The wait bound is the stop timeout.
    pub(crate) async fn op_guard(
        &self,
        operation: &str,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>> {
        let t = self.s.timeouts.stop;
        tokio::time::timeout(t, self.op_lock.lock())
            .await
            .map_err(|_| Error::Timeout {
                operation: format!("{operation} (waiting for another operation on this server)"),
                timeout_ms: t.as_millis() as u64,
            })
    }

    /// The settings this controller was created with (the local parameters and pg_hba as they were then; see
    /// [`PgCtl::set_local_config`]).
    pub fn settings(&self) -> &PgSettings {
        &self.s
    }

    /// Replaces the node's local parameters and pg_hba lines (the daemon re-read its configuration file). They
    /// take effect with the next regenerated configuration: call [`PgCtl::reload`] (or restart) afterwards.
    /// Refused if the new pg_hba asks for passwords that are not configured.
    pub fn set_local_config(
        &self,
        parameters: BTreeMap<String, String>,
        pg_hba: Vec<String>,
    ) -> Result<()> {
        checks::check_passwords(&self.s, &pg_hba)?;
        *lock(&self.local) = LocalConf { parameters, pg_hba };
        Ok(())
    }

    pub(crate) fn local_conf(&self) -> LocalConf {
        lock(&self.local).clone()
    }

    /// `server_version_num` of the binaries, e.g. 150018.
    pub fn binary_version(&self) -> u32 {
        self.version_num
    }
}

#[async_trait]
impl PgControl for PgCtl {
    fn conn_url(&self) -> Option<String> {
        Some(self.settings().conn_url())
    }
    async fn observe(&self) -> PgObservation {
        PgCtl::observe(self).await
    }
    async fn wal_position(&self) -> Option<WalPosition> {
        PgCtl::wal_position(self).await
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
    async fn restore_replica(&self) -> Result<(), PgError> {
        Ok(PgCtl::restore_replica(self).await?)
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
    async fn source_lineage(&self, source: &Upstream) -> Option<ha_core::pg::Lineage> {
        PgCtl::source_lineage(self, source).await
    }
    async fn apply_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
        recovery_conf: &BTreeMap<String, String>,
    ) -> Result<ParamChange, PgError> {
        let pending_restart = PgCtl::apply_cluster_config(self, parameters, recovery_conf).await?;
        Ok(ParamChange { pending_restart })
    }
    async fn set_synchronous_standby_names(&self, value: Option<&str>) -> Result<(), PgError> {
        Ok(PgCtl::set_synchronous_standby_names(self, value).await?)
    }
    async fn apply_slots(&self, plan: &ha_core::pg::SlotPlan) -> Result<(), PgError> {
        Ok(PgCtl::apply_slots(self, plan).await?)
    }
    async fn copy_logical_slots(&self, source: &Upstream, names: &[String]) -> Result<(), PgError> {
        Ok(PgCtl::copy_logical_slots(self, source, names).await?)
    }
    async fn fence(&self) -> Result<(), PgError> {
        Ok(PgCtl::fence(self).await?)
    }
}
