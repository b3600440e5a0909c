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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ha_core::time::Clock;
use ha_core::watchdog::process::{monotonic_ms, run_fencer_from, FencerExit, ProcessWatchdog};

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

/// PostgreSQL processes whose working directory is `data_dir`: the postmaster and every backend run there, and all
/// are named `postgres`. Found without the pid file, so a missing, unreadable or corrupt one does not leave a
/// server unfenced.
fn postgres_in(data_dir: &Path) -> Vec<i32> {
    let Ok(dd) = std::fs::canonicalize(data_dir) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| *pid > 1)
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dd)
        })
        .collect()
}

/// Stops the postmaster (so it cannot fork), then SIGKILLs it, its children and every other `postgres` process
/// running in the data directory. Without a usable `postmaster.pid` the processes running in the data directory are
/// fenced all the same (the log line says why the pid file was not used).
pub fn fence_data_dir(data_dir: &Path) {
    let postmaster = fence_target(data_dir);
    if let Ok(pid) = postmaster {
        // SAFETY: kill(2) with a pid read from the server's own pid file and checked to run in the data directory.
        unsafe {
            libc::kill(pid, libc::SIGSTOP);
        }
    }
    let mut victims = postgres_in(data_dir);
    if let Ok(pid) = postmaster {
        victims.extend(children_of(pid));
        victims.push(pid);
    }
    victims.sort_unstable();
    victims.dedup();
    if victims.is_empty() {
        let why = postmaster.err().unwrap_or_default();
        eprintln!(
            "fencer: nothing fenced: no PostgreSQL process runs in the data directory ({why})"
        );
        return;
    }
    for v in &victims {
        // SAFETY: kill(2) on processes named postgres running in this data directory (or the checked postmaster's
        // children); no memory is touched.
        unsafe {
            libc::kill(*v, libc::SIGKILL);
        }
    }
    match postmaster {
        Ok(pid) => eprintln!("fencer: fenced PostgreSQL (postmaster {pid}, {} processes)", victims.len()),
        Err(why) => eprintln!(
            "fencer: fenced {} PostgreSQL processes running in the data directory (pid file not used: {why})",
            victims.len()
        ),
    }
}

/// The file beside the data directory (`<data_dir>.fencer`) where the running fencer keeps its pid and its armed
/// deadline (`CLOCK_MONOTONIC` ms, or `-`), so the fencer started by a restarted daemon can take over from one the
/// old daemon left behind.
pub fn state_file(data_dir: &Path) -> PathBuf {
    let mut s = data_dir.as_os_str().to_os_string();
    s.push(".fencer");
    PathBuf::from(s)
}

/// Whether `pid` is a fencer of `data_dir`: started by [`spawn_self`] (its environment names the directory) or as
/// `hactl-fencer DATA_DIR` / `hactl fencer DATA_DIR`.
fn is_fencer_of(pid: i32, data_dir: &Path) -> bool {
    let dir = data_dir.to_string_lossy();
    let env = format!("{FENCER_ENV}={dir}");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    if environ.split(|b| *b == 0).any(|v| v == env.as_bytes()) {
        return true;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.iter().any(|a| a.ends_with(b"fencer")) && args.iter().any(|a| *a == dir.as_bytes())
}

/// A fencer left running by an earlier daemon of this data directory (killed, restarted at once) would still fence
/// at its old deadline while the new daemon, holding the same lock, renews it: the new fencer kills it and keeps its
/// armed deadline until the new daemon says otherwise. Only a *live* fencer's deadline is taken over: a dead one's
/// file may be from before a reboot, when `CLOCK_MONOTONIC` counted from another origin.
fn take_over(data_dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state_file(data_dir)).ok()?;
    let mut words = text.split_whitespace();
    let pid: i32 = words.next()?.parse().ok()?;
    let at: Option<u64> = words.next().and_then(|w| w.parse().ok());
    if pid <= 1 || pid as u32 == std::process::id() || !is_fencer_of(pid, data_dir) {
        return None;
    }
    // SAFETY: kill(2) on a process checked to be a fencer of this data directory.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    match at {
        Some(at) => eprintln!(
            "fencer: replaced the earlier fencer {pid}, keeping its deadline ({} ms from now)",
            at.saturating_sub(monotonic_ms())
        ),
        None => eprintln!("fencer: replaced the earlier fencer {pid} (it was disarmed)"),
    }
    at
}

/// Writes the state file (pid and armed deadline) atomically; a failure is said once and otherwise ignored (it only
/// costs a successor the takeover).
fn record_state(file: &Path, armed: Option<u64>, warned: &mut bool) {
    let at = armed.map_or_else(|| "-".to_string(), |a| a.to_string());
    let tmp = file.with_extension("fencer.tmp");
    let r = std::fs::write(&tmp, format!("{} {at}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = r {
        if !std::mem::replace(warned, true) {
            eprintln!(
                "fencer: cannot write {}: {e} (a restarted daemon's fencer cannot take over)",
                file.display()
            );
        }
    }
}

/// Runs the fencer on stdin until it fences or the daemon leaves while disarmed: takes over from a fencer an earlier
/// daemon left running, and records its deadline for a successor ([`state_file`]).
pub fn run(data_dir: &Path) -> FencerExit {
    let stdin = std::io::BufReader::new(std::io::stdin());
    let inherited = take_over(data_dir);
    let dir = data_dir.to_path_buf();
    let file = state_file(data_dir);
    let mut warned = false;
    let mut records = 0u32;
    let exit = run_fencer_from(
        stdin,
        inherited,
        |armed| {
            record_state(&file, armed, &mut warned);
            // It idles beside the node for its whole life: once its reader thread runs and its state was recorded
            // twice (start, the daemon's first word), only the pages its wait and record use stay resident.
            records += 1;
            if records == 2 {
                let _ = crate::working_set::release_startup_pages();
            }
        },
        move || fence_data_dir(&dir),
    );
    if exit == FencerExit::Disarmed {
        let _ = std::fs::remove_file(state_file(data_dir));
    }
    exit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hactl-fencer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            // A killed child stays a zombie until reaped: state Z counts as gone.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty()
                || stat
                    .rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_fencer_left_by_an_earlier_daemon_is_replaced_and_its_deadline_kept() {
        let base = temp_dir("takeover");
        let data = base.join("data");
        std::fs::create_dir_all(&data).unwrap();
        // The old fencer: a process whose environment names this data directory, as spawn_self starts it.
        let mut old = Command::new("sleep")
            .arg("30")
            .env(FENCER_ENV, &data)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // Until it has exec'd, the child still shows this test's environment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_fencer_of(old.id() as i32, &data) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let at = monotonic_ms() + 4_000;
        std::fs::write(state_file(&data), format!("{} {at}\n", old.id())).unwrap();
        assert_eq!(take_over(&data), Some(at));
        let _ = old.wait();
        assert!(gone(old.id()), "the old fencer still runs");
        // A live process that is no fencer of this directory is left alone, and nothing is taken over.
        let mut other = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(state_file(&data), format!("{} {at}\n", other.id())).unwrap();
        assert_eq!(take_over(&data), None);
        assert!(
            !gone_now(other.id()),
            "a process that is not our fencer was killed"
        );
        let _ = other.kill();
        let _ = other.wait();
        // A dead fencer's deadline is not taken over (its file may predate a reboot).
        std::fs::write(state_file(&data), format!("{} {at}\n", old.id())).unwrap();
        assert_eq!(take_over(&data), None);
        let _ = std::fs::remove_dir_all(&base);
    }

    fn gone_now(pid: u32) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn without_a_pid_file_the_postgres_processes_running_in_the_data_directory_are_fenced() {
        let base = temp_dir("nopid");
        let data = base.join("data");
        std::fs::create_dir_all(&data).unwrap();
        // Stand-ins for a postmaster and a backend: `sleep` linked under the name postgres, run in the data
        // directory; and one run elsewhere, which must survive.
        // A symlink, not a copy: the kernel names the process after the path it executed (`comm`), and a copy's
        // write descriptor, inherited by another test's fork, would fail the exec with ETXTBSY.
        let postgres = base.join("postgres");
        std::os::unix::fs::symlink("/bin/sleep", &postgres).unwrap();
        let spawn = |cwd: &Path| {
            Command::new(&postgres)
                .arg("30")
                .current_dir(cwd)
                .spawn()
                .unwrap()
        };
        let (mut a, mut b, mut elsewhere) = (spawn(&data), spawn(&data), spawn(&base));
        std::thread::sleep(Duration::from_millis(100));
        fence_data_dir(&data);
        let _ = (a.wait(), b.wait());
        assert!(
            gone(a.id()) && gone(b.id()),
            "a postgres process in the data directory survived"
        );
        assert!(
            !gone_now(elsewhere.id()),
            "a postgres process of another directory was killed"
        );
        let _ = elsewhere.kill();
        let _ = elsewhere.wait();
        let _ = std::fs::remove_dir_all(&base);
    }

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
