//! What the REST API hands the loop: operator requests ([`RequestBox`]) and failsafe requests from a leader
//! ([`FailsafeInbox`]), both taken by the next loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::Driver;
use crate::dcs::Dcs;
use crate::model::{Tags, Timing};
use crate::pg::PgControl;
use crate::sync::lock;
use crate::time::Millis;

/// Failsafe requests received from a leader (the REST handler writes, the driver reads): `(leader, valid until)`.
pub type FailsafeInbox = Arc<Mutex<Option<(String, Millis)>>>;

/// Operator requests from the REST API, taken by the next loop.
#[derive(Debug, Default)]
pub struct RequestBox {
    /// `POST /restart`: restart PostgreSQL. Cleared once the loop that restarted it has reported.
    pub restart: std::sync::atomic::AtomicBool,
    /// `POST /reinitialize`: wipe the data directory and clone it again from the leader. Cleared once that succeeded.
    pub reinitialize: std::sync::atomic::AtomicBool,
    /// The tags of the last re-read configuration file (SIGHUP, `POST /reload`): the next loop decides with them
    /// (`nofailover`, `nosync`, `failover_priority`…) and publishes them in the member key.
    pub(super) tags: Mutex<Option<Tags>>,
    /// Wakes a sleeping [`Driver::run`] (Patroni's `ha.wakeup()`).
    pub(super) wakeup: tokio::sync::Notify,
    /// The slot positions the leader sent with its last `POST /failsafe`.
    failsafe_slots: Mutex<Option<BTreeMap<String, u64>>>,
    /// Fields the embedder publishes in the member key beside the driver's own (the daemon's `scheduled_restart`,
    /// which patronictl's `list` and `flush` read there).
    member_extras: Mutex<serde_json::Map<String, serde_json::Value>>,
}

impl RequestBox {
    /// Runs the next loop now instead of after loop_wait: a request (switchover, restart, new config…) was just
    /// written, and the DCS watch only sees the leader key. A wake-up during a loop runs one more loop right after.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Hands the next loop the node's new tags and wakes it, so the member key shows them within a loop.
    pub fn set_tags(&self, tags: Tags) {
        *lock(&self.tags) = Some(tags);
        self.wake();
    }

    /// Keeps the slot positions a leader sent with `POST /failsafe` (its acceptance goes to the [`FailsafeInbox`]).
    pub fn set_failsafe_slots(&self, slots: Option<BTreeMap<String, u64>>) {
        *lock(&self.failsafe_slots) = slots;
    }

    /// The slot positions of the last `POST /failsafe`, if it sent any.
    pub fn failsafe_slots(&self) -> Option<BTreeMap<String, u64>> {
        lock(&self.failsafe_slots).clone()
    }

    /// Publishes `key` in the member key from the next loop on (`None` removes it), and wakes the loop so the key
    /// shows it within one. A name the driver writes itself is not overridden.
    pub fn set_member_extra(&self, key: &str, value: Option<serde_json::Value>) {
        {
            let mut extras = lock(&self.member_extras);
            match value {
                Some(v) => extras.insert(key.to_string(), v),
                None => extras.remove(key),
            };
        }
        self.wake();
    }

    /// The fields [`RequestBox::set_member_extra`] published.
    pub fn member_extras(&self) -> serde_json::Map<String, serde_json::Value> {
        lock(&self.member_extras).clone()
    }

    /// The tags set by the last reload, if any: the REST API answers with them at once, before the loop that
    /// publishes them has ended (Patroni's API reads its tags as soon as the file is re-read).
    pub fn tags(&self) -> Option<Tags> {
        lock(&self.tags).clone()
    }
}

impl<D: Dcs, P: PgControl> Driver<D, P> {
    /// Accepts `leader` as the leader for one ttl (the `POST /failsafe` handler).
    pub fn accept_failsafe_leader(
        inbox: &FailsafeInbox,
        leader: &str,
        now: Millis,
        timing: Timing,
    ) {
        *lock(inbox) = Some((leader.to_string(), now.plus_ms(timing.ttl_ms)));
    }
}
