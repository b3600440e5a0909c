//! The failsafe promise a replica made over `POST /failsafe`, kept on disk: the API writes it before it answers
//! `Accepted`, and a daemon restarted within its deadline reads it back before its first loop.

/// The promise a replica made by accepting a leader over `POST /failsafe` ("I will not race for the lock until
/// then"), kept on disk so that a restarted daemon still keeps it. Without it a restarted replica would have to sit
/// out one ttl in failsafe mode, whether it had promised anything or not (see `LocalState::failsafe_promises_kept`).
///
/// The deadline is stored as wall-clock time (the monotonic clock restarts with the process): a wall clock stepped
/// forward across a restart shortens the promise, which is why the leader's lease, not this file, is what keeps a
/// primary alone.
pub struct PromiseFile {
    path: std::path::PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredPromise {
    leader: String,
    until_unix_ms: i64,
}

impl PromiseFile {
    pub fn new(path: impl Into<std::path::PathBuf>) -> PromiseFile {
        PromiseFile { path: path.into() }
    }

    /// Writes the promise (atomically, fsynced) before the leader is told it was accepted.
    pub fn save(&self, leader: &str, until_unix_ms: i64) -> std::io::Result<()> {
        let body = serde_json::to_vec(&StoredPromise {
            leader: leader.to_string(),
            until_unix_ms,
        })?;
        crate::files::write_atomically(&self.path, &body)
    }

    /// The promise still running at `clock`'s now, as the driver's inbox holds it (leader, monotonic deadline).
    /// An unreadable file is reported and treated as no promise.
    pub fn load(
        &self,
        clock: &dyn ha_core::time::Clock,
    ) -> Option<(String, ha_core::time::Millis)> {
        let text = std::fs::read(&self.path).ok()?;
        let p: StoredPromise = match serde_json::from_slice(&text) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(file = ?self.path, error = %e, "ignoring an unreadable failsafe promise file");
                return None;
            }
        };
        let left = p.until_unix_ms - clock.unix_ms();
        (left > 0).then(|| (p.leader, clock.now().plus_ms(left as u64)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha_core::time::{Clock, ManualClock};

    #[test]
    fn a_promise_outlives_the_process_until_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let file = PromiseFile::new(dir.path().join("failsafe.json"));
        let clock = ManualClock::new(1_000_000);
        assert_eq!(file.load(&clock), None, "no file: no promise");
        file.save("node1", 1_000_000 + 20_000).unwrap();
        let (leader, until) = file.load(&clock).expect("the promise is read back");
        assert_eq!(
            (leader.as_str(), until.since(clock.now())),
            ("node1", 20_000)
        );
        clock.advance_ms(20_000);
        assert_eq!(file.load(&clock), None, "an expired promise binds nobody");
        std::fs::write(dir.path().join("failsafe.json"), "garbage").unwrap();
        assert_eq!(file.load(&clock), None);
    }
}
