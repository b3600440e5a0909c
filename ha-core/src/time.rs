//! Time as the HA logic sees it: a monotonic millisecond counter plus the wall clock, both read from a
//! [`Clock`] the driver is given. The decision never reads a clock itself; the simulator gives a virtual one.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A wait [`Clock::sleep_until`] returns.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

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
    /// Resolves once [`Clock::now`] reaches `t`. The driver races a leader's DCS calls against its lease's end
    /// with it, so a primary never waits on a slow DCS past its lease (the fencer is the first line there; this is
    /// the second, for a fencer that is frozen). The default never resolves: a clock that cannot wait leaves the
    /// calls to their own deadline.
    fn sleep_until(&self, t: Millis) -> Sleep<'_> {
        let _ = t;
        Box::pin(std::future::pending())
    }
}

/// Resolves once `clock` reads `t`, checked each time it is polled: for clocks moved by hand, whose owner polls
/// again after moving them (the simulator polls every loop in flight once a step).
pub fn poll_until(clock: &dyn Clock, t: Millis) -> Sleep<'_> {
    struct Until<'a>(&'a dyn Clock, Millis);
    impl Future for Until<'_> {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.0.now() >= self.1 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }
    Box::pin(Until(clock, t))
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
    fn sleep_until(&self, t: Millis) -> Sleep<'_> {
        let at = self.origin + Duration::from_millis(t.0);
        Box::pin(tokio::time::sleep_until(at.into()))
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
    fn sleep_until(&self, t: Millis) -> Sleep<'_> {
        poll_until(self, t)
    }
}
