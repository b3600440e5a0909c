//! The test-server kit every backend's test servers (etcd, Consul, ZooKeeper) are built on: one process spawned with
//! its output appended to a log file, waited for until it serves, killed by PID (SIGKILL, then reaped) when stopped
//! or dropped, so no test leaves a server behind; and the one rule for a server binary that is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running test server process. Dropping it kills it (SIGKILL by PID) and reaps it; its data stays.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    log: PathBuf,
}

/// Why a spawned server never served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// It exited first (a port taken in between, a bad flag): its exit status and the end of its log.
    Exited {
        /// The exit status, as the OS reports it.
        status: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// It was still not serving after this long: the end of its log.
    TimedOut {
        /// How long it was waited for.
        waited: Duration,
        /// The last lines of its log.
        log_tail: String,
    },
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited { status, log_tail } => {
                write!(f, "exited with {status}; its log ends with:\n{log_tail}")
            }
            NotReady::TimedOut { waited, log_tail } => {
                write!(
                    f,
                    "not serving within {waited:?}; its log ends with:\n{log_tail}"
                )
            }
        }
    }
}

impl ServerProcess {
    /// Spawns `cmd` with stdin closed and stdout and stderr appended to `log` (created if need be).
    pub fn spawn(cmd: &mut Command, log: &Path) -> std::io::Result<ServerProcess> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(ServerProcess {
            child,
            log: log.to_path_buf(),
        })
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status if it has exited (without waiting): for a caller that waits on several servers at once.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// Polls `serving` until it says yes, the process exits, or `within` has passed.
    pub fn wait_ready(
        &mut self,
        within: Duration,
        mut serving: impl FnMut() -> bool,
    ) -> Result<(), NotReady> {
        let start = Instant::now();
        loop {
            if serving() {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return Err(NotReady::Exited {
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if start.elapsed() > within {
                return Err(NotReady::TimedOut {
                    waited: start.elapsed(),
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// The last 20 lines of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a test does when a server binary is not installed (`missing` says whether `r` failed for that reason):
/// without `CI=true` it is skipped (`None`) after a `SKIPPED` line naming `what`; under CI a missing server is a
/// failure, never a silent skip, so it panics, as for any other failure to start.
pub fn or_skip<T, E: std::fmt::Display>(
    r: Result<T, E>,
    missing: impl FnOnce(&E) -> bool,
    what: &str,
) -> Option<T> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match r {
        Ok(t) => Some(t),
        Err(e) if missing(&e) && !ci => {
            eprintln!("SKIPPED: {what} is not installed (run scripts/install.sh); set CI=true to fail instead");
            None
        }
        Err(e) => panic!("could not start {what}: {e}"),
    }
}

/// A test server a test can kill (SIGKILL, by PID) and start again on the same ports with the same data: the one
/// stop / start-again / pid rule of the etcd, Consul and ZooKeeper test servers. A server implements the three
/// required methods; tests call the provided ones (with this trait in scope).
pub trait Restartable {
    /// What starting the server can fail with.
    type Error;

    /// Its process while it runs (`None` once stopped).
    fn process(&self) -> Option<&ServerProcess>;

    /// Takes its process out (dropping it kills and reaps it).
    fn take_process(&mut self) -> Option<ServerProcess>;

    /// Spawns it again on its ports with its data and waits until it serves.
    fn respawn(&mut self) -> Result<(), Self::Error>;

    /// Kills the server (SIGKILL, by PID) and reaps it. Its data stays.
    fn stop(&mut self) {
        drop(self.take_process());
    }

    /// Starts it again on the same ports with the same data, once it serves (a running server is stopped first).
    fn start_again(&mut self) -> Result<(), Self::Error> {
        self.stop();
        self.respawn()
    }

    /// Whether it was started and not stopped since; a process that died on its own still counts.
    fn is_running(&self) -> bool {
        self.process().is_some()
    }

    /// The OS process id while it runs.
    fn pid(&self) -> Option<u32> {
        self.process().map(ServerProcess::pid)
    }
}
