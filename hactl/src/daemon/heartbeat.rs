//! The heartbeat lines the daemon writes for loops that change nothing, once per change with
//! `log.deduplicate_heartbeat_logs`.

/// Which loops' heartbeat lines ("no action. I am (node1), the leader with the lock") the daemon writes: every
/// one, or with `log.deduplicate_heartbeat_logs` only one that differs from the heartbeat before it.
#[derive(Debug, Default)]
pub struct HeartbeatLog {
    dedupe: bool,
    last: Option<String>,
}

impl HeartbeatLog {
    pub fn new(dedupe: bool) -> HeartbeatLog {
        HeartbeatLog { dedupe, last: None }
    }

    /// Whether to log this loop's line as a heartbeat (loops that change something are the driver's to log).
    pub fn should_log(&mut self, d: &ha_core::decision::Decision) -> bool {
        if !d.is_heartbeat() {
            self.last = None;
            return false;
        }
        let repeat = self.last.as_deref() == Some(d.reason.as_str());
        self.last = Some(d.reason.clone());
        !(self.dedupe && repeat)
    }
}

#[cfg(test)]
mod tests {
    use super::HeartbeatLog;
    use ha_core::decision::{Action, Decision};

    #[test]
    fn a_repeated_heartbeat_is_written_once_when_deduplicating() {
        let beat = Decision::new(
            vec![Action::RenewLock],
            "no action. I am (n1), the leader with the lock",
        );
        let change = Decision::new(vec![Action::Restart], "restarting");
        let mut every = HeartbeatLog::new(false);
        assert!(every.should_log(&beat) && every.should_log(&beat));
        let mut once = HeartbeatLog::new(true);
        assert!(once.should_log(&beat));
        assert!(!once.should_log(&beat));
        assert!(!once.should_log(&change), "a change is the driver's line");
        assert!(
            once.should_log(&beat),
            "after a change the heartbeat is written again"
        );
    }
}
