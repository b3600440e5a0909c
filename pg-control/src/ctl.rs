//! [`PgCtl`]: one local PostgreSQL driven through its binaries (initdb, pg_ctl, pg_basebackup, pg_rewind,
//! pg_controldata) and tokio-postgres.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::checks;
use crate::error::{Error, Result};
use crate::os::RunAs;
use crate::settings::PgSettings;
use crate::state::NodeState;

/// What [`PgCtl::ensure_slots`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotChanges {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

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
    pub(crate) state: Mutex<NodeState>,
    /// The node's own parameters and pg_hba lines: from the settings, replaceable at run time
    /// ([`PgCtl::set_local_config`]) when the daemon re-reads its configuration file.
    local: Mutex<LocalConf>,
    pub(crate) op_lock: tokio::sync::Mutex<()>,
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
    /// version, credentials) without changing anything, and loads the state file.
    pub async fn new(settings: PgSettings) -> Result<PgCtl> {
        let s = settings;
        checks::check_name_and_port(&s)?;
        let run_as = RunAs::resolve(s.os_user.as_deref())?;
        checks::check_binaries(&s)?;
        let version_num = checks::binary_version(&s, &run_as).await?;
        checks::check_usernames(&s)?;
        checks::check_passwords(&s, &s.pg_hba)?;
        let ctl = PgCtl {
            run_as,
            version_num,
            state: Mutex::new(NodeState::default()),
            local: Mutex::new(LocalConf {
                parameters: s.parameters.clone(),
                pg_hba: s.pg_hba.clone(),
            }),
            op_lock: tokio::sync::Mutex::new(()),
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
        *self.local.lock().unwrap_or_else(|p| p.into_inner()) = LocalConf { parameters, pg_hba };
        Ok(())
    }

    pub(crate) fn local_conf(&self) -> LocalConf {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `server_version_num` of the binaries, e.g. 150018.
    pub fn binary_version(&self) -> u32 {
        self.version_num
    }
}
