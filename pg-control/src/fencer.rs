//! The fencer: the small process that stays beside a node and SIGKILLs its postmaster when the lease deadline the
//! driver armed passes unrenewed (ha-core's `ProcessWatchdog` protocol on stdin). It outlives a frozen or killed
//! daemon, so a lock holder that stopped renewing stops taking writes before its lease can expire.
//!
//! Two ways to run it:
//! - a product's own binary, re-run as its fencer: call [`run_if_requested`] first thing in `main` and start it with
//!   [`spawn_self`] (one call; the child gets its own process group, so a Ctrl-C in the terminal does not kill it);
//! - hactl's `hactl-fencer DATA_DIR` (or `hactl fencer DATA_DIR`), which calls [`run`].
//!
//! It needs no async runtime: it waits on its pipe and its deadline with std threads.

use std::path::Path;
use std::sync::Arc;

use ha_core::time::Clock;
use ha_core::watchdog::process::{run_fencer, FencerExit, ProcessWatchdog};

/// Set (to the data directory) in the environment of a binary started by [`spawn_self`]: it tells
/// [`run_if_requested`] that this process is the fencer.
pub const FENCER_ENV: &str = "HACTL_FENCER_DATA_DIR";

/// If this process was started by [`spawn_self`], runs the fencer and exits; otherwise returns at once. Call it
/// first thing in `main`, before building an async runtime (the fencer needs none, and every thread it does not
/// start is memory it does not hold).
pub fn run_if_requested() {
    if let Some(dir) = std::env::var_os(FENCER_ENV) {
        run(Path::new(&dir));
        std::process::exit(0);
    }
}

/// Starts this very binary again as the fencer of `data_dir` (its `main` must call [`run_if_requested`] first)
/// and returns the driver's side of it, to pass to `Driver::with_watchdog` or the node builder.
pub fn spawn_self(data_dir: &Path, clock: Arc<dyn Clock>) -> std::io::Result<ProcessWatchdog> {
    let exe = std::env::current_exe()?;
    let dir = data_dir.to_path_buf();
    ProcessWatchdog::spawn(
        Box::new(move || {
            let mut cmd = std::process::Command::new(&exe);
            cmd.env(FENCER_ENV, &dir);
            cmd
        }),
        clock,
    )
}

/// The postmaster to fence: the pid `postmaster.pid` names, only if it is a real process (> 1: a corrupt file
/// reading `-1` or `0` would otherwise make `kill` signal every process or the whole group) whose working
/// directory is this data directory (a reused pid belongs to someone else). The error says why nothing is killed.
pub fn fence_target(data_dir: &Path) -> Result<i32, String> {
    let file = data_dir.join("postmaster.pid");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let pid: i32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| format!("{} does not start with a pid", file.display()))?;
    if pid <= 1 {
        return Err(format!(
            "{} names pid {pid}: refusing to signal it",
            file.display()
        ));
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map_err(|e| format!("pid {pid} from {}: {e} (no such process?)", file.display()))?;
    let dd = std::fs::canonicalize(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    if cwd != dd {
        return Err(format!(
            "pid {pid} from {} runs in {}, not in the data directory: not our postmaster",
            file.display(),
            cwd.display()
        ));
    }
    Ok(pid)
}

/// Direct children of `pid` (the backends), from /proc.
fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The fields after the parenthesised command: state, ppid, ...
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

/// Stops the postmaster (so it cannot fork), then SIGKILLs it and every backend.
pub fn fence_data_dir(data_dir: &Path) {
    let pid = match fence_target(data_dir) {
        Ok(pid) => pid,
        Err(why) => {
            eprintln!("fencer: nothing fenced: {why}");
            return;
        }
    };
    // SAFETY: kill(2) with a pid read from the server's own pid file; no memory is touched.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let children = children_of(pid);
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        for c in &children {
            libc::kill(*c, libc::SIGKILL);
        }
    }
    eprintln!(
        "fencer: fenced PostgreSQL (postmaster {pid}, {} backends)",
        children.len()
    );
}

/// Runs the fencer on stdin until it fences or the daemon leaves while disarmed.
pub fn run(data_dir: &Path) -> FencerExit {
    let stdin = std::io::BufReader::new(std::io::stdin());
    let dir = data_dir.to_path_buf();
    run_fencer(stdin, move || fence_data_dir(&dir))
}

#[cfg(test)]
mod tests {
    use super::fence_target;

    #[test]
    fn only_this_data_directorys_postmaster_is_a_target() {
        let dir = std::env::temp_dir().join(format!("hactl-fence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("postmaster.pid");
        assert!(fence_target(&dir).unwrap_err().contains("cannot read"));
        for bad in ["-1\n", "0\n", "1\n", "garbage\n"] {
            std::fs::write(&pidfile, bad).unwrap();
            assert!(fence_target(&dir).is_err(), "{bad:?} accepted");
        }
        // A live process that is not running in this directory (this test itself) is not ours.
        std::fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
        assert!(fence_target(&dir)
            .unwrap_err()
            .contains("not our postmaster"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
