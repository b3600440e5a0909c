//! The operating-system side: who runs PostgreSQL, spawning its binaries as that user under a timeout, files it
//! must own, and the postmaster's process (postmaster.pid, /proc, signals).

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tracing::debug;

use crate::error::{Error, Result};

/// The uid/gid PostgreSQL runs as, and whether we must switch to it (we are root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user id PostgreSQL's binaries run as.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its supplementary groups (Debian's `ssl-cert`, which a server key under `/etc/ssl/private` needs): kept
    /// when switching from root, where std's `Command::uid` would drop them all.
    pub groups: Vec<u32>,
    pub home: Option<PathBuf>,
    /// True when this process is root and spawns PostgreSQL's binaries as `uid`/`gid`.
    pub switch: bool,
}

impl RunAs {
    /// Resolves who runs PostgreSQL: as root, the configured user (required); otherwise ourselves (the configured
    /// user, if any, must be us, since only root can switch).
    pub fn resolve(os_user: Option<&str>) -> Result<RunAs> {
        // SAFETY: geteuid/getegid cannot fail.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        match (euid, os_user) {
            (0, None) => Err(Error::RunningAsRoot),
            (0, Some(user)) => {
                let (uid, gid, home) = lookup_user(user)?;
                if uid == 0 {
                    return Err(Error::OsUser {
                        user: user.into(),
                        reason: "is root; PostgreSQL must run as an unprivileged user".into(),
                    });
                }
                Ok(RunAs {
                    uid,
                    gid,
                    groups: supplementary_groups(user, gid),
                    home,
                    switch: true,
                })
            }
            (_, Some(user)) => {
                let (uid, _, _) = lookup_user(user)?;
                if uid != euid {
                    return Err(Error::OsUser {
                        user: user.into(),
                        reason: format!(
                            "this process runs as uid {euid} and only root can switch users"
                        ),
                    });
                }
                Ok(RunAs {
                    uid: euid,
                    gid: egid,
                    groups: Vec::new(),
                    home: None,
                    switch: false,
                })
            }
            (_, None) => Ok(RunAs {
                uid: euid,
                gid: egid,
                groups: Vec::new(),
                home: None,
                switch: false,
            }),
        }
    }
}

/// The groups `user` belongs to (getgrouplist: its primary group `gid` and every supplementary one).
pub fn supplementary_groups(user: &str, gid: u32) -> Vec<u32> {
    let Ok(name) = std::ffi::CString::new(user) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let want = n;
        // SAFETY: `groups` holds `n` entries; getgrouplist writes at most that many and sets `n` to the count.
        let r = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(n as usize);
            return groups;
        }
        if n <= want {
            n = want * 2;
        }
        if n > 65_536 {
            return vec![gid];
        }
    }
}

/// Looks a user up in the password database (getpwnam_r): uid, gid, home.
pub fn lookup_user(user: &str) -> Result<(u32, u32, Option<PathBuf>)> {
    let c = CString::new(user).map_err(|_| Error::OsUser {
        user: user.into(),
        reason: "contains a NUL byte".into(),
    })?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r fills it with pointers into `buf`, which outlives their use.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(Error::OsUser {
            user: user.into(),
            reason: "no such user on this machine (create it, e.g. with adduser --system)".into(),
        });
    }
    let home = if pwd.pw_dir.is_null() {
        None
    } else {
        // SAFETY: pw_dir points to a NUL-terminated string inside `buf`.
        let s = unsafe { std::ffi::CStr::from_ptr(pwd.pw_dir) };
        Some(PathBuf::from(s.to_string_lossy().into_owned()))
    };
    Ok((pwd.pw_uid, pwd.pw_gid, home))
}

/// The output of a finished command.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs a PostgreSQL binary as `run_as`, with `LC_ALL=C` (we parse its output), stdin closed, bounded by `timeout`.
/// The child is killed if the timeout hits.
pub async fn run(
    run_as: &RunAs,
    program: &Path,
    args: &[String],
    envs: &[(&str, String)],
    timeout: Duration,
) -> Result<Output> {
    run_in(run_as, program, args, envs, timeout, Path::new("/")).await
}

/// [`run`] in the working directory `cwd`: a user's command (a bootstrap method, `post_bootstrap`) may name its
/// script relative to the daemon's directory, as under Patroni.
pub async fn run_in(
    run_as: &RunAs,
    program: &Path,
    args: &[String],
    envs: &[(&str, String)],
    timeout: Duration,
    cwd: &Path,
) -> Result<Output> {
    let name = program
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so a timeout kills what it forked too (pg_basebackup's WAL streamer would
        // otherwise live on, holding the replication slot). pg_ctl's postmaster makes its own session anyway.
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    if run_as.switch {
        let (uid, gid, groups) = (run_as.uid, run_as.gid, run_as.groups.clone());
        // SAFETY: between fork and exec the closure only makes the setgroups/setgid/setuid system calls (no
        // allocation: `groups` was built before the fork), in the order that leaves no root privilege behind.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setgroups(groups.len() as _, groups.as_ptr()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        if let Some(home) = &run_as.home {
            cmd.env("HOME", home);
        }
    }
    debug!(command = %name, ?args, "running");
    let child = cmd.spawn().map_err(|e| Error::Command {
        command: name.clone(),
        status: "not started".into(),
        stderr: e.to_string(),
    })?;
    let pgid = child.id().map(|p| p as i32);
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return Err(Error::Command {
                command: name,
                status: "wait failed".into(),
                stderr: e.to_string(),
            })
        }
        Err(_) => {
            if let Some(g) = pgid {
                signal_group(g, libc::SIGKILL);
                // SIGKILL is asynchronous: give the group a moment to be gone before the caller cleans up after it.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return Err(Error::Timeout {
                operation: name,
                timeout_ms: timeout.as_millis() as u64,
            });
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(Error::Command {
            command: name,
            status: out.status.to_string(),
            stderr: if stderr.trim().is_empty() {
                stdout.trim().to_string()
            } else {
                stderr.trim().to_string()
            },
        });
    }
    Ok(Output { stdout, stderr })
}

/// Makes `path` (and missing parents) a directory; a directory we create is owned by `run_as` with `mode`.
pub fn ensure_dir(run_as: &RunAs, path: &Path, mode: u32) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
    chown(run_as, path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(path, e))
}

/// Gives `path` to the PostgreSQL user (a no-op unless we are root).
pub fn chown(run_as: &RunAs, path: &Path) -> Result<()> {
    if !run_as.switch {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(run_as.uid), Some(run_as.gid))
        .map_err(|e| Error::io(path, e))
}

/// Writes a file atomically (temp file + rename) owned by the PostgreSQL user with `mode`: a reader never sees half
/// a configuration file, and a password file is never readable by others, not even for a moment.
pub fn write_file(run_as: &RunAs, path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = {
        let mut s = path.as_os_str().to_owned();
        s.push(".hactl-tmp");
        PathBuf::from(s)
    };
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    chown(run_as, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The owner uid of `path`, if it exists.
pub fn owner_uid(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.uid())
}

/// What `postmaster.pid` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidFile {
    pub pid: i32,
    /// Line 8 (PostgreSQL 10+): `starting`, `stopping`, `ready` or `standby`.
    pub status: Option<String>,
}

pub fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: i32 = lines.next()?.trim().parse().ok()?;
    let status = text.lines().nth(7).map(|s| s.trim().to_string());
    Some(PidFile { pid, status })
}

/// A process as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub state: char,
    pub ppid: i32,
}

/// `/proc/<pid>/stat`: state and parent. `None` when there is no such process.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some(ProcInfo { state, ppid })
}

/// Whether `pid` is a live (not zombie, not dead) postgres process. A zombie counts as gone: its exit is final,
/// it only waits for a parent that may never reap it (PID 1 in a container often does not).
pub fn is_live_postgres(pid: i32) -> bool {
    match proc_info(pid) {
        Some(p) if p.state != 'Z' && p.state != 'X' => {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("postgres") || cmd.contains("postmaster") || exe.contains("postgres")
        }
        _ => false,
    }
}

/// Whether `pid` is a live postgres process working in `data_dir`: the postmaster (and every backend) chdirs to
/// its data directory, so a pid from an old postmaster.pid reused by another cluster's process is not taken for
/// ours. When /proc/<pid>/cwd cannot be read (another user's process, without root), the name check decides.
pub fn is_our_postmaster(pid: i32, data_dir: &Path) -> bool {
    if !is_live_postgres(pid) {
        return false;
    }
    match (
        std::fs::read_link(format!("/proc/{pid}/cwd")),
        std::fs::canonicalize(data_dir),
    ) {
        (Ok(cwd), Ok(dd)) => cwd == dd,
        _ => true,
    }
}

/// Resolves when process `pid` exits (or is already gone). A pidfd (Linux 5.3+) makes it a wait without polling:
/// the descriptor turns readable at the exit, for any process, not only a child. Without pidfds, /proc is looked
/// at every 250 ms.
pub async fn process_exit(pid: i32) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; nothing else is touched.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd >= 0 {
        // SAFETY: the descriptor was just returned by the kernel and is owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // SAFETY: an OwnedFd keeps its descriptor open, and the same, until the AsyncFd that owns it drops it.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE)
        };
        if let Ok(afd) = registered {
            let _ = afd.readable().await;
            return;
        }
    }
    while proc_info(pid).is_some_and(|p| p.state != 'Z' && p.state != 'X') {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether the process is stopped by a signal (SIGSTOP/SIGTSTP) or traced.
pub fn is_stopped(pid: i32) -> bool {
    matches!(proc_info(pid), Some(p) if p.state == 'T' || p.state == 't')
}

/// The pids whose parent is `pid`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| proc_info(*p).is_some_and(|i| i.ppid == pid))
        .collect()
}

/// Sends `sig` to `pid`; a vanished process is not an error.
pub fn signal(pid: i32, sig: libc::c_int) {
    if pid > 1 {
        // SAFETY: kill has no memory effects; pid > 1 never targets init or a process group.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Sends `sig` to the process group `pgid` (one we created for a child: never our own or init's).
pub fn signal_group(pgid: i32, sig: libc::c_int) {
    // SAFETY: getpgrp cannot fail; killpg has no memory effects.
    if pgid > 1 && pgid != unsafe { libc::getpgrp() } {
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

/// The major version from `postgres --version` output ("postgres (PostgreSQL) 15.18 (Debian ...)"), as
/// `server_version_num`: 150018.
pub fn parse_version(text: &str) -> Option<u32> {
    let after = text.split(')').nth(1).unwrap_or(text);
    let token = after.split_whitespace().next()?;
    let mut parts = token
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major: u32 = parts.next()?.parse().ok()?;
    let minor: u32 = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some(major * 10000 + minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian's `postgres` is in `ssl-cert`, which a server key under `/etc/ssl/private` needs: switching to it from
    /// root must keep that group (std's `Command::uid` drops every supplementary group).
    #[tokio::test]
    async fn a_command_run_as_the_postgres_user_keeps_its_supplementary_groups() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 || lookup_user("postgres").is_err() {
            eprintln!("SKIPPED: needs root and a postgres user");
            return;
        }
        let run_as = RunAs::resolve(Some("postgres")).unwrap();
        let out = run(
            &run_as,
            Path::new("/usr/bin/id"),
            &["-G".to_string()],
            &[],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let mut got: Vec<u32> = out
            .stdout
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect();
        got.sort_unstable();
        let mut want = run_as.groups.clone();
        want.sort_unstable();
        assert!(want.len() >= 1, "{want:?}");
        assert_eq!(got, want, "groups of the command vs the user's");
    }

    #[test]
    fn version_strings_parse() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(150018)
        );
        assert_eq!(parse_version("postgres (PostgreSQL) 17beta1"), Some(170001));
        assert_eq!(parse_version("postgres (PostgreSQL) 13.2"), Some(130002));
    }

    #[test]
    fn proc_info_of_self_is_running() {
        let me = std::process::id() as i32;
        let info = proc_info(me).expect("own /proc entry");
        assert!(info.ppid > 0);
        assert!(!is_live_postgres(me), "the test binary is not postgres");
    }
}

/// fsyncs a directory, so that a rename or a new file in it survives a crash.
pub(crate) fn fsync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
