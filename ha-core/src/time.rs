//! Time as the HA logic sees it: a monotonic millisecond counter plus the wall clock, both read from a
//! [`Clock`] the driver is given. The decision never reads a clock itself; the simulator gives a virtual one.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A point on a monotonic clock, in milliseconds since the clock's own origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + ms`, saturating.
    pub fn plus_ms(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Where the driver gets the time from.
pub trait Clock: Send + Sync {
    /// Monotonic time: lease deadlines and timeouts are measured on it, never on the wall clock.
    fn now(&self) -> Millis;
    /// Wall-clock time in milliseconds since the Unix epoch: only for scheduled switchovers and timestamps shown to people.
    fn unix_ms(&self) -> i64;
}

/// The real clocks of the machine.
#[derive(Debug, Clone)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        Millis(self.origin.elapsed().as_millis() as u64)
    }
    fn unix_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to: for unit tests and the simulator.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    mono_ms: Arc<AtomicU64>,
    unix_origin_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock at monotonic 0 whose wall clock reads `unix_origin_ms` at that point.
    pub fn new(unix_origin_ms: i64) -> Self {
        ManualClock {
            mono_ms: Arc::new(AtomicU64::new(0)),
            unix_origin_ms: Arc::new(AtomicI64::new(unix_origin_ms)),
        }
    }
    /// Moves both clocks forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.mono_ms.fetch_add(ms, Ordering::SeqCst);
    }
    /// Sets the monotonic clock to `t` (the wall clock follows); unlike a real clock it may go back.
    pub fn set(&self, t: Millis) {
        self.mono_ms.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        Millis(self.mono_ms.load(Ordering::SeqCst))
    }
    fn unix_ms(&self) -> i64 {
        self.unix_origin_ms.load(Ordering::SeqCst) + self.mono_ms.load(Ordering::SeqCst) as i64
    }
}
