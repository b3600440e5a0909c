//! `hactl-fencer DATA_DIR` (or `hactl fencer DATA_DIR`): the watchdog process (ha-core's `ProcessWatchdog` protocol
//! on stdin). It outlives a frozen or killed daemon and SIGKILLs the postmaster named in `DATA_DIR/postmaster.pid`
//! and its children when an armed deadline passes, so a lock holder that stopped renewing stops taking writes before
//! its lease can expire.

use std::path::Path;

use ha_core::watchdog::process::{run_fencer, FencerExit};

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
            eprintln!("hactl fencer: nothing fenced: {why}");
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
