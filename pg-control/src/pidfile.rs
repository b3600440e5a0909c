//! The postmaster's pid file and socket lock: whether a postmaster is alive for our data directory, and clearing
//! the files a dead one left behind so that a new one can start.

use tracing::info;

use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;

impl PgCtl {
    /// The postmaster's pid if one is alive for our data directory.
    pub(crate) fn live_postmaster(&self) -> Option<i32> {
        os::read_pid_file(&self.s.data_dir)
            .map(|p| p.pid)
            .filter(|pid| os::is_our_postmaster(*pid, &self.s.data_dir))
    }

    /// Removes a postmaster.pid whose process is gone (or a zombie nobody reaps): a new postmaster would
    /// otherwise take the zombie for a running server.
    pub(crate) fn remove_stale_pid_file(&self) -> Result<()> {
        if let Some(p) = os::read_pid_file(&self.s.data_dir) {
            if !os::is_our_postmaster(p.pid, &self.s.data_dir) {
                let f = self.s.data_dir.join("postmaster.pid");
                info!(
                    pid = p.pid,
                    "removing the stale postmaster.pid of a dead server"
                );
                std::fs::remove_file(&f).map_err(|e| Error::io(f, e))?;
            }
        }
        // The socket's lock file names the dead postmaster too; PostgreSQL clears it itself only when that pid
        // does not exist, and a zombie exists.
        let lock = self
            .s
            .socket_dir
            .join(format!(".s.PGSQL.{}.lock", self.s.port));
        let lock_pid = std::fs::read_to_string(&lock)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        if let Some(pid) = lock_pid {
            if !os::is_live_postgres(pid) {
                info!(pid, lock = ?lock, "removing the stale socket lock of a dead server");
                let _ = std::fs::remove_file(
                    self.s.socket_dir.join(format!(".s.PGSQL.{}", self.s.port)),
                );
                std::fs::remove_file(&lock).map_err(|e| Error::io(&lock, e))?;
            }
        }
        Ok(())
    }
}
