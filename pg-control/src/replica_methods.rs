//! `create_replica_methods`: a new replica is made by the first method that works, in the configured order:
//! `basebackup` (pg_basebackup from the source) or a command (pgBackRest, WAL-G, a script) that fills the data
//! directory, given `--connstring` to the source when there is one. A method marked `no_leader` can make a replica
//! while no member runs (a restore from the backup repository).

use std::path::Path;

use tracing::{info, warn};

use crate::conf::Role;
use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;
use crate::settings::ReplicaMethod;
use ha_core::pg::Upstream;

/// A restore may copy a large backup: bounded, but generously.
const REPLICA_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

impl PgCtl {
    /// Makes this node a replica of `source` (or, with `None`, by a method that needs no running member) with the
    /// first configured method that succeeds; leaves it stopped and configured as a standby.
    pub(crate) async fn create_replica(&self, source: Option<&Upstream>) -> Result<()> {
        let methods = self.methods_for(source);
        let mut last = None;
        for m in methods.iter().filter(|m| source.is_some() || m.no_leader) {
            let r = match (m.argv.is_empty(), source) {
                (true, Some(src)) => self.clone_inner(src, "clone").await,
                (true, None) => continue,
                (false, _) => self.run_replica_method(m, source).await,
            };
            match r {
                Ok(()) => {
                    info!(method = %m.name, "replica created");
                    return Ok(());
                }
                Err(e) => {
                    warn!(method = %m.name, error = %e, "replica method failed; trying the next one");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::wrong_state(
                "create replica",
                "no create_replica_methods entry can make a replica without a running leader",
            )
        }))
    }

    /// The methods to try, in order: a standby cluster's own list when its source names one
    /// (`standby_cluster.create_replica_methods`, resolved against this node's `postgresql.<name>` sections; a name
    /// with no section is skipped with a warning), else `postgresql.create_replica_methods`, else pg_basebackup.
    fn methods_for(&self, source: Option<&Upstream>) -> Vec<ReplicaMethod> {
        let basebackup = || ReplicaMethod {
            name: "basebackup".into(),
            ..Default::default()
        };
        let listed = source
            .and_then(|s| s.remote.as_ref())
            .map(|r| r.create_replica_methods.as_slice())
            .unwrap_or_default();
        if listed.is_empty() {
            return if self.s.replica_methods.is_empty() {
                vec![basebackup()]
            } else {
                self.s.replica_methods.clone()
            };
        }
        let known = |name: &str| {
            self.s
                .replica_methods
                .iter()
                .chain(&self.s.other_replica_methods)
                .find(|m| m.name == name)
                .cloned()
        };
        listed
            .iter()
            .filter_map(|name| match known(name) {
                Some(m) => Some(m),
                None if name == "basebackup" => Some(basebackup()),
                None => {
                    warn!(method = %name, "standby_cluster.create_replica_methods names a method without a postgresql.{name}.command section: skipped");
                    None
                }
            })
            .collect()
    }

    /// Whether a method can make a replica while no member runs (`no_leader`).
    pub fn can_create_replica_without_leader(&self) -> bool {
        self.s
            .replica_methods
            .iter()
            .any(|m| m.no_leader && !m.argv.is_empty())
    }

    /// Public entry for a replica made without a running member.
    pub async fn restore_replica(&self) -> Result<()> {
        let _g = self.op_guard("restore_replica").await?;
        self.create_replica(None).await
    }

    async fn run_replica_method(&self, m: &ReplicaMethod, source: Option<&Upstream>) -> Result<()> {
        let dd = self.s.data_dir.clone();
        self.check_data_dir()?;
        if self.live_postmaster().is_some() {
            return Err(Error::wrong_state(
                "create replica",
                "PostgreSQL is running",
            ));
        }
        if !m.keep_data {
            if !self.data_dir_empty()? {
                return Err(Error::DataDirNotEmpty {
                    path: dd,
                    operation: "create replica".into(),
                });
            }
            // The command makes the directory itself (a copy, a restore).
            if dd.exists() {
                std::fs::remove_dir(&dd).map_err(|e| Error::io(&dd, e))?;
            }
        }
        self.write_pgpass()?;
        let mut argv = m.argv.clone();
        if let Some(src) = source.filter(|_| !m.no_params) {
            let ep = self.endpoint(src)?;
            argv.push(format!(
                "--connstring={}",
                self.command_conninfo(
                    &ep,
                    &self.conn.replication,
                    &self.s.replication.username,
                    &[]
                )
            ));
        }
        let (program, args) = argv.split_first().ok_or_else(|| Error::Command {
            command: format!("replica method {}", m.name),
            status: "no command".into(),
            stderr: String::new(),
        })?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
        if let Err(e) = os::run_in(
            &self.run_as,
            Path::new(program),
            args,
            &self.pg_env(),
            REPLICA_COMMAND_TIMEOUT,
            &cwd,
        )
        .await
        {
            if !m.keep_data {
                let _ = self.wipe_data_dir();
            }
            return Err(e);
        }
        if !self.initialized() {
            return Err(Error::NotInitialized { path: dd });
        }
        os::ensure_dir(&self.run_as, &dd, 0o700)?;
        self.remember_upstream(source)?;
        self.write_config(Role::Standby(source)).await
    }
}
