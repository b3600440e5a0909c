//! The decision, rule by rule: each case is a scenario, the observation it gives, and the actions it must produce.
//!
//! One test binary; its modules follow the situations of `ha_core::decision` (one file per situation there, one here),
//! and `support` holds the cluster, the observations and the case runner they share.

mod dcs_outage;
mod follower;
mod housekeeping;
mod leader;
mod no_leader;
mod paused;
mod primary_down;
mod quorum;
mod quorum_steps;
mod slots;
mod standby;
mod support;
mod switchover;
mod sync;
mod uninitialized;
mod unresponsive;

use crate::support::{cluster, replica, run, without_leader};

#[test]
fn decision_is_a_pure_function_of_its_observation() {
    let c = without_leader(cluster());
    let pg = replica(1000, "node1");
    assert_eq!(run(&c, &pg), run(&c, &pg));
}
