//! ha-core's real driver over real PostgreSQL: two daemons (each `Driver::run` in its own task), the in-memory
//! DCS, real time. The cluster bootstraps, the replica joins, the primary's machine "dies" (daemon task aborted,
//! postmaster SIGKILLed), the replica takes over, and the old primary's daemon comes back and rejoins.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{sql, World};
use ha_core::decision::Action;
use ha_core::decision::NodeIdentity;
use ha_core::driver::{CycleReport, Driver, DriverSettings, Hooks, Outcome};
use ha_core::mock_dcs::{MemoryDcs, MemoryDcsClient};
use ha_core::model::{DynamicPostgresql, GlobalConfig};
use ha_core::time::SystemClock;
use pg_control::{PgCtl, PgSettings};
use tokio::sync::{oneshot, watch};

/// Prints what each daemon did, so a failure shows the story.
struct PrintActions(String);
#[async_trait::async_trait]
impl Hooks for PrintActions {
    async fn after_action(&self, action: &Action, outcome: &Outcome) {
        if !matches!(action, Action::RenewLock | Action::WriteStatus { .. }) {
            eprintln!("{}: {action:?} -> {outcome:?}", self.0);
        }
    }
}

/// A running daemon: its loop in a task, its reports, and how to stop it.
struct Daemon {
    reports: watch::Receiver<Option<CycleReport>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Driver<MemoryDcsClient, PgCtl>>,
}

async fn spawn(
    dcs: &MemoryDcs,
    clock: &Arc<SystemClock>,
    s: PgSettings,
    cfg: &GlobalConfig,
) -> Daemon {
    let pg = PgCtl::new(s).await.expect("settings");
    let identity = NodeIdentity {
        name: pg.settings().name.clone(),
        conn_url: pg.settings().conn_url(),
        api_url: "http://127.0.0.1:1/patroni".into(),
        ..Default::default()
    };
    let name = identity.name.clone();
    let d = Driver::new(
        dcs.client(&identity.name),
        pg,
        clock.clone(),
        DriverSettings {
            identity,
            bootstrap_config: cfg.clone(),
            ..Default::default()
        },
    )
    .with_hooks(Box::new(PrintActions(name)));
    let reports = d.subscribe();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(d.run(async {
        let _ = rx.await;
    }));
    Daemon {
        reports,
        stop: Some(tx),
        task,
    }
}

impl Daemon {
    fn last<T>(&self, f: impl FnOnce(&CycleReport) -> T) -> Option<T> {
        self.reports.borrow().as_ref().map(f)
    }
    fn is_primary(&self) -> bool {
        self.last(|r| r.pg.is_primary()).unwrap_or(false)
    }
    fn is_streaming_replica(&self) -> bool {
        self.last(|r| r.pg.is_replica() && r.pg.streaming)
            .unwrap_or(false)
    }
    /// Graceful shutdown: the driver stops PostgreSQL and leaves the cluster.
    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(60), self.task).await;
    }
}

async fn until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_fails_over_and_rejoins_the_old_primary() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let clock = Arc::new(SystemClock::new());
    let dcs = MemoryDcs::new(clock.clone());
    let cfg = GlobalConfig {
        ttl: Some(6.0),
        loop_wait: Some(1.0),
        retry_timeout: Some(2.0),
        postgresql: Some(DynamicPostgresql {
            use_pg_rewind: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s1 = w.settings("n1");
    let s2 = w.settings("n2");
    // Observers of each node's PostgreSQL, for the test's own SQL.
    let q1 = PgCtl::new(s1.clone()).await.unwrap();
    let q2 = PgCtl::new(s2.clone()).await.unwrap();

    // n1 alone bootstraps; n2 joins once there is a leader.
    let d1 = spawn(&dcs, &clock, s1.clone(), &cfg).await;
    until(Duration::from_secs(30), "n1 to bootstrap", || {
        d1.is_primary()
    })
    .await;
    let d2 = spawn(&dcs, &clock, s2, &cfg).await;
    until(Duration::from_secs(40), "n2 to clone and stream", || {
        d2.is_streaming_replica()
    })
    .await;
    sql(
        &q1,
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('before the crash')",
    )
    .await;
    common::wait_for(Duration::from_secs(20), "the row on n2", || async {
        sql(&q2, "SELECT count(*) FROM pg_class WHERE relname = 't'").await == ["1"]
    })
    .await;

    // n1's machine dies: its daemon stops mid-flight, its postmaster is killed.
    d1.task.abort();
    common::signal(common::postmaster_pid(&s1.data_dir).unwrap(), libc::SIGKILL);
    let crashed_at = Instant::now();
    until(Duration::from_secs(30), "n2 to take over", || {
        d2.is_primary()
    })
    .await;
    let took = crashed_at.elapsed();
    eprintln!("n2 promoted {took:?} after n1 died");
    assert!(
        took >= Duration::from_secs(2),
        "not before n1's lease ran out"
    );
    assert_eq!(dcs.leader().map(|l| l.0).as_deref(), Some("n2"));
    sql(&q2, "INSERT INTO t VALUES ('after the failover')").await;

    // n1's daemon comes back (same data directory) and rejoins as a replica of n2.
    let d1 = spawn(&dcs, &clock, s1, &cfg).await;
    until(
        Duration::from_secs(60),
        "n1 to rejoin as n2's replica",
        || d2.is_primary() && d1.is_streaming_replica(),
    )
    .await;
    common::wait_for(Duration::from_secs(20), "n2's rows on n1", || async {
        sql(&q1, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await
            == ["after the failover,before the crash"]
    })
    .await;
    d1.shutdown().await;
    d2.shutdown().await;
    assert!(!q1.observe().await.is_alive() && !q2.observe().await.is_alive());
}
