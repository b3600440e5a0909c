//! The driver with the mock DCS and simulated PostgreSQL: leases, the watchdog, hooks, graceful shutdown.

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ha_core::decision::{Action, NodeIdentity};
use ha_core::driver::{Driver, DriverSettings, Hooks, Outcome};
use ha_core::mock_dcs::{MemoryDcs, MemoryDcsClient};
use ha_core::model::GlobalConfig;
use ha_core::sim::{now_or_never, SimPg, SimPgNet};
use ha_core::sync::lock;
use ha_core::time::{Clock, ManualClock, Millis};
use ha_core::watchdog::Watchdog;

struct World {
    clock: ManualClock,
    dcs: MemoryDcs,
    pgs: SimPgNet,
}

fn world() -> World {
    let clock = ManualClock::new(1_767_225_600_000);
    World {
        dcs: MemoryDcs::new(Arc::new(clock.clone())),
        pgs: SimPgNet::new(),
        clock,
    }
}

fn timing() -> GlobalConfig {
    GlobalConfig {
        ttl: Some(5.0),
        loop_wait: Some(1.0),
        retry_timeout: Some(2.0),
        ..Default::default()
    }
}

fn node(w: &World, name: &str) -> Driver<MemoryDcsClient, SimPg> {
    node_with(w, name, timing())
}

fn node_with(
    w: &World,
    name: &str,
    bootstrap_config: GlobalConfig,
) -> Driver<MemoryDcsClient, SimPg> {
    let identity = NodeIdentity {
        name: name.into(),
        conn_url: format!("postgres://{name}:5432/postgres"),
        api_url: format!("http://{name}:8008/patroni"),
        ..Default::default()
    };
    Driver::new(
        w.dcs.client(name),
        w.pgs.server(name),
        Arc::new(w.clock.clone()),
        DriverSettings {
            identity,
            bootstrap_config,
            ..Default::default()
        },
    )
}

#[derive(Clone, Default)]
struct RecordingWatchdog(Arc<Mutex<Vec<Option<Millis>>>>);
impl Watchdog for RecordingWatchdog {
    fn arm(&self, deadline: Millis) {
        lock(&self.0).push(Some(deadline));
    }
    fn disarm(&self) {
        lock(&self.0).push(None);
    }
}

#[test]
fn lease_runs_from_the_moment_the_renewal_was_sent_minus_the_safety_margin() {
    let w = world();
    let wd = RecordingWatchdog::default();
    let mut n1 = node(&w, "node1").with_watchdog(Box::new(wd.clone()));
    w.clock.advance_ms(1_000);
    now_or_never(n1.cycle()); // bootstraps and takes the lock at t = 1 s
                              // ttl 5 s, margin max(1 s, ttl/10) = 1 s: valid until 1 s + 4 s.
    assert_eq!(n1.local_state().lease_deadline, Some(Millis(5_000)));
    assert_eq!(lock(&wd.0).last(), Some(&Some(Millis(5_000))));
    w.clock.advance_ms(1_000);
    let r = now_or_never(n1.cycle());
    assert_eq!(
        r.executed.first(),
        Some(&(Action::RenewLock, Outcome::Done))
    );
    assert_eq!(n1.local_state().lease_deadline, Some(Millis(6_000)));
    // The next loop is due by the deadline at the latest, normally after loop_wait.
    assert_eq!(r.next_wake, Millis(3_000));
}

#[test]
fn dcs_outage_keeps_the_primary_until_its_lease_could_expire_then_demotes() {
    let w = world();
    let mut n1 = node(&w, "node1");
    now_or_never(n1.cycle());
    assert!(w.pgs.state("node1").unwrap().accepts_writes());
    w.dcs.set_unavailable(true);
    w.clock.advance_ms(2_000);
    let r = now_or_never(n1.cycle());
    assert!(r.executed.is_empty(), "{}", r.decision.reason);
    assert!(
        w.pgs.state("node1").unwrap().accepts_writes(),
        "demoted on the first failed loop"
    );
    // Retried after at most loop_wait (1 s), spread by up to 25 % per node so many nodes do not retry in step.
    assert!(
        (2_750..=3_000).contains(&r.next_wake.0),
        "next loop within loop_wait, before the 4 s deadline: {:?}",
        r.next_wake
    );
    w.clock.set(Millis(4_000));
    let r = now_or_never(n1.cycle());
    assert!(
        r.decision.reason.contains("my lease has ended"),
        "{}",
        r.decision.reason
    );
    assert!(
        !w.pgs.state("node1").unwrap().accepts_writes(),
        "still primary after the lease deadline"
    );
    // The server could expire the lease only at 5 s: stopped a full margin before anyone else could lead.
}

#[test]
fn graceful_shutdown_releases_the_lock_so_a_replica_takes_over_without_waiting_for_the_ttl() {
    let w = world();
    let mut n1 = node(&w, "node1");
    let mut n2 = node(&w, "node2");
    now_or_never(n1.cycle());
    now_or_never(n2.cycle()); // clones from node1
    now_or_never(n2.cycle()); // streams
    w.pgs.replicate_step();
    now_or_never(n1.cycle());
    now_or_never(n2.cycle());
    now_or_never(n1.shutdown());
    assert_eq!(w.dcs.leader(), None, "the lock was not released");
    assert!(
        !w.pgs.state("node1").unwrap().alive(),
        "PostgreSQL still runs after shutdown"
    );
    let r = now_or_never(n2.cycle()); // same instant: no ttl to wait for
    assert!(r.promoted(), "{}", r.decision.reason);
    assert_eq!(w.dcs.leader().map(|l| l.0), Some("node2".to_string()));
}

#[test]
fn a_shutdown_whose_stop_fails_keeps_the_lock_so_no_replica_promotes_beside_a_live_postmaster() {
    let w = world();
    let mut n1 = node(&w, "node1");
    let mut n2 = node(&w, "node2");
    now_or_never(n1.cycle());
    now_or_never(n2.cycle());
    now_or_never(n2.cycle());
    w.pgs.replicate_step();
    now_or_never(n1.cycle());
    // The postmaster hangs: the stop times out, its backends could still take writes.
    w.pgs
        .with("node1", |s| s.run = ha_core::sim::pg::SimRun::Hung);
    now_or_never(n1.shutdown());
    assert_eq!(
        w.dcs.leader().map(|l| l.0),
        Some("node1".to_string()),
        "the lock was released"
    );
    let r = now_or_never(n2.cycle());
    assert!(!r.promoted(), "{}", r.decision.reason);
}

struct VetoPromotion;
#[async_trait]
impl Hooks for VetoPromotion {
    async fn pre_promote(&self) -> bool {
        false
    }
}

#[test]
fn a_failing_pre_promote_hook_cancels_the_promotion_and_gives_the_lock_back() {
    let w = world();
    let mut n1 = node(&w, "node1");
    let mut n2 = node(&w, "node2").with_hooks(Box::new(VetoPromotion));
    now_or_never(n1.cycle());
    now_or_never(n2.cycle());
    now_or_never(n2.cycle());
    now_or_never(n1.shutdown());
    let r = now_or_never(n2.cycle());
    assert!(!r.promoted());
    assert!(
        matches!(
            r.executed.last(),
            Some((Action::Promote, Outcome::Refused(_)))
        ),
        "{:?}",
        r.executed
    );
    assert_eq!(w.dcs.leader(), None);
    assert!(w.pgs.state("node2").unwrap().standby);
}

#[test]
fn timing_that_breaks_the_rule_is_adjusted_with_warnings_naming_the_keys() {
    let cfg = GlobalConfig {
        ttl: Some(5.0),
        loop_wait: Some(2.0),
        retry_timeout: Some(2.0),
        ..Default::default()
    };
    let t = cfg.timing();
    assert_eq!(
        (t.ttl_ms, t.loop_wait_ms, t.retry_timeout_ms),
        (5_000, 1_000, 2_000)
    );
    let w = cfg.timing_adjustments().join(" ");
    assert!(
        w.contains("loop_wait") && w.contains("retry_timeout") && w.contains("ttl"),
        "{w}"
    );
    let cfg = GlobalConfig {
        ttl: Some(1.0),
        ..Default::default()
    };
    assert_eq!(cfg.timing().ttl_ms, 2_000);
    assert!(cfg.timing_adjustments()[0].starts_with("ttl=1"));
}

#[test]
fn a_node_that_just_took_the_lock_loops_again_at_once_so_it_shows_itself_leader() {
    let w = world();
    let mut n1 = node(&w, "node1");
    w.clock.advance_ms(1_000);
    let r = now_or_never(n1.cycle()); // bootstraps: takes the lock on a snapshot without a leader
    assert_eq!(r.next_wake, r.now, "the loop after taking the lock waits");
    let r = now_or_never(n1.cycle());
    let leader = r
        .cluster
        .as_ref()
        .ok()
        .and_then(|c| c.leader_name().map(str::to_string));
    assert_eq!(leader.as_deref(), Some("node1"), "{}", r.decision.reason);
    assert_eq!(
        r.next_wake,
        r.now.plus_ms(1_000),
        "then it sleeps loop_wait as usual"
    );
}

#[tokio::test]
async fn a_request_from_the_rest_api_wakes_the_driver_before_loop_wait() {
    let w = world();
    let n1 = node(&w, "node1");
    let requests = n1.requests();
    let mut status = n1.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(n1.run(async {
        let _ = stop_rx.await;
    }));
    let loops = |s: &tokio::sync::watch::Receiver<Option<ha_core::driver::CycleReport>>| {
        s.borrow().as_ref().map(|r| r.decision.reason.clone())
    };
    // Bootstrap, the loop right after taking the lock, then asleep for loop_wait (the manual clock never moves, so
    // without a wake-up it would sleep a whole real loop_wait).
    for _ in 0..2 {
        tokio::time::timeout(std::time::Duration::from_secs(5), status.changed())
            .await
            .expect("a loop")
            .expect("driver alive");
    }
    let before = loops(&status);
    requests.wake();
    tokio::time::timeout(std::time::Duration::from_millis(500), status.changed())
        .await
        .unwrap_or_else(|_| panic!("no loop within 500 ms of the wake-up (last: {before:?})"))
        .expect("driver alive");
    let _ = stop_tx.send(());
    let _ = task.await;
}

#[test]
fn a_renewal_that_finds_the_dcs_gone_ends_the_loop_and_the_next_one_acts_on_the_outage_at_once() {
    let w = world();
    let mut n1 = node(&w, "node1");
    now_or_never(n1.cycle()); // bootstraps and takes the lock
                              // The outage as a cached client sees it first: its load still answered, its renewal unreachable.
    w.dcs.set_only_loads(true);
    w.clock.advance_ms(1_000);
    let start = w.clock.now();
    let before = w.dcs.request_counts().get("node1").copied().unwrap_or(0);
    let r = now_or_never(n1.cycle());
    assert!(
        matches!(
            r.executed.first(),
            Some((Action::RenewLock, Outcome::Failed(_)))
        ),
        "{:?}",
        r.executed
    );
    // The load and the renewal, no member write: it would only wait out another timeout while the lease runs down.
    assert_eq!(
        w.dcs.request_counts().get("node1").copied().unwrap_or(0) - before,
        2
    );
    assert!(
        r.next_wake <= start.plus_ms(1_000),
        "next loop at {:?}, more than a second after {start:?}",
        r.next_wake
    );
    // The next loop acts on the outage without asking again (the cache would still answer): the DCS is
    // unreachable to the decision, which keeps the primary until the lease could end (and, in failsafe mode, asks
    // the members to confirm it at once).
    w.clock.set(r.next_wake);
    let before = w.dcs.request_counts().get("node1").copied().unwrap_or(0);
    let r = now_or_never(n1.cycle());
    assert!(
        r.decision.reason.contains("until my lease could expire"),
        "{}",
        r.decision.reason
    );
    assert_eq!(
        w.dcs.request_counts().get("node1").copied().unwrap_or(0),
        before
    );
    assert!(w.pgs.state("node1").unwrap().accepts_writes());
    // The DCS is back: the loop after asks it again and renews.
    w.dcs.set_only_loads(false);
    w.clock.set(r.next_wake);
    let r = now_or_never(n1.cycle());
    assert_eq!(
        r.executed.first(),
        Some(&(Action::RenewLock, Outcome::Done)),
        "{}",
        r.decision.reason
    );
}

/// Patroni's `primary_stop_timeout` in synchronous mode: a switchover whose clean stop of the primary hangs kills
/// the postmaster after the timeout and goes on (lock released, the candidate promotes) instead of waiting forever.
#[tokio::test(start_paused = true)]
async fn a_primary_whose_stop_hangs_is_killed_after_primary_stop_timeout_in_synchronous_mode() {
    let w = world();
    let mut cfg = timing();
    cfg.synchronous_mode = Some("on".into());
    cfg.extra.insert("primary_stop_timeout".into(), 2.into());
    let mut n1 = node_with(&w, "node1", cfg.clone());
    let mut n2 = node_with(&w, "node2", cfg);
    n1.cycle().await;
    n2.cycle().await; // clones from node1
    n2.cycle().await; // streams
    for _ in 0..3 {
        w.pgs.replicate_step();
        n1.cycle().await;
        n2.cycle().await;
    }
    w.dcs.request_switchover(&ha_core::model::Failover {
        leader: Some("node1".into()),
        member: Some("node2".into()),
        ..Default::default()
    });
    w.pgs.with("node1", |s| s.stop_hangs = true);
    let began = tokio::time::Instant::now();
    let r = n1.cycle().await;
    assert!(
        r.executed.iter().any(|(a, o)| matches!(
            a,
            Action::StopOrKill {
                kill_after_ms: 2000,
                ..
            }
        ) && matches!(o, Outcome::Done)),
        "{:?}",
        r.executed
    );
    assert_eq!(
        began.elapsed(),
        std::time::Duration::from_secs(2),
        "killed after primary_stop_timeout"
    );
    let s = w.pgs.state("node1").unwrap();
    assert!(!s.alive() && s.fences == 1, "{s:?}");
    assert_eq!(w.dcs.leader(), None, "the lock was not released");
    let r = n2.cycle().await;
    assert!(r.promoted(), "{}", r.decision.reason);
}

/// Holds every `AcquireLock` in `before_action` until opened: a daemon stopped (SIGSTOP) between deciding and acting.
struct HoldBeforeAcquire(Arc<std::sync::atomic::AtomicBool>);

#[async_trait]
impl Hooks for HoldBeforeAcquire {
    async fn before_action(&self, action: &Action, _serving: ha_core::driver::NodeRole) {
        if *action == Action::AcquireLock {
            let open = self.0.clone();
            std::future::poll_fn(move |_| {
                if open.load(std::sync::atomic::Ordering::SeqCst) {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            })
            .await;
        }
    }
}

/// #11: a plan is only as good as its snapshot. A replica decided to take the free lock and promote, then stood
/// still longer than a lease before acting: it must decide again, not take the lock and promote on what it saw
/// then (the simulator's soak found a daemon frozen mid-loop that re-took the lock and started as primary behind
/// the new timeline on resuming).
#[test]
fn a_plan_older_than_a_lease_is_not_carried_out_but_decided_again() {
    let w = world();
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut n1 = node(&w, "node1");
    let mut n2 = node(&w, "node2").with_hooks(Box::new(HoldBeforeAcquire(open.clone())));
    now_or_never(n1.cycle());
    now_or_never(n2.cycle());
    now_or_never(n2.cycle());
    now_or_never(n1.shutdown());
    let r = {
        let mut stuck = std::pin::pin!(n2.cycle());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            stuck.as_mut().poll(&mut cx).is_pending(),
            "the loop did not stop before acting"
        );
        w.clock.advance_ms(10_000); // longer than the lease (ttl 5 s)
        open.store(true, std::sync::atomic::Ordering::SeqCst);
        match stuck.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => panic!("the loop did not finish"),
        }
    };
    assert!(
        matches!(
            r.executed.first(),
            Some((Action::AcquireLock, Outcome::Refused(why))) if why.contains("older than a lease")
        ),
        "{:?}",
        r.executed
    );
    assert!(!r.promoted());
    assert_eq!(w.dcs.leader(), None, "the stale plan took the lock");
    // The next loop decides on a fresh snapshot, and takes over.
    now_or_never(n2.cycle());
    let r = now_or_never(n2.cycle());
    assert_eq!(
        w.dcs.leader().map(|(n, _)| n).as_deref(),
        Some("node2"),
        "{}",
        r.decision.reason
    );
}
