//! A watchdog in a separate process, for machines without `/dev/watchdog`.
//!
//! The daemon starts a small child (the *fencer*: `hactl fencer …` in the reference daemon) and talks to it over the
//! child's stdin, one line per message: `arm <ms>` (fence PostgreSQL `<ms>` from now unless told again) or `disarm`.
//! A SIGSTOP or SIGKILL of the daemon does not stop the fencer, so a frozen or dead lock holder still stops taking
//! writes before its lease can expire; when its stdin closes (the daemon died) the fencer keeps the last deadline,
//! fences at it if armed, and exits. After fencing for a frozen daemon it stays, disarmed, so the node is guarded
//! again once the daemon resumes; a fencer that died anyway is started again at the daemon's next message.
//!
//! Deadlines travel as absolute times on the machine's `CLOCK_MONOTONIC` (`arm-at <ms>`, [`monotonic_ms`]), which
//! both processes read alike: a message that sat in the pipe, or was written by a daemon frozen between computing and
//! writing it, still fences at the moment the daemon meant, not that long after it arrived. (`arm <ms>`, relative to
//! its receipt, is still understood, from a daemon of an older version.)
//!
//! A fencer found stopped (`SIGSTOP`: state `T` in `/proc`) when the daemon next talks to it is killed and replaced,
//! so a frozen fencer does not leave the node unguarded unnoticed.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Watchdog;
use crate::sync::lock;
use crate::time::{Clock, Millis};

/// One message from the daemon to the fencer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencerMessage {
    /// Fence at `at_ms` on `CLOCK_MONOTONIC` ([`monotonic_ms`]) unless told again before.
    ArmAt {
        /// The deadline, in milliseconds of `CLOCK_MONOTONIC`.
        at_ms: u64,
    },
    /// Fence `in_ms` after the fencer reads the line (the older, relative form), unless told again before.
    Arm {
        /// Milliseconds from the moment the fencer reads the line.
        in_ms: u64,
    },
    /// Nothing to fence until the next `ArmAt` or `Arm`.
    Disarm,
}

/// The machine's `CLOCK_MONOTONIC` in milliseconds: the same clock in every process, unlike `Instant`'s opaque
/// origin, so a deadline can be handed from one process to another.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The `Instant` at which `CLOCK_MONOTONIC` reads `at_ms` (now, if that has passed).
pub fn instant_at(at_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(at_ms.saturating_sub(monotonic_ms()))
}

impl FencerMessage {
    /// The line written to the fencer's stdin, newline included: `arm <ms>` or `disarm`.
    pub fn to_line(self) -> String {
        match self {
            FencerMessage::ArmAt { at_ms } => format!("arm-at {at_ms}\n"),
            FencerMessage::Arm { in_ms } => format!("arm {in_ms}\n"),
            FencerMessage::Disarm => "disarm\n".to_string(),
        }
    }
    /// The message of one line read by the fencer; `None` for anything else.
    pub fn parse(line: &str) -> Option<FencerMessage> {
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some("arm-at"), Some(ms)) => {
                ms.parse().ok().map(|at_ms| FencerMessage::ArmAt { at_ms })
            }
            (Some("arm"), Some(ms)) => ms.parse().ok().map(|in_ms| FencerMessage::Arm { in_ms }),
            (Some("disarm"), None) => Some(FencerMessage::Disarm),
            _ => None,
        }
    }
}

/// How to start the fencer process (called again if it has to be replaced).
pub type FencerCommand = Box<dyn Fn() -> Command + Send + Sync>;

/// The daemon's side: a [`Watchdog`] that forwards to a fencer child process.
pub struct ProcessWatchdog {
    clock: Arc<dyn Clock>,
    command: FencerCommand,
    child: Mutex<(Child, ChildStdin)>,
}

fn start(command: &FencerCommand) -> std::io::Result<(Child, ChildStdin)> {
    // Its own process group: a Ctrl-C in the daemon's terminal (SIGINT to the foreground group) must not kill the
    // fencer of a daemon whose stop may still fail and leave the lease armed.
    let mut child = std::os::unix::process::CommandExt::process_group(&mut command(), 0)
        .stdin(Stdio::piped())
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("fencer has no stdin"))?;
    Ok((child, stdin))
}

impl ProcessWatchdog {
    /// Starts the fencer with `command` (its stdin becomes the message pipe).
    pub fn spawn(
        command: FencerCommand,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<ProcessWatchdog> {
        let child = start(&command)?;
        Ok(ProcessWatchdog {
            clock,
            command,
            child: Mutex::new(child),
        })
    }

    fn send(&self, m: FencerMessage, restart_if_gone: bool) {
        let mut g = lock(&self.child);
        if restart_if_gone && is_stopped(g.0.id()) {
            // A stopped fencer would read this message only when resumed: replace it now. The new one takes over the
            // old one's armed deadline (pg-control's fencer keeps it in a state file) and gets this message.
            tracing::error!(
                pid = g.0.id(),
                "the fencer process is stopped (SIGSTOP): killing it and starting a new one"
            );
            let _ = g.0.kill();
            let _ = g.0.wait();
        }
        let write = |g: &mut (Child, ChildStdin)| {
            g.1.write_all(m.to_line().as_bytes())
                .and_then(|_| g.1.flush())
        };
        if let Err(e) = write(&mut g) {
            if !restart_if_gone {
                return;
            }
            // The fencer is gone (killed, or an old one that exited): start a new one and tell it again.
            let _ = g.0.try_wait();
            match start(&self.command).and_then(|mut c| write(&mut c).map(|_| c)) {
                Ok(c) => {
                    tracing::warn!(error = %e, pid = c.0.id(), "the fencer was gone: started a new one");
                    *g = c;
                }
                Err(e2) => {
                    tracing::error!(error = %e, restart_error = %e2, "cannot reach the fencer process: PostgreSQL is not protected against a frozen daemon")
                }
            }
        }
    }

    /// The fencer's process id.
    pub fn pid(&self) -> u32 {
        lock(&self.child).0.id()
    }
}

/// Whether process `pid` is stopped (`T`/`t` in `/proc/<pid>/stat`): SIGSTOPped or traced.
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "T" || state == "t")
    })
}

impl Watchdog for ProcessWatchdog {
    fn arm(&self, deadline: Millis) {
        // Converted to CLOCK_MONOTONIC now: however late the fencer reads it, it means this moment.
        let at_ms = monotonic_ms() + deadline.since(self.clock.now());
        self.send(FencerMessage::ArmAt { at_ms }, true);
    }
    fn disarm(&self) {
        self.send(FencerMessage::Disarm, true);
    }
}

impl Drop for ProcessWatchdog {
    fn drop(&mut self) {
        // A clean daemon exit disarms first, so the fencer exits without fencing (a gone one stays gone).
        self.send(FencerMessage::Disarm, false);
    }
}

/// What the fencer loop did, for its log and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencerExit {
    /// The deadline passed without a new `arm`: PostgreSQL was fenced.
    Fenced,
    /// The daemon went away while disarmed.
    Disarmed,
}

/// The fencer's loop: reads messages from `input` (the daemon's pipe) and calls `fence` whenever an armed deadline
/// passes, then waits disarmed for the next `arm` (a frozen daemon that resumes is guarded again). Returns when the
/// input ends: after fencing at the last deadline if it was armed. The pipe is read on its own thread, so a silent
/// daemon never keeps the loop from acting on its deadline.
pub fn run_fencer<R: BufRead + Send + 'static>(input: R, fence: impl FnMut()) -> FencerExit {
    run_fencer_from(input, None, |_| {}, fence)
}

/// [`run_fencer`] starting armed at `inherited` (`CLOCK_MONOTONIC` ms: the deadline of a fencer this one replaces),
/// calling `record` with the armed deadline (`None`: disarmed) whenever it changes, so a successor can take it over.
pub fn run_fencer_from<R: BufRead + Send + 'static>(
    input: R,
    inherited: Option<u64>,
    mut record: impl FnMut(Option<u64>),
    mut fence: impl FnMut(),
) -> FencerExit {
    let (tx, rx) = mpsc::channel::<Option<FencerMessage>>();
    std::thread::spawn(move || {
        for line in input.lines() {
            match line {
                Ok(l) => {
                    if let Some(m) = FencerMessage::parse(&l) {
                        if tx.send(Some(m)).is_err() {
                            return;
                        }
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    let mut deadline: Option<Instant> = inherited.map(instant_at);
    record(inherited);
    let mut input_open = true;
    let mut fenced = false;
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None if input_open => Duration::from_secs(3600),
            None if fenced => return FencerExit::Fenced,
            None => return FencerExit::Disarmed,
        };
        if deadline.is_some() && wait.is_zero() {
            fence();
            fenced = true;
            deadline = None;
            record(None);
            continue;
        }
        if !input_open {
            std::thread::sleep(wait);
            continue;
        }
        match rx.recv_timeout(wait) {
            Ok(Some(FencerMessage::ArmAt { at_ms })) => {
                deadline = Some(instant_at(at_ms));
                record(Some(at_ms));
            }
            Ok(Some(FencerMessage::Arm { in_ms })) => {
                deadline = Some(Instant::now() + Duration::from_millis(in_ms));
                record(Some(monotonic_ms() + in_ms));
            }
            Ok(Some(FencerMessage::Disarm)) => {
                deadline = None;
                record(None);
            }
            Ok(None) | Err(RecvTimeoutError::Disconnected) => input_open = false,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn messages_round_trip() {
        for m in [
            FencerMessage::ArmAt { at_ms: 123_456 },
            FencerMessage::Arm { in_ms: 4000 },
            FencerMessage::Disarm,
        ] {
            assert_eq!(FencerMessage::parse(m.to_line().trim()), Some(m));
        }
        assert_eq!(FencerMessage::parse("arm soon"), None);
    }

    #[test]
    fn a_daemon_that_dies_while_armed_gets_its_postgres_fenced_at_the_deadline() {
        let start = Instant::now();
        let mut fenced_at = None;
        let exit = run_fencer(Cursor::new("arm 5000\narm 200\n"), || {
            fenced_at = Some(start.elapsed())
        });
        assert_eq!(exit, FencerExit::Fenced);
        let at = fenced_at.expect("fence was not called");
        assert!(
            at >= Duration::from_millis(200) && at < Duration::from_millis(2000),
            "{at:?}"
        );
    }

    #[test]
    fn a_fencer_that_died_is_started_again_at_the_next_message() {
        let dir = std::env::temp_dir().join(format!("hactl-fencer-{}", std::process::id()));
        let log = dir.with_extension("pids");
        let _ = std::fs::remove_file(&log);
        let log2 = log.clone();
        let command: FencerCommand = Box::new(move || {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!(
                "echo $$ >> {}; exec cat > /dev/null",
                log2.display()
            ));
            c
        });
        let started = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let pids = std::fs::read_to_string(&log).unwrap_or_default();
                if pids.lines().count() >= n || Instant::now() > deadline {
                    return pids.lines().count();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        };
        let clock = Arc::new(crate::time::ManualClock::new(0));
        let w = ProcessWatchdog::spawn(command, clock).expect("spawn");
        let first = w.pid();
        assert_eq!(started(1), 1, "the first fencer did not start");
        kill9(first);
        std::thread::sleep(Duration::from_millis(200));
        w.arm(Millis(5_000));
        assert_ne!(w.pid(), first, "no new fencer after the first one died");
        assert_eq!(started(2), 2, "the second fencer did not start");
        w.disarm();
        drop(w);
        let _ = std::fs::remove_file(&log);
    }

    /// SIGKILL without a libc dependency in ha-core: `kill -9`.
    fn kill9(pid: u32) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }

    #[test]
    fn an_absolute_deadline_that_arrives_late_still_fences_at_its_moment() {
        // The daemon computed "200 ms from now", then sat 150 ms (frozen) before the line reached the fencer.
        let (r, mut w) = std::io::pipe().expect("pipe");
        let start = Instant::now();
        let at_ms = monotonic_ms() + 200;
        let daemon = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            w.write_all(FencerMessage::ArmAt { at_ms }.to_line().as_bytes())
                .unwrap();
        });
        let mut fenced_at = None;
        let exit = run_fencer(std::io::BufReader::new(r), || {
            fenced_at = Some(start.elapsed())
        });
        daemon.join().unwrap();
        assert_eq!(exit, FencerExit::Fenced);
        let at = fenced_at.expect("fence was not called");
        // Relative to its receipt it would have fired at 350 ms.
        assert!(
            at >= Duration::from_millis(190) && at < Duration::from_millis(300),
            "{at:?}"
        );
    }

    #[test]
    fn a_successor_fencer_keeps_the_deadline_it_inherited_and_records_every_change() {
        let start = Instant::now();
        let mut records = Vec::new();
        let mut fenced_at = None;
        let inherited = monotonic_ms() + 150;
        // The daemon that started the successor says nothing (it froze): the inherited deadline fences.
        let exit = run_fencer_from(
            Cursor::new(""),
            Some(inherited),
            |r| records.push(r),
            || fenced_at = Some(start.elapsed()),
        );
        assert_eq!(exit, FencerExit::Fenced);
        assert!(fenced_at.expect("not fenced") >= Duration::from_millis(140));
        assert_eq!(records, vec![Some(inherited), None]);
    }

    #[test]
    fn a_stopped_fencer_is_killed_and_replaced_at_the_next_message() {
        let command: FencerCommand = Box::new(|| {
            let mut c = Command::new("sh");
            c.arg("-c").arg("exec cat > /dev/null");
            c
        });
        let clock = Arc::new(crate::time::ManualClock::new(0));
        let w = ProcessWatchdog::spawn(command, clock).expect("spawn");
        let first = w.pid();
        // SAFETY: kill(2) on the child this test started.
        unsafe { libc::kill(first as i32, libc::SIGSTOP) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !is_stopped(first) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(is_stopped(first), "the first fencer did not stop");
        w.arm(Millis(5_000));
        assert_ne!(w.pid(), first, "the stopped fencer was kept");
        assert!(
            !std::path::Path::new(&format!("/proc/{first}")).exists(),
            "the stopped fencer still exists"
        );
        w.disarm();
    }

    #[test]
    fn a_daemon_that_disarmed_before_leaving_fences_nothing() {
        let mut fenced = false;
        assert_eq!(
            run_fencer(Cursor::new("arm 100\ndisarm\n"), || fenced = true),
            FencerExit::Disarmed
        );
        assert!(!fenced);
    }

    #[test]
    fn a_frozen_daemon_is_fenced_while_its_pipe_stays_open_and_guarded_again_when_it_resumes() {
        let (r, mut w) = std::io::pipe().expect("pipe");
        let start = Instant::now();
        let daemon = std::thread::spawn(move || {
            w.write_all(b"arm 150\n").unwrap();
            // Frozen past the deadline, then resumed: it arms again and freezes again.
            std::thread::sleep(Duration::from_millis(500));
            w.write_all(b"arm 100\n").unwrap();
            std::thread::sleep(Duration::from_millis(500));
            w.write_all(b"disarm\n").unwrap();
        });
        let mut fenced_at = Vec::new();
        let exit = run_fencer(std::io::BufReader::new(r), || {
            fenced_at.push(start.elapsed())
        });
        daemon.join().unwrap();
        assert_eq!(exit, FencerExit::Fenced);
        assert_eq!(fenced_at.len(), 2, "{fenced_at:?}");
        assert!(fenced_at[0] >= Duration::from_millis(150), "{fenced_at:?}");
        assert!(fenced_at[1] >= Duration::from_millis(600), "{fenced_at:?}");
    }
}
