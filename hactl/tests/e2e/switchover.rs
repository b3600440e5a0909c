//! Hand-overs the operator asks for: a switchover to a named candidate (five rounds, with slots), a graceful stop
//! of the primary's daemon, and the CLI driving a real cluster (list, switchover, history, pause, resume).

use std::time::{Duration, Instant};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_to_a_named_candidate_loses_no_acknowledged_write() {
    switchover_to_a_named_candidate(Backend::Etcd).await
}

pub(crate) async fn switchover_to_a_named_candidate(backend: Backend) {
    let _g = serial();
    let scenario = format!("switchover{}", backend.suffix());
    // On etcd the same switchovers also carry slots: a permanent logical slot whose consumer must miss no row,
    // a permanent physical slot, and a backup tool's slot hactl must never drop.
    let with_slots = backend == Backend::Etcd;
    let mut spec = Spec::new(&scenario).on(backend);
    if with_slots {
        spec = spec.slots();
    }
    let Some((c, w, first)) = cluster_with_writer_as(spec).await else {
        return;
    };
    let mut decoded = std::collections::BTreeSet::new();
    if with_slots {
        slots::create_foreign_slot(&c, first, "barman").await;
        // Every replica has copied the logical slot (a restart each) before the first switchover.
        slots::wait_slots_everywhere(&c, &["keep_me", "cdc"], Duration::from_secs(60)).await;
        slots::settle_logical(&c, first, "cdc", &mut decoded).await;
        wait_streaming(&c).await;
    }
    // Several switchovers around the ring, so the figures are medians (the target is a median).
    let rounds = if backend == Backend::Etcd { 5 } else { 3 };
    let (mut gaps, mut tooks, mut rejoins) = (Vec::new(), Vec::new(), Vec::new());
    let mut old = first;
    for _ in 0..rounds {
        let cand = (old + 1) % 3;
        let t0 = Instant::now();
        let (code, body) = post(
            &format!("{}/switchover", c.nodes[old].api()),
            json!({"leader": c.nodes[old].name, "candidate": c.nodes[cand].name}),
        )
        .await;
        assert_eq!(
            code,
            200,
            "switchover answered {code}: {body}\n{}",
            c.dump_logs()
        );
        let (newp, took) = failed_over(&c, old, Duration::from_secs(60)).await;
        assert_eq!(
            newp, cand,
            "the switchover went to {} instead of {}",
            c.nodes[newp].name, c.nodes[cand].name
        );
        rejoins.push(rejoined(&c, old).await);
        gaps.push(write_gap(&c, &w, t0).await);
        tooks.push(took);
        // The next candidate must be streaming from the new primary before it is asked to take over.
        wait_streaming(&c).await;
        if with_slots {
            // The consumer moves to the new primary: its copy of the slot goes on where the old one was.
            decoded.extend(slots::consume(&c, cand, "cdc").await);
        }
        old = cand;
    }
    if with_slots {
        let acked: Vec<i64> = w.acked().iter().map(|(id, _)| *id).collect();
        let missed = slots::gaps(&acked, &decoded);
        assert!(
            decoded.len() > 100 && missed.is_empty(),
            "the logical slot's consumer saw {} rows and missed {} acknowledged ones: {:?}",
            decoded.len(),
            missed.len(),
            &missed[..missed.len().min(10)]
        );
        let on_first = slots::slots_on(&c, first).await.unwrap_or_default();
        assert!(
            on_first.contains("barman"),
            "the backup tool's slot was dropped on {}: {on_first:?}",
            c.nodes[first].name
        );
        slots::wait_slots_everywhere(&c, &["keep_me", "cdc"], Duration::from_secs(10)).await;
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64()
    };
    let max_gap = gaps.iter().max().copied().unwrap_or_default().as_secs_f64();
    let figures = json!({"switchovers": rounds, "time_to_new_primary_s": median(&mut tooks), "write_gap_s": median(&mut gaps), "write_gap_max_s": max_gap, "rejoin_s": median(&mut rejoins)});
    finish(&c, w, old, &scenario, figures, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_of_the_primary_daemon_hands_over_without_waiting_for_the_ttl() {
    let _g = serial();
    let Some((mut c, w, old)) = cluster_with_writer("stop").await else {
        return;
    };
    let t0 = Instant::now();
    c.stop_daemon(old).await;
    assert!(
        c.nodes[old]
            .postmaster_pid()
            .map_or(true, |pid| !std::path::Path::new(&format!("/proc/{pid}"))
                .exists()),
        "PostgreSQL still runs after the daemon stopped"
    );
    let (newp, _) = failed_over(&c, old, Duration::from_secs(30)).await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(FAST.ttl_s),
        "the handover took {took:?}, as long as waiting for the ttl"
    );
    let gap = write_gap(&c, &w, t0).await;
    c.start_daemon(old);
    let rejoin = rejoined(&c, old).await;
    let takeover = takes_over_a_running_cluster_it_has_no_state_for(&mut c, newp).await;
    let figures = json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64(), "rejoin_s": rejoin.as_secs_f64(), "takeover_s": takeover.as_secs_f64()});
    finish(&c, w, newp, "graceful_stop_primary", figures, 0).await;
}

/// The migration path of `docs/pacemaker.md`: PostgreSQL runs as a primary and streaming replicas that hactl knows
/// nothing of (every daemon and fencer gone, the cluster's keys deleted from the DCS, as before the first hactl
/// start on a pair another HA manager built). Started on the primary first, then on the others, hactl takes the
/// cluster over as it is: the primary keeps running without a restart and publishes its own system identifier;
/// the replicas follow it with their data (no re-clone). Returns how long the primary took to lead.
async fn takes_over_a_running_cluster_it_has_no_state_for(
    c: &mut Cluster,
    primary: usize,
) -> Duration {
    let postmasters: Vec<Option<i32>> = c.nodes.iter().map(|n| n.postmaster_pid()).collect();
    for i in 0..c.nodes.len() {
        c.kill_daemon_and_fencer(i);
    }
    let dcs = dcs_etcd::EtcdDcs::ctl(dcs_etcd::EtcdSettings::new(
        [c.dcs_endpoint()],
        c.scope.clone(),
        "",
    ))
    .expect("etcd client");
    use ha_core::dcs::DcsClient;
    dcs.delete_cluster()
        .await
        .expect("the cluster's keys deleted");
    assert!(dcs.load().await.unwrap().members.is_empty());
    let sysid = |port: u16| async move {
        let db = e2e_support::Endpoint::Tcp(port)
            .connect()
            .await
            .expect("PostgreSQL still runs");
        let row = db
            .query_one(
                "SELECT system_identifier::text FROM pg_control_system()",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, String>(0)
    };
    let system_id = sysid(c.nodes[primary].pg_port).await;

    let t0 = Instant::now();
    c.start_daemon(primary);
    while c.primary().await != Some(primary) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "hactl did not take the running primary over\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t0.elapsed();
    for i in (0..c.nodes.len()).filter(|i| *i != primary) {
        c.start_daemon(i);
    }
    for i in (0..c.nodes.len()).filter(|i| *i != primary) {
        rejoined(c, i).await;
        assert_eq!(
            sysid(c.nodes[i].pg_port).await,
            system_id,
            "{} was re-made",
            c.nodes[i].name
        );
    }
    assert_eq!(
        c.nodes[primary].postmaster_pid(),
        postmasters[primary],
        "the primary was restarted\n{}",
        c.dump_logs()
    );
    let cluster = dcs.load().await.unwrap();
    assert_eq!(
        cluster.initialize.as_deref(),
        Some(system_id.as_str()),
        "the cluster's system identifier is the running primary's"
    );
    // `postgresql.proxy_address` (HAProxy's write port in these configs) is published as Patroni's `proxy_url`.
    for m in &cluster.members {
        assert_eq!(
            m.data.extra.get("proxy_url").and_then(|v| v.as_str()),
            Some(format!("postgres://127.0.0.1:{}/postgres", c.write_port).as_str()),
            "{}'s member key",
            m.name
        );
    }
    took
}

/// `hactl -f json list` on node `i`'s config: (member, role, state) of each member.
fn members(c: &Cluster, i: usize) -> Vec<(String, String, String)> {
    let (ok, out) = c.ctl(i, &["-f", "json", "list"]);
    assert!(ok, "hactl list: {out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array()
        .expect("an array")
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("Member"), s("Role"), s("State"))
        })
        .collect()
}

async fn every_node_reports_pause(c: &Cluster, paused: bool) {
    for i in 0..c.nodes.len() {
        let seen = c.rest(i, "/patroni").await.map(|(_, b)| b["pause"] == true);
        assert_eq!(
            seen,
            Some(paused),
            "{}: pause is not {paused}",
            c.nodes[i].name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_drives_a_real_cluster_list_switchover_history_pause_and_resume() {
    let _g = serial();
    let Some((c, w, old)) = cluster_with_writer("cli").await else {
        return;
    };
    let m = members(&c, 0);
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(
        m.iter()
            .filter(|(_, role, _)| role == "Leader")
            .map(|(n, _, _)| n.as_str())
            .collect::<Vec<_>>(),
        [c.nodes[old].name.as_str()]
    );
    let (ok, table) = c.ctl(0, &["list"]);
    assert!(
        ok && table.contains(&format!("Cluster: {}", c.scope)),
        "{table}"
    );

    // A switchover to a named candidate, confirmed with --force.
    let cand = (old + 2) % 3;
    let (ok, out) = c.ctl(
        1,
        &[
            "switchover",
            &c.scope,
            "--leader",
            &c.nodes[old].name,
            "--candidate",
            &c.nodes[cand].name,
            "--force",
        ],
    );
    assert!(ok, "hactl switchover: {out}\n{}", c.dump_logs());
    failed_over(&c, old, Duration::from_secs(60)).await;
    rejoined(&c, old).await;
    let leaders: Vec<String> = members(&c, 2)
        .into_iter()
        .filter(|(_, role, _)| role == "Leader")
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(leaders, [c.nodes[cand].name.clone()]);
    // The history records the new timeline.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, hist) = c.ctl(0, &["-f", "json", "history"]);
        assert!(ok, "hactl history: {hist}");
        let rows: Value = serde_json::from_str(&hist).unwrap_or(Value::Null);
        if rows.as_array().map_or(0, |r| r.len()) >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no history after the switchover: {hist}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Maintenance mode: every node reports it, `list` says so, and resume ends it.
    let (ok, out) = c.ctl(0, &["pause", &c.scope, "--wait"]);
    assert!(ok, "hactl pause: {out}");
    every_node_reports_pause(&c, true).await;
    let (_, table) = c.ctl(0, &["list"]);
    assert!(table.contains("Maintenance mode: on"), "{table}");
    let (ok, out) = c.ctl(0, &["resume", &c.scope, "--wait"]);
    assert!(ok, "hactl resume: {out}");
    every_node_reports_pause(&c, false).await;
    finish(&c, w, cand, "cli_on_a_real_cluster", json!({}), 0).await;
}
