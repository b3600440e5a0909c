//! The lease: how long this node may act as the leader after a lock request succeeded. It runs from the moment the
//! request was *sent*, not from when the answer came, and the watchdog is armed with the same deadline.

use std::future::Future;

use super::Driver;
use crate::dcs::{Dcs, DcsError};
use crate::pg::PgControl;
use crate::time::Millis;

impl<D: Dcs, P: PgControl> Driver<D, P> {
    /// The lease runs from `sent` (when the successful request left this node) for ttl minus the safety margin.
    pub(super) fn take_lease(&mut self, sent: Millis) {
        use crate::mutants::{active, PlantedBug};
        let valid = if active(PlantedBug::LeaseMarginZero) {
            self.local.timing.ttl_ms
        } else {
            self.local.timing.lease_valid_ms()
        };
        let sent = if active(PlantedBug::LeaseFromReply) {
            self.clock.now()
        } else {
            sent
        };
        let deadline = sent.plus_ms(valid);
        self.local.lease_deadline = Some(deadline);
        // Paused, nothing is done automatically, fencing included (Patroni closes its watchdog in pause).
        if self.local.last_config.is_paused() || active(PlantedBug::NoFencer) {
            self.watchdog.disarm();
        } else {
            self.watchdog.arm(deadline);
        }
    }

    /// Runs a DCS call, given up with [`DcsError::Unreachable`] if this node's lease ends first: a leader waiting on
    /// a slow DCS must still demote at its lease's end (its fencer does that too, unless it is frozen). Without a
    /// lease the call has only its own deadline (a lease that ended is forgotten once PostgreSQL no longer runs as
    /// primary, see `cycle_inner`).
    pub(super) async fn within_lease<T>(
        &self,
        call: impl Future<Output = Result<T, DcsError>>,
    ) -> Result<T, DcsError> {
        let Some(deadline) = self.local.lease_deadline else {
            return call.await;
        };
        let lease_end = self.clock.sleep_until(deadline);
        tokio::select! {
            biased;
            r = call => r,
            () = lease_end => Err(DcsError::Unreachable(
                "the lease ended while waiting for the DCS".into(),
            )),
        }
    }

    pub(super) fn lease_valid_now(&self) -> bool {
        self.local
            .lease_deadline
            .map_or(false, |d| self.clock.now() < d)
    }
}
