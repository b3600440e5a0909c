//! The Patroni HA test plan on real 3-node clusters (etcd, PostgreSQL 15, HAProxy, a writer committing every 20 ms
//! through HAProxy the whole time). Each scenario asserts what the data must show, and records its figures
//! (time to a new primary, the longest gap between acknowledged writes, rows lost) in
//! `target/tmp/e2e-results.jsonl`, printed as it grows. Scenarios run one at a time.
//!
//! Layout: `switchover` (hand-overs the operator asks for), `faults` (PostgreSQL, daemon and machine faults on the
//! primary), `growth` (a new replica, edit-config), `dcs_loss` (the DCS lost, with and without failsafe, and a
//! partition), and here the Consul and ZooKeeper runs of the starred scenarios.

#[path = "../e2e_support/mod.rs"]
mod e2e_support;

mod dcs_loss;
mod faults;
mod growth;
mod switchover;

use e2e_support::scenario::{
    cluster_with_writer, cluster_with_writer_as, failed_over, post, rejoined, serial,
    wait_streaming,
};
use e2e_support::{
    assert_no_corruption, finish, lost_rows, prerequisites_or_skip, slots, write_gap, Backend,
    Census, Cluster, Partition, Spec, Timing, VipSite, Writer, FAST,
};
use serde_json::{json, Value};

/// The shortest timing the targets name: ttl 5 s (loop_wait + 2 × retry_timeout ≤ ttl).
const TTL5: Timing = Timing {
    ttl_s: 5,
    loop_wait_s: 1,
    retry_timeout_s: 2,
};

/// Async replication may lose the last few commits when a primary dies; a switchover or a restart must lose none.
const FEW_ROWS: usize = 100;

use dcs_loss::{
    loss_of_the_dcs_with_failsafe, loss_of_the_dcs_without_failsafe, partitioned_primary,
};
use faults::{sigkill_of_the_primary_daemon, sigstop_of_the_primary_daemon};
use switchover::switchover_to_a_named_candidate;

// The scenarios marked * in the test plan, on Consul and ZooKeeper.

/// The six wrappers of one backend: a module per backend, so `cargo test on_consul` runs just those.
macro_rules! starred_scenarios_on {
    ($module:ident, $feature:literal, $backend:expr) => {
        #[cfg(feature = $feature)]
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn switchover_to_a_named_candidate_loses_no_acknowledged_write() {
                switchover_to_a_named_candidate($backend).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sigkill_of_the_primary_daemon_fails_over_and_the_node_rejoins() {
                sigkill_of_the_primary_daemon($backend).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sigstop_of_the_primary_daemon_fails_over_and_it_demotes_on_resume() {
                sigstop_of_the_primary_daemon($backend).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn loss_of_the_dcs_without_failsafe_stops_writes_and_a_leader_returns_with_it() {
                loss_of_the_dcs_without_failsafe($backend).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn loss_of_the_dcs_with_failsafe_keeps_the_primary() {
                loss_of_the_dcs_with_failsafe($backend).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_partitioned_primary_stops_taking_writes_before_the_majority_promotes() {
                partitioned_primary($backend).await
            }
        }
    };
}

starred_scenarios_on!(on_consul, "consul", Backend::Consul);
starred_scenarios_on!(on_zookeeper, "zookeeper", Backend::Zookeeper);
