//! A disaster-recovery site: a standby cluster (`standby_cluster` in its bootstrap.dcs) following a primary
//! cluster through that cluster's HAProxy write port, with a writer committing on the primary cluster the whole
//! time. One start of each cluster, several checks: the standby cluster is bootstrapped by copying the source, its
//! leader is a standby leader (never a primary), data flows through a switchover and a machine crash on the primary
//! side (after which a site that had replayed WAL the source's new primary never had is rewound from the source)
//! and a failover on the standby side, and removing `standby_cluster` promotes it (Patroni's promote-cluster).

mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::{finish, prerequisites_on, Backend, Cluster, Spec, Writer, SERIAL};
use serde_json::json;

/// Rows of the writer's table on node `i` (`None`: no answer, or the table is not there yet).
async fn rows_on(c: &Cluster, i: usize) -> Option<i64> {
    let cl = c.connect(c.nodes[i].pg_port).await.ok()?;
    cl.query_one("SELECT count(*) FROM e2e_writes", &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

/// Waits until every running node of `c` has at least `n` rows.
async fn rows_reach(c: &Cluster, n: i64, within: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let mut short = Vec::new();
        for (i, node) in c.nodes.iter().enumerate() {
            if node.child.is_none() {
                continue;
            }
            let have = rows_on(c, i).await.unwrap_or(0);
            if have < n {
                short.push(format!("{}: {have}", node.name));
            }
        }
        if short.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{what}: fewer than {n} rows after {within:?} ({short:?})\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn code(c: &Cluster, i: usize, path: &str) -> u16 {
    c.rest(i, path).await.map_or(0, |(code, _)| code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_cluster_follows_through_failovers_on_both_sides_and_is_promoted() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !prerequisites_on("standby_source", Backend::Etcd) {
        return;
    }
    let mut source = Cluster::start_spec(Spec::new("standby_source")).await;
    let first = source.primary().await.expect("a primary");
    let w = Writer::start(source.write_port).await;
    assert!(w.wait_progress(20, Duration::from_secs(20)).await);

    let mut spec = Spec::new("standby_site").standby_of(source.write_port);
    spec.nodes = 2;
    spec.running = 2;
    let mut site = Cluster::start_spec(spec).await;
    let leader = site.leader().await.expect("a standby leader");

    // The lock holder is a standby leader, never a primary; nobody in the site accepts writes.
    assert_eq!(code(&site, leader, "/standby-leader").await, 200);
    assert_eq!(code(&site, leader, "/primary").await, 503);
    let (_, patroni) = site.rest(leader, "/patroni").await.expect("/patroni");
    assert_eq!(patroni["role"], "standby_leader", "{patroni}");
    assert!(
        site.primary().await.is_none(),
        "a primary in the standby site"
    );
    rows_reach(
        &site,
        w.acked().len() as i64,
        Duration::from_secs(30),
        "the copy",
    )
    .await;

    // A switchover on the primary side: the site follows the new primary through HAProxy, on its new timeline.
    let cand = (first + 1) % 3;
    let r = reqwest::Client::new()
        .post(format!("{}/switchover", source.nodes[first].api()))
        .json(&json!({"leader": source.nodes[first].name, "candidate": source.nodes[cand].name}))
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("switchover");
    assert_eq!(r.status().as_u16(), 200);
    assert!(w.wait_progress(50, Duration::from_secs(30)).await);
    rows_reach(
        &site,
        w.acked().len() as i64,
        Duration::from_secs(30),
        "after the switchover of the source",
    )
    .await;

    // A machine crash on the primary side (daemon, fencer and PostgreSQL SIGKILLed): the source fails over and the
    // site follows the new primary's timeline. The source's replicas are held back first (the primary's WAL senders
    // to them SIGSTOPped) while the site, streaming from the primary through HAProxy, replays on: the new primary
    // never has that WAL, so the site's standby leader is diverged and must be rewound from the source.
    let names: Vec<String> = source.nodes.iter().map(|n| n.name.clone()).collect();
    let held: Vec<i32> = source
        .connect(source.nodes[cand].pg_port)
        .await
        .expect("connect to the source's primary")
        // The source's replicas stream through their member slots; the site's leader (same node names, another
        // cluster) streams without one.
        .query(
            "SELECT active_pid FROM pg_replication_slots WHERE active_pid IS NOT NULL AND slot_name = ANY($1)",
            &[&names],
        )
        .await
        .expect("pg_stat_replication")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !held.is_empty(),
        "the source's replicas stream from its primary"
    );
    for pid in &held {
        e2e_support::signal(*pid, "STOP");
    }
    assert!(w.wait_progress(20, Duration::from_secs(20)).await);
    let on_old_primary = rows_on(&source, cand)
        .await
        .expect("rows on the source's primary");
    rows_reach(
        &site,
        on_old_primary,
        Duration::from_secs(30),
        "the site replaying past the held-back replicas",
    )
    .await;
    let t0 = Instant::now();
    source.crash_node(cand);
    let (newp, took) = e2e_support::scenario::failed_over(
        &source,
        cand,
        Duration::from_secs(source.timing.ttl_s * 4),
    )
    .await;
    let cl = source
        .connect(source.nodes[newp].pg_port)
        .await
        .expect("connect to the source's new primary");
    cl.execute("CREATE TABLE after_source_failover (v int)", &[])
        .await
        .expect("the new primary takes writes");
    let start = Instant::now();
    loop {
        let mut missing = Vec::new();
        for (i, node) in site.nodes.iter().enumerate() {
            let seen = match site.connect(node.pg_port).await {
                Ok(cl) => cl
                    .query_one(
                        "SELECT to_regclass('after_source_failover') IS NOT NULL",
                        &[],
                    )
                    .await
                    .map(|r| r.get::<_, bool>(0))
                    .unwrap_or(false),
                Err(_) => false,
            };
            if !seen {
                missing.push(site.nodes[i].name.clone());
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the site did not follow the source's new primary: {missing:?} lack its first write\n{}",
            site.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rewound = site.dump_logs().contains("from the source cluster");
    assert!(
        rewound,
        "the site replayed WAL the source's new primary never had, yet was not rewound from the source\n{}",
        site.dump_logs()
    );
    let source_failover = serde_json::json!({
        "source_new_primary_s": took.as_secs_f64(),
        "site_follows_s": t0.elapsed().as_secs_f64(),
        "site_rewound_from_source": rewound,
    });
    eprintln!("standby_cluster: source machine crash: {source_failover}");

    // A failover on the standby side: its leader's daemon stops; the other node becomes the standby leader.
    site.stop_daemon(leader).await;
    let start = Instant::now();
    let new_leader = loop {
        match site.leader().await {
            Some(l) if l != leader => break l,
            _ => {}
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no new standby leader\n{}",
            site.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code(&site, new_leader, "/standby-leader").await, 200);
    assert!(w.wait_progress(50, Duration::from_secs(30)).await);
    // What the source's primary holds now (acknowledged rows its crash lost never reach anyone).
    let on_source = rows_on(&source, newp).await.expect("rows on the source");
    rows_reach(
        &site,
        on_source,
        Duration::from_secs(30),
        "after the failover of the site",
    )
    .await;

    // promote-cluster: without `standby_cluster` the site's leader is promoted and takes writes of its own.
    let r = reqwest::Client::new()
        .patch(format!("{}/config", site.nodes[new_leader].api()))
        .json(&json!({"standby_cluster": null}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("PATCH /config");
    assert_eq!(r.status().as_u16(), 200);
    let start = Instant::now();
    while site.primary().await != Some(new_leader) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the site's leader was not promoted\n{}",
            site.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cl = site
        .connect(site.nodes[new_leader].pg_port)
        .await
        .expect("connect");
    cl.execute("CREATE TABLE promoted_site (v int)", &[])
        .await
        .expect("the promoted site takes writes");

    // The source lost nothing through all of it.
    // The source's crash may cost acknowledged rows (it is asynchronous), as the crash scenarios allow.
    let p = source.primary().await.expect("the source's primary");
    finish(&source, w, p, "standby_cluster", source_failover, 100).await;
}
