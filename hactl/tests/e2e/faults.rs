//! Faults on the primary: PostgreSQL SIGKILLed or SIGSTOPped, its daemon SIGKILLed or SIGSTOPped (also at ttl 5 s),
//! the whole machine crashed, and one etcd member of three lost.

use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_on_the_primary_restarts_in_place() {
    let _g = serial();
    let Some((c, w, p)) = cluster_with_writer("pgkill").await else {
        return;
    };
    let t0 = Instant::now();
    c.signal_postmaster(p, "KILL");
    let gap = write_gap(&c, &w, t0).await;
    assert_eq!(
        c.primary().await,
        Some(p),
        "the leader changed after a PostgreSQL crash\n{}",
        c.dump_logs()
    );
    finish(
        &c,
        w,
        p,
        "postgres_sigkill_primary",
        json!({"write_gap_s": gap.as_secs_f64(), "leader_changed": false}),
        0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_postgres_on_the_primary_is_fenced_and_a_replica_takes_over() {
    let _g = serial();
    let Some((c, w, old)) = cluster_with_writer("pgstop").await else {
        return;
    };
    let t0 = Instant::now();
    let pm = c.nodes[old].postmaster_pid().expect("postmaster pid");
    e2e_support::signal(pm, "STOP");
    // The daemon must not hang: it fences its hung PostgreSQL after retry_timeout and releases the lock.
    let bound = Duration::from_secs(FAST.ttl_s + FAST.retry_timeout_s + 2 * FAST.loop_wait_s + 10);
    let found = c.wait_new_primary(old, bound).await;
    e2e_support::signal(pm, "CONT");
    let (newp, took) = found.unwrap_or_else(|| {
        panic!(
            "no new primary within {bound:?} of a hung PostgreSQL\n{}",
            c.dump_logs()
        )
    });
    let rejoin = rejoined(&c, old).await;
    let gap = write_gap(&c, &w, t0).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(), "retry_timeout_s": FAST.retry_timeout_s});
    finish(&c, w, newp, "postgres_sigstop_primary", figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_primary_daemon_fails_over_after_the_ttl_and_the_node_rejoins() {
    sigkill_of_the_primary_daemon(Backend::Etcd).await
}

pub(crate) async fn sigkill_of_the_primary_daemon(backend: Backend) {
    let _g = serial();
    let scenario = format!("daemon_sigkill_primary{}", backend.suffix());
    // On etcd the nodes use Patroni's `etcd:` section (the v2 API), with Debian's vip-manager on three
    // network-namespace hosts: the virtual IP follows the failover, then a switchover back.
    let on_etcd = backend == Backend::Etcd;
    let mut spec = Spec::new(&scenario).on(backend);
    if on_etcd {
        spec = spec.etcd_v2();
    }
    let Some((mut c, w, old)) = cluster_with_writer_as(spec).await else {
        return;
    };
    let vip = if on_etcd { VipSite::start(&c) } else { None };
    if let Some(v) = &vip {
        v.wait_holder(old, Duration::from_secs(15)).await;
    }
    let t0 = Instant::now();
    c.kill_daemon(old);
    let (newp, took) = failed_over(&c, old, Duration::from_secs(FAST.ttl_s * 4)).await;
    let vip_failover = match &vip {
        Some(v) => Some(took + v.wait_holder(newp, Duration::from_secs(5)).await),
        None => None,
    };
    // The orphaned PostgreSQL must not take writes any more (the fencer stopped it at the lease's end).
    let old_still_writable = match c.connect(c.nodes[old].pg_port).await {
        Ok(cl) => cl
            .query_one("SELECT NOT pg_is_in_recovery()", &[])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false),
        Err(_) => false,
    };
    assert!(
        !old_still_writable,
        "two primaries: the old one still accepts writes after the failover"
    );
    let gap = write_gap(&c, &w, t0).await;
    c.start_daemon(old);
    let rejoin = rejoined(&c, old).await;
    let mut figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    let mut last = newp;
    if let Some(v) = &vip {
        figures["vip_after_failover_s"] = vip_failover.unwrap_or_default().as_secs_f64().into();
        // A switchover back to the node whose daemon was killed: the virtual IP follows it too.
        wait_streaming(&c).await;
        let t1 = Instant::now();
        let (code, body) = post(
            &format!("{}/switchover", c.nodes[newp].api()),
            json!({"leader": c.nodes[newp].name, "candidate": c.nodes[old].name}),
        )
        .await;
        assert_eq!(code, 200, "switchover: {body}");
        let (back, _) = failed_over(&c, newp, Duration::from_secs(30)).await;
        assert_eq!(back, old, "the switchover went elsewhere");
        v.wait_holder(old, Duration::from_secs(5)).await;
        figures["vip_after_switchover_s"] = t1.elapsed().as_secs_f64().into();
        figures["dcs"] = "etcd v2 (Patroni's etcd: section)".into();
        last = old;
    }
    finish(&c, w, last, &scenario, figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_the_primary_daemon_fails_over_and_it_demotes_on_resume() {
    sigstop_of_the_primary_daemon(Backend::Etcd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_of_the_primary_daemon_at_ttl_5_fails_over_and_it_demotes_on_resume() {
    let _g = serial();
    frozen_primary_daemon(Spec::new("daemon_sigstop_primary_ttl5").timing(TTL5)).await
}

pub(crate) async fn sigstop_of_the_primary_daemon(backend: Backend) {
    let _g = serial();
    let scenario = format!("daemon_sigstop_primary{}", backend.suffix());
    frozen_primary_daemon(Spec::new(&scenario).on(backend)).await
}

async fn frozen_primary_daemon(spec: Spec) {
    let scenario = spec.test.clone();
    let Some((c, w, old)) = cluster_with_writer_as(spec).await else {
        return;
    };
    let t0 = Instant::now();
    c.signal_daemon(old, "STOP");
    let found = c
        .wait_new_primary(old, Duration::from_secs(c.timing.ttl_s * 4))
        .await;
    c.signal_daemon(old, "CONT");
    let (newp, took) = found
        .unwrap_or_else(|| panic!("no failover while the daemon was frozen\n{}", c.dump_logs()));
    let rejoin = rejoined(&c, old).await;
    assert!(
        c.fencer_running(old),
        "{} has no fencer after it fenced its frozen primary: the next freeze would not be guarded\n{}",
        c.nodes[old].name,
        c.dump_logs()
    );
    let gap = write_gap(&c, &w, t0).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    finish(&c, w, newp, &scenario, figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_machine_crash_fails_over_and_the_node_returns_as_a_replica() {
    let _g = serial();
    primary_machine_crash(Spec::new("primary_machine_crash")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_machine_crash_at_ttl_5_fails_over_and_the_node_returns() {
    let _g = serial();
    primary_machine_crash(Spec::new("primary_machine_crash_ttl5").timing(TTL5)).await
}

async fn primary_machine_crash(spec: Spec) {
    let scenario = spec.test.clone();
    let Some((mut c, w, old)) = cluster_with_writer_as(spec).await else {
        return;
    };
    let t0 = Instant::now();
    c.crash_node(old);
    let (newp, took) = failed_over(&c, old, Duration::from_secs(c.timing.ttl_s * 4)).await;
    let gap = write_gap(&c, &w, t0).await;
    c.start_daemon(old);
    let rejoin = rejoined(&c, old).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64()});
    finish(&c, w, newp, &scenario, figures, FEW_ROWS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_of_one_etcd_member_of_three_changes_nothing() {
    let _g = serial();
    if !prerequisites_or_skip("etcd_member_loss") {
        return;
    }
    let mut c = Cluster::start_with_etcd("etcdloss", 3, FAST, 3).await;
    let p = c.primary().await.expect("a primary");
    let w = Writer::start(c.write_port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t0 = Instant::now();
    if let e2e_support::DcsServer::Etcd(e2e_support::Etcd::Members(m)) = &mut c.dcs {
        m.stop(0);
    }
    // Three ttls with one member down: the lock is renewed through the other two, nobody fails over.
    tokio::time::sleep(Duration::from_secs(3 * FAST.ttl_s)).await;
    assert_eq!(
        c.primary().await,
        Some(p),
        "the leader changed after losing one etcd member\n{}",
        c.dump_logs()
    );
    let gap = write_gap(&c, &w, t0).await;
    assert!(
        gap < Duration::from_secs(1),
        "writes stalled {gap:?} after losing one etcd member"
    );
    finish(
        &c,
        w,
        p,
        "etcd_member_loss",
        json!({"write_gap_s": gap.as_secs_f64(), "leader_changed": false}),
        0,
    )
    .await;
}
