//! A watchdog in a separate process, for machines without `/dev/watchdog`.
//!
//! The daemon starts a small child (the *fencer*: `hactl fencer …` in the reference daemon) and talks to it over the
//! child's stdin, one line per message: `arm <ms>` (fence PostgreSQL `<ms>` from now unless told again) or `disarm`.
//! A SIGSTOP or SIGKILL of the daemon does not stop the fencer, so a frozen or dead lock holder still stops taking
//! writes before its lease can expire; when its stdin closes (the daemon died) the fencer keeps the last deadline,
//! fences at it if armed, and exits.
//!
//! Deadlines travel as durations because the two processes' monotonic clocks have different origins; a message
//! delayed in the pipe only makes the fencer act *later* than the daemon meant if the daemon was frozen between
//! computing and writing it, and in that case the previous, earlier deadline is still armed.

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Watchdog;
use crate::time::{Clock, Millis};

/// One message from the daemon to the fencer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencerMessage {
    Arm { in_ms: u64 },
    Disarm,
}

impl FencerMessage {
    pub fn to_line(self) -> String {
        match self {
            FencerMessage::Arm { in_ms } => format!("arm {in_ms}\n"),
            FencerMessage::Disarm => "disarm\n".to_string(),
        }
    }
    pub fn parse(line: &str) -> Option<FencerMessage> {
        let mut it = line.split_whitespace();
        match (it.next(), it.next()) {
            (Some("arm"), Some(ms)) => ms.parse().ok().map(|in_ms| FencerMessage::Arm { in_ms }),
            (Some("disarm"), None) => Some(FencerMessage::Disarm),
            _ => None,
        }
    }
}

/// The daemon's side: a [`Watchdog`] that forwards to a fencer child process.
pub struct ProcessWatchdog {
    clock: Arc<dyn Clock>,
    child: Mutex<(Child, ChildStdin)>,
}

impl ProcessWatchdog {
    /// Starts the fencer with `command` (its stdin becomes the message pipe).
    pub fn spawn(mut command: Command, clock: Arc<dyn Clock>) -> std::io::Result<ProcessWatchdog> {
        let mut child = command.stdin(Stdio::piped()).spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("fencer has no stdin"))?;
        Ok(ProcessWatchdog {
            clock,
            child: Mutex::new((child, stdin)),
        })
    }

    fn send(&self, m: FencerMessage) {
        let mut g = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) =
            g.1.write_all(m.to_line().as_bytes())
                .and_then(|_| g.1.flush())
        {
            tracing::error!(error = %e, "cannot reach the fencer process: PostgreSQL is not protected against a frozen daemon");
        }
    }

    /// The fencer's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).0.id()
    }
}

impl Watchdog for ProcessWatchdog {
    fn arm(&self, deadline: Millis) {
        let in_ms = deadline.since(self.clock.now());
        self.send(FencerMessage::Arm { in_ms });
    }
    fn disarm(&self) {
        self.send(FencerMessage::Disarm);
    }
}

impl Drop for ProcessWatchdog {
    fn drop(&mut self) {
        // A clean daemon exit disarms first, so the fencer exits without fencing.
        self.send(FencerMessage::Disarm);
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

/// The fencer's loop: reads messages from `input` (the daemon's pipe) and calls `fence` once if an armed deadline
/// passes. Returns after fencing, or when the input ends while disarmed. The pipe is read on its own thread, so a
/// silent daemon never keeps the loop from acting on its deadline.
pub fn run_fencer<R: BufRead + Send + 'static>(input: R, mut fence: impl FnMut()) -> FencerExit {
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
    let mut deadline: Option<Instant> = None;
    let mut input_open = true;
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None if input_open => Duration::from_secs(3600),
            None => return FencerExit::Disarmed,
        };
        if deadline.is_some() && wait.is_zero() {
            fence();
            return FencerExit::Fenced;
        }
        if !input_open {
            std::thread::sleep(wait);
            continue;
        }
        match rx.recv_timeout(wait) {
            Ok(Some(FencerMessage::Arm { in_ms })) => {
                deadline = Some(Instant::now() + Duration::from_millis(in_ms))
            }
            Ok(Some(FencerMessage::Disarm)) => deadline = None,
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
        for m in [FencerMessage::Arm { in_ms: 4000 }, FencerMessage::Disarm] {
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
    fn a_daemon_that_disarmed_before_leaving_fences_nothing() {
        let mut fenced = false;
        assert_eq!(
            run_fencer(Cursor::new("arm 100\ndisarm\n"), || fenced = true),
            FencerExit::Disarmed
        );
        assert!(!fenced);
    }

    #[test]
    fn a_frozen_daemon_that_stops_re_arming_is_fenced_while_its_pipe_stays_open() {
        let (r, mut w) = std::io::pipe().expect("pipe");
        w.write_all(b"arm 150\n").unwrap();
        let start = Instant::now();
        let mut fenced_at = None;
        let exit = run_fencer(std::io::BufReader::new(r), || {
            fenced_at = Some(start.elapsed())
        });
        drop(w);
        assert_eq!(exit, FencerExit::Fenced);
        assert!(fenced_at.unwrap() >= Duration::from_millis(150));
    }
}
