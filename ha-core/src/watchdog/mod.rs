//! Fencing that does not depend on the HA loop being alive.
//!
//! A frozen daemon (SIGSTOP, a stuck kernel call, a VM pause) cannot demote its primary, yet the lease it held
//! expires and a replica is promoted. Patroni relies on an optional hardware watchdog here; hactl makes it part of
//! the design: the driver arms the watchdog with the instant its lease stops being valid, and a watchdog that is not
//! re-armed by then fences PostgreSQL on its own (the reference daemon runs it as a separate small process).

use crate::time::Millis;

/// Something that fences the local PostgreSQL at `deadline` unless it is re-armed or disarmed before.
pub trait Watchdog: Send + Sync {
    /// Fence PostgreSQL at `deadline` (monotonic ms of the driver's clock) unless called again before.
    fn arm(&self, deadline: Millis);
    /// This node no longer acts as primary: nothing to fence.
    fn disarm(&self);
    /// The cluster's ttl is (now) `ttl_ms`: a device watchdog derives its timeout from it.
    fn ttl_changed(&self, _ttl_ms: u64) {}
}

/// Several watchdogs armed together (a `/dev/watchdog` device and the process fencer).
pub struct AllOf(pub Vec<Box<dyn Watchdog>>);

impl Watchdog for AllOf {
    fn arm(&self, deadline: Millis) {
        for w in &self.0 {
            w.arm(deadline);
        }
    }
    fn disarm(&self) {
        for w in &self.0 {
            w.disarm();
        }
    }
    fn ttl_changed(&self, ttl_ms: u64) {
        for w in &self.0 {
            w.ttl_changed(ttl_ms);
        }
    }
}

/// No watchdog: a frozen daemon's primary keeps accepting writes until the daemon resumes (Patroni's behaviour
/// without `/dev/watchdog`). Only for setups where PostgreSQL is fenced some other way.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoWatchdog;

impl Watchdog for NoWatchdog {
    fn arm(&self, _deadline: Millis) {}
    fn disarm(&self) {}
}

pub mod process;
