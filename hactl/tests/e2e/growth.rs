//! The cluster grows and changes: a new replica joins with the data and the cluster-wide parameters (and HAProxy,
//! its config rendered by `hactl template`, routes reads to it; a node that leaves is dropped from it), and
//! edit-config reaches every node (a restart applying the pending parameters).

use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_joins_with_the_data_and_the_cluster_wide_parameters_and_serves_reads() {
    let _g = serial();
    if !prerequisites_or_skip("new_replica") {
        return;
    }
    let mut c = Cluster::start_spec(
        Spec {
            running: 2,
            ..Spec::new("join")
        }
        .templated_haproxy(),
    )
    .await;
    let p = c.primary().await.expect("a primary");
    let cfg = c.haproxy_cfg();
    let rendered = || std::fs::read_to_string(&cfg).unwrap_or_default();
    let server3 = format!("server {} ", c.nodes[2].name);
    let node3_line = |cfg: &str| cfg.matches(&server3).count();
    assert_eq!(
        node3_line(&rendered()),
        0,
        "HAProxy routes to a node that never started:\n{}",
        rendered()
    );
    let w = Writer::start(c.write_port).await;
    assert!(
        w.wait_progress(50, Duration::from_secs(30)).await,
        "no writes before the join"
    );
    let t0 = Instant::now();
    c.start_daemon(2);
    let joined = rejoined(&c, 2).await;
    // Cloned with the data written before, and streaming what is written since.
    let acked = w.acked();
    let newest = acked.last().map(|(id, _)| *id).expect("writes");
    let replica = c
        .connect(c.nodes[2].pg_port)
        .await
        .expect("connect to the new replica");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = replica
            .query_one("SELECT count(*) FROM e2e_writes WHERE id <= $1", &[&newest])
            .await
            .expect("count")
            .get(0);
        if n == newest {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new replica has {n} of the first {newest} rows after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The cluster-wide parameters from the DCS (bootstrap.dcs) were in its configuration before its first start:
    // shared_buffers takes effect only at a start, and nothing restarted it.
    let buffers: String = replica
        .query_one("SHOW shared_buffers", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(
        buffers, "16MB",
        "the new replica started without the cluster-wide parameters"
    );
    let deadline = Instant::now() + Duration::from_secs(2 * FAST.loop_wait_s + 10);
    loop {
        let keep: String = replica
            .query_one("SHOW wal_keep_size", &[])
            .await
            .expect("SHOW")
            .get(0);
        if keep == "256MB" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new replica still has wal_keep_size {keep}, not the cluster-wide 256MB"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // HAProxy's config, rendered from the member keys, has it in both listens; and the replica frontend reaches
    // it within one loop_wait of its /replica answering 200 (the render runs every loop_wait, HAProxy's check
    // every 250 ms while a server is down).
    let streaming = Instant::now();
    while node3_line(&rendered()) != 2 {
        assert!(
            streaming.elapsed() < Duration::from_secs(FAST.loop_wait_s) + Duration::from_millis(500),
            "the new node is not in the rendered HAProxy config one loop_wait after it streams:\n{}",
            rendered()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = Instant::now();
    while c.rest(2, "/replica").await.map(|(code, _)| code) != Some(200) {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "the new replica's /replica never answered 200"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = Instant::now();
    let deadline = ready + Duration::from_secs(30);
    let mut reached = false;
    while !reached && Instant::now() < deadline {
        if let Ok(cl) = c.connect(c.read_port).await {
            if let Ok(row) = cl.query_one("SELECT inet_server_port()", &[]).await {
                reached = row.get::<_, Option<i32>>(0) == Some(i32::from(c.nodes[2].pg_port));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reached,
        "HAProxy's replica frontend never reached the new replica\n{}",
        c.dump_logs()
    );
    let routed = ready.elapsed();
    assert!(
        routed <= Duration::from_secs(FAST.loop_wait_s),
        "reads reached the new replica {routed:?} after it was ready, over one loop_wait"
    );
    let gap = w.longest_gap_since(t0);
    // It leaves (a clean stop deletes its member key): the next render drops it and HAProxy reloads without it.
    c.stop_daemon(2).await;
    let left = Instant::now();
    while node3_line(&rendered()) != 0 {
        assert!(
            left.elapsed() < Duration::from_secs(2 * FAST.loop_wait_s + 5),
            "the stopped node is still in the rendered HAProxy config:\n{}",
            rendered()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dropped = left.elapsed();
    finish(
        &c,
        w,
        p,
        "new_replica_joins",
        json!({
            "join_s": joined.as_secs_f64(),
            "write_gap_s": gap.as_secs_f64(),
            "haproxy_reads_after_ready_s": routed.as_secs_f64(),
            "haproxy_dropped_after_stop_s": dropped.as_secs_f64(),
        }),
        0,
    )
    .await;
}

/// Polls until some node answers 200 on `/primary`.
pub(crate) async fn any_primary(c: &Cluster, within: Duration) -> Option<(usize, Duration)> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(p) = c.primary().await {
            return Some((p, start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Waits until every node's `SHOW name` is `want`; how long it took.
async fn setting_everywhere(c: &Cluster, name: &str, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let mut pending: Vec<usize> = (0..c.nodes.len()).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            let v = match c.nodes[i].socket().connect().await {
                Ok(cl) => cl
                    .query_one(&format!("SHOW {name}"), &[])
                    .await
                    .map(|r| r.get::<_, String>(0))
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            if v != want {
                still.push(i);
            }
        }
        pending = still;
        assert!(
            pending.is_empty() || start.elapsed() < within,
            "{name} is not {want} on {:?} after {within:?}\n{}",
            pending
                .iter()
                .map(|i| &c.nodes[*i].name)
                .collect::<Vec<_>>(),
            c.dump_logs()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    start.elapsed()
}

/// Node `i`'s `pending_restart` flag as its REST API reports it.
async fn pending_restart(c: &Cluster, i: usize) -> bool {
    c.rest(i, "/patroni")
        .await
        .map_or(false, |(_, b)| b["pending_restart"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_config_reaches_every_node_and_restart_applies_the_pending_parameters() {
    let _g = serial();
    let Some((c, w, p)) = cluster_with_writer("editconfig").await else {
        return;
    };
    // A reloadable parameter: every node has it after a reload, without a restart.
    let (ok, out) = c.ctl(0, &["edit-config", "--pg", "work_mem=8MB", "--force"]);
    assert!(ok, "edit-config work_mem: {out}");
    let reload_bound = Duration::from_secs(2 * FAST.loop_wait_s + 10);
    let reloaded = setting_everywhere(&c, "work_mem", "8MB", reload_bound).await;
    // A restart-only parameter: every node shows a pending restart and keeps the old value…
    let (ok, out) = c.ctl(
        0,
        &["edit-config", "--pg", "max_connections=150", "--force"],
    );
    assert!(ok, "edit-config max_connections: {out}");
    let deadline = Instant::now() + reload_bound;
    for i in 0..c.nodes.len() {
        while !pending_restart(&c, i).await {
            assert!(
                Instant::now() < deadline,
                "{} shows no pending restart after max_connections changed\n{}",
                c.nodes[i].name,
                c.dump_logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    setting_everywhere(&c, "max_connections", "100", Duration::ZERO).await;
    let (ok, list) = c.ctl(0, &["list"]);
    assert!(
        ok && list.contains("Pending restart"),
        "`hactl list` does not show the pending restart:\n{list}"
    );
    // …until `hactl restart --pending` applies it node by node.
    let t0 = Instant::now();
    let (ok, out) = c.ctl(0, &["restart", &c.scope, "--pending", "--force"]);
    assert!(ok, "restart --pending: {out}\n{}", c.dump_logs());
    assert_eq!(
        out.matches("Success: restart on member").count(),
        3,
        "{out}"
    );
    setting_everywhere(&c, "max_connections", "150", Duration::from_secs(60)).await;
    let applied = t0.elapsed();
    for i in 0..c.nodes.len() {
        assert!(
            !pending_restart(&c, i).await,
            "{} still shows a pending restart",
            c.nodes[i].name
        );
    }
    let gap = write_gap(&c, &w, t0).await;
    assert_eq!(
        c.primary().await,
        Some(p),
        "a restart of the members moved the leader\n{}",
        c.dump_logs()
    );
    let figures = json!({"reload_reached_all_s": reloaded.as_secs_f64(), "restart_pending_applied_s": applied.as_secs_f64(), "write_gap_s": gap.as_secs_f64()});
    finish(&c, w, p, "edit_config", figures, 0).await;
}
