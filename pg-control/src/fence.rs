//! Fencing: the way to stop a server that does not answer.

use std::time::{Duration, Instant};

use tracing::{info_span, warn, Instrument};

use crate::error::{Error, Result};
use crate::os;
use crate::PgCtl;

impl PgCtl {
    /// SIGKILLs the postmaster and every child of it. The postmaster is SIGSTOPped first so it cannot fork new
    /// backends between the listing and the kill; a stopped postmaster's backends keep serving their clients,
    /// so killing only the postmaster would not stop writes. Waits (bounded) until they are gone.
    ///
    /// It does not take the lock other operations hold: fencing must work while a start or stop is stuck.
    pub async fn fence(&self) -> Result<()> {
        let Some(pid) = self.live_postmaster() else {
            return Ok(());
        };
        self.fence_pid(pid)
            .instrument(info_span!("pg_fence", node = %self.s.name, pid))
            .await
    }

    pub(crate) async fn fence_pid(&self, pid: i32) -> Result<()> {
        os::signal(pid, libc::SIGSTOP);
        let mut victims = os::children_of(pid);
        os::signal(pid, libc::SIGKILL);
        for c in &victims {
            os::signal(*c, libc::SIGKILL);
        }
        victims.push(pid);
        warn!(killed = ?victims, "fenced PostgreSQL with SIGKILL");
        let deadline = Instant::now() + self.s.timeouts.stop.min(Duration::from_secs(10));
        loop {
            let alive: Vec<i32> = victims
                .iter()
                .copied()
                .filter(|p| os::is_live_postgres(*p))
                .collect();
            if alive.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout {
                    operation: format!("fence (processes {alive:?} survived SIGKILL)"),
                    timeout_ms: self.s.timeouts.stop.as_millis() as u64,
                });
            }
            for p in &alive {
                os::signal(*p, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
