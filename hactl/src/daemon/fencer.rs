//! `hactl fencer DATA_DIR`: the watchdog process (ha-core's `ProcessWatchdog` protocol on stdin). It outlives a
//! frozen or killed daemon and SIGKILLs the postmaster named in `DATA_DIR/postmaster.pid` and its children when an
//! armed deadline passes, so a lock holder that stopped renewing stops taking writes before its lease can expire.

use std::path::Path;

use ha_core::watchdog::process::{run_fencer, FencerExit};

/// The postmaster pid from `postmaster.pid` (first line).
fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
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
    let Some(pid) = postmaster_pid(data_dir) else {
        return;
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
        "hactl fencer: fenced PostgreSQL (postmaster {pid}, {} backends)",
        children.len()
    );
}

/// Runs the fencer on stdin until it fences or the daemon leaves while disarmed.
pub fn run(data_dir: &Path) -> FencerExit {
    let stdin = std::io::BufReader::new(std::io::stdin());
    let dir = data_dir.to_path_buf();
    run_fencer(stdin, move || fence_data_dir(&dir))
}
