//! The server's first start: initdb, the managed configuration, start as primary, the roles.

use std::path::PathBuf;
use std::time::Instant;

use tracing::{info, info_span, warn, Instrument};

use crate::conf::Role;
use crate::connect::{quote_ident, quote_literal};
use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;

impl PgCtl {
    /// initdb, the managed configuration, start as primary, the roles. Returns the system identifier.
    pub async fn bootstrap(&self) -> Result<String> {
        let _g = self.op_guard("bootstrap").await?;
        self.bootstrap_inner()
            .instrument(info_span!("pg_bootstrap", node = %self.s.name))
            .await
    }

    pub(crate) async fn bootstrap_inner(&self) -> Result<String> {
        let dd = self.s.data_dir.clone();
        self.check_data_dir()?;
        if !self.data_dir_empty()? {
            return Err(Error::DataDirNotEmpty {
                path: dd,
                operation: "bootstrap".into(),
            });
        }
        self.check_port_free()?;
        if let Some(m) = &self.s.custom_bootstrap {
            let r = async {
                let sysid = self.custom_bootstrap_inner(m).await?;
                if let Some(cmd) = &self.s.post_bootstrap {
                    self.run_post_bootstrap(cmd).await?;
                }
                Ok(sysid)
            }
            .await;
            return match r {
                Ok(sysid) => {
                    info!(system_id = %sysid, "bootstrapped a new cluster by its custom method");
                    Ok(sysid)
                }
                Err(e) => {
                    if dd.exists() {
                        self.set_failed_bootstrap_aside().await;
                    }
                    Err(e)
                }
            };
        }
        os::ensure_dir(&self.run_as, &dd, 0o700)?;
        self.write_pgpass()?;
        let mut args = vec![
            "-D".to_string(),
            self.data_dir_arg(),
            "-U".into(),
            self.s.superuser.username.clone(),
        ];
        let pwfile = {
            let mut p = dd.clone().into_os_string();
            p.push(".initdb-pw");
            PathBuf::from(p)
        };
        if let Some(pw) = &self.s.superuser.password {
            os::write_file(&self.run_as, &pwfile, &format!("{pw}\n"), 0o600)?;
            args.push(format!("--pwfile={}", pwfile.to_string_lossy()));
        }
        args.extend(self.s.initdb.iter().flat_map(|o| o.to_args()));
        let started = Instant::now();
        let r = self.pg_bin("initdb", args, self.s.timeouts.initdb).await;
        let _ = std::fs::remove_file(&pwfile);
        r?;
        info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "initdb done"
        );
        let r = async {
            self.remember_upstream(None)?;
            self.write_config(Role::Primary).await?;
            self.pg_ctl_start().await?;
            self.create_roles().await?;
            if let Some(cmd) = &self.s.post_bootstrap {
                self.run_post_bootstrap(cmd).await?;
            }
            Ok(self.controldata().await?.system_id)
        }
        .await;
        match r {
            Ok(sysid) => {
                info!(system_id = %sysid, "bootstrapped a new cluster");
                Ok(sysid)
            }
            Err(e) => {
                self.set_failed_bootstrap_aside().await;
                Err(e)
            }
        }
    }

    /// After a bootstrap that failed past initdb: stop what may run and move the half-made directory aside
    /// (`<data_dir>.failed-<unix seconds>`), so the next attempt starts from an empty directory and nothing is
    /// deleted. Best effort: a directory that cannot be renamed (a mount point) stays, and the next bootstrap
    /// says it is not empty.
    pub(crate) async fn set_failed_bootstrap_aside(&self) {
        if let Some(pid) = self.live_postmaster() {
            let _ = self.fence_pid(pid).await;
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut aside = self.s.data_dir.clone().into_os_string();
        aside.push(format!(".failed-{secs}"));
        match std::fs::rename(&self.s.data_dir, &aside) {
            Ok(()) => {
                warn!(moved_to = ?aside, "bootstrap failed: moved the new data directory aside")
            }
            Err(e) => {
                warn!(error = %e, "bootstrap failed and the data directory could not be moved aside")
            }
        }
    }

    pub(crate) async fn create_roles(&self) -> Result<()> {
        // Statements carrying passwords must not reach the server log, whatever log_statement says.
        let mut sql = String::from(
            "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; SET log_min_error_statement TO 'panic';\n",
        );
        let preamble = sql.len();
        let su = &self.s.superuser.username;
        let rep = &self.s.replication;
        if rep.username != *su {
            sql.push_str(&format!(
                "CREATE ROLE {} WITH LOGIN REPLICATION{};\n",
                quote_ident(&rep.username),
                rep.password
                    .as_ref()
                    .map(|p| format!(" PASSWORD {}", quote_literal(p)))
                    .unwrap_or_default()
            ));
        }
        if let Some(rw) = &self.s.rewind {
            if rw.username != *su && rw.username != rep.username {
                let r = quote_ident(&rw.username);
                sql.push_str(&format!(
                    "CREATE ROLE {r} WITH LOGIN{};\n",
                    rw.password
                        .as_ref()
                        .map(|p| format!(" PASSWORD {}", quote_literal(p)))
                        .unwrap_or_default()
                ));
                // What pg_rewind reads from the source (PostgreSQL documents these grants for a non-superuser).
                for f in [
                    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                    "pg_catalog.pg_stat_file(text, boolean)",
                    "pg_catalog.pg_read_binary_file(text)",
                    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
                ] {
                    sql.push_str(&format!("GRANT EXECUTE ON FUNCTION {f} TO {r};\n"));
                }
            }
        }
        if sql.len() == preamble {
            return Ok(());
        }
        self.execute_local(&sql).await
    }
}
