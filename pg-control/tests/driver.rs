//! ha-core's real driver over real PostgreSQL: two nodes, the in-memory DCS, real time. The cluster bootstraps,
//! the replica joins, the primary's machine "dies" (daemon gone, postmaster SIGKILLed), the replica takes over,
//! and the old primary's daemon comes back and rejoins through pg_rewind.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{sql, World};
use ha_core::decision::NodeIdentity;
use ha_core::driver::{Driver, DriverSettings};
use ha_core::mock_dcs::{MemoryDcs, MemoryDcsClient};
use ha_core::model::{DynamicPostgresql, GlobalConfig};
use ha_core::pg::{PgObservation, StopMode};
use ha_core::time::SystemClock;
use pg_control::PgCtl;

/// A daemon: the driver and what its last loop saw of PostgreSQL.
struct Node {
    d: Driver<MemoryDcsClient, PgCtl>,
    last: Option<PgObservation>,
}

impl Node {
    fn pg(&self) -> &PgCtl {
        self.d.pg()
    }
}

fn driver(dcs: &MemoryDcs, clock: &Arc<SystemClock>, pg: PgCtl, cfg: &GlobalConfig) -> Node {
    let identity = NodeIdentity {
        name: pg.settings().name.clone(),
        conn_url: pg.settings().conn_url(),
        api_url: "http://127.0.0.1:1/patroni".into(),
        ..Default::default()
    };
    let d = Driver::new(
        dcs.client(&identity.name),
        pg,
        clock.clone(),
        DriverSettings {
            identity,
            bootstrap_config: cfg.clone(),
            ..Default::default()
        },
    );
    Node { d, last: None }
}

/// One loop of each running daemon; the primary's daemon also keeps the members' slots (the daemon's job).
async fn cycle(nodes: &mut [Option<Node>]) {
    let names: Vec<String> = nodes
        .iter()
        .flatten()
        .map(|n| n.d.identity().name.clone())
        .collect();
    for n in nodes.iter_mut().flatten() {
        let report = n.d.cycle().await;
        if report.pg.is_primary() {
            let _ = n.pg().ensure_slots(&names).await;
        }
        n.last = Some(report.pg);
    }
}

async fn until(
    nodes: &mut [Option<Node>],
    limit: Duration,
    what: &str,
    mut ok: impl FnMut(&[Option<Node>]) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        cycle(nodes).await;
        if ok(nodes) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn is_primary(n: &Option<Node>) -> bool {
    n.as_ref()
        .and_then(|n| n.last.as_ref())
        .is_some_and(|pg| pg.is_primary())
}
fn is_streaming_replica(n: &Option<Node>) -> bool {
    n.as_ref()
        .and_then(|n| n.last.as_ref())
        .is_some_and(|pg| pg.is_replica() && pg.streaming)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_fails_over_and_rejoins_the_old_primary_with_pg_rewind() {
    let Some(bin) = common::pg_bin() else { return };
    let mut w = World::new(bin);
    let clock = Arc::new(SystemClock::new());
    let dcs = MemoryDcs::new(clock.clone());
    let cfg = GlobalConfig {
        ttl: Some(4.0),
        loop_wait: Some(1.0),
        retry_timeout: Some(1.5),
        postgresql: Some(DynamicPostgresql {
            use_pg_rewind: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let n1 = w.node("n1").await;
    let n2 = w.node("n2").await;
    let n1_settings = n1.settings().clone();
    let mut nodes = vec![Some(driver(&dcs, &clock, n1, &cfg))];
    // n1 alone bootstraps; n2 joins once there is a leader.
    until(
        &mut nodes,
        Duration::from_secs(30),
        "n1 to bootstrap",
        |n| is_primary(&n[0]),
    )
    .await;
    nodes.push(Some(driver(&dcs, &clock, n2, &cfg)));
    until(
        &mut nodes,
        Duration::from_secs(40),
        "n2 to clone and stream",
        |n| is_primary(&n[0]) && is_streaming_replica(&n[1]),
    )
    .await;
    let p1 = nodes[0].as_ref().unwrap().pg();
    sql(
        p1,
        "CREATE TABLE t(v text); INSERT INTO t VALUES ('before the crash')",
    )
    .await;
    let p2 = nodes[1].as_ref().unwrap().pg();
    common::wait_for(Duration::from_secs(20), "the row on n2", || async {
        sql(p2, "SELECT count(*) FROM pg_class WHERE relname = 't'").await == ["1"]
    })
    .await;

    // n1's machine dies: no more loops from its daemon, its postmaster is killed.
    let dead = nodes[0].take().unwrap();
    common::signal(
        common::postmaster_pid(&n1_settings.data_dir).unwrap(),
        libc::SIGKILL,
    );
    let crashed_at = Instant::now();
    until(
        &mut nodes,
        Duration::from_secs(30),
        "n2 to take over",
        |n| is_primary(&n[1]),
    )
    .await;
    let took = crashed_at.elapsed();
    eprintln!("n2 promoted {took:?} after n1 died");
    assert_eq!(dcs.leader().map(|l| l.0).as_deref(), Some("n2"));
    let p2 = nodes[1].as_ref().unwrap().pg();
    sql(p2, "INSERT INTO t VALUES ('after the failover')").await;

    // n1's daemon comes back (same data directory) and rejoins as a replica of n2.
    drop(dead);
    let n1 = PgCtl::new(n1_settings).await.unwrap();
    nodes[0] = Some(driver(&dcs, &clock, n1, &cfg));
    until(
        &mut nodes,
        Duration::from_secs(60),
        "n1 to rejoin as n2's replica",
        |n| is_primary(&n[1]) && is_streaming_replica(&n[0]),
    )
    .await;
    let p1 = nodes[0].as_ref().unwrap().pg();
    common::wait_for(Duration::from_secs(20), "n2's rows on n1", || async {
        sql(p1, "SELECT string_agg(v, ',' ORDER BY v) FROM t").await
            == ["after the failover,before the crash"]
    })
    .await;
    for n in nodes.iter().flatten() {
        n.pg().stop(StopMode::Fast).await.unwrap();
    }
}
