//! Time as each simulated machine keeps it. The DCS server expires leases on the simulation's own clock (the true
//! time); every node reads a clock of its own, offset from it and running fast or slow by a bounded rate error, so a
//! rule that compares one machine's clock with another's, or a margin too thin for the drift, shows up.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::time::{poll_until, Clock, ManualClock, Millis, Sleep};

/// The most a simulated machine's clock runs fast or slow, in parts per million (0.5 %: far worse than any quartz,
/// the order of a badly overcommitted VM).
pub const MAX_DRIFT_PPM: i64 = 5_000;

/// One node's clock: the true time scaled by its rate error and moved by its offset (monotonic clocks of different
/// machines start at different origins).
#[derive(Debug, Clone)]
pub struct NodeClock {
    truth: ManualClock,
    drift_ppm: i64,
    offset_ms: u64,
}

impl NodeClock {
    /// A clock reading `offset_ms` at true time 0 and running `drift_ppm` fast (negative: slow).
    pub fn new(truth: ManualClock, drift_ppm: i64, offset_ms: u64) -> NodeClock {
        NodeClock {
            truth,
            drift_ppm: drift_ppm.clamp(-MAX_DRIFT_PPM, MAX_DRIFT_PPM),
            offset_ms,
        }
    }

    fn local(&self, truth: Millis) -> Millis {
        let t = truth.0 as i128;
        let scaled = t + t * self.drift_ppm as i128 / 1_000_000;
        Millis(scaled.max(0) as u64 + self.offset_ms)
    }
}

impl Clock for NodeClock {
    fn now(&self) -> Millis {
        self.local(self.truth.now())
    }
    fn unix_ms(&self) -> i64 {
        let truth = self.truth.now();
        self.truth.unix_ms() + self.local(truth).0 as i64 - self.offset_ms as i64 - truth.0 as i64
    }
    fn sleep_until(&self, t: Millis) -> Sleep<'_> {
        poll_until(self, t)
    }
}

/// Resolves once the true time reaches `at`: a message in flight. The simulator polls every pending future once a
/// step, so a wait ends at the first step at or after `at`.
pub struct Until {
    truth: ManualClock,
    at: Millis,
}

impl Until {
    /// Waits until true time `at`.
    pub fn new(truth: &ManualClock, at: Millis) -> Until {
        Until {
            truth: truth.clone(),
            at,
        }
    }
}

impl Future for Until {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.truth.now() >= self.at {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_clock_counts_less_time_than_passed() {
        let truth = ManualClock::new(0);
        let slow = NodeClock::new(truth.clone(), -5_000, 1_000);
        assert_eq!(slow.now(), Millis(1_000));
        truth.advance_ms(10_000);
        assert_eq!(slow.now(), Millis(1_000 + 9_950));
    }
}
