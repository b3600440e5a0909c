//! What the CLI changes: switchover and failover, edit-config, pause, reload, reinit, restart scheduling, remove,
//! demote-cluster and promote-cluster; a second daemon with a running node's name.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn switchover_with_candidate_moves_the_leader_and_history_records_it() {
    let (c, _pump) = running_cluster(3).await;
    // Declining the confirmation changes nothing.
    let (r, out) = hactl(&c, &["switchover", "--candidate", "node2"], "n\n").await;
    assert!(matches!(r, Err(CliError::Aborted)), "{out}");
    assert!(out.contains("Are you sure you want to switchover cluster batman, demoting current leader node1? [y/N]"), "{out}");
    assert_eq!(c.dcs.leader().unwrap().0, "node1");

    let (r, out) = hactl(&c, &["switchover", "--candidate", "node9", "--force"], "").await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "Member node9 does not exist in cluster batman or is tagged as nofailover"
    );
    assert!(out.is_empty());

    let (r, out) = hactl(&c, &["switchover", "--candidate", "node2"], "y\n").await;
    r.unwrap();
    assert!(
        out.contains("Successfully switched over to \"node2\""),
        "{out}"
    );
    assert_eq!(c.dcs.leader().unwrap().0, "node2");
    assert!(
        out.contains("| node2 ")
            && out
                .lines()
                .any(|l| l.starts_with("| node2 ") && l.contains("Leader")),
        "{out}"
    );

    loops(10).await;
    let (r, out) = hactl(&c, &["history"], "").await;
    r.unwrap();
    assert!(out.lines().nth(1).unwrap().contains("| TL |"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("|  1 |") && l.contains("node2")),
        "{out}"
    );
    let (r, out) = hactl(&c, &["-f", "json", "history"], "").await;
    r.unwrap();
    let h: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(h[0]["TL"], 1);
    assert_eq!(h[0]["New Leader"], "node2");
}

#[tokio::test]
async fn failover_to_a_candidate_and_scheduled_switchover_with_flush() {
    let (c, _pump) = running_cluster(3).await;
    let (r, _) = hactl(&c, &["failover", "--force"], "").await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "Failover could be performed only to a specific candidate"
    );
    let (r, out) = hactl(&c, &["failover", "--candidate", "node3", "--force"], "").await;
    r.unwrap();
    assert!(
        out.contains("Successfully failed over to \"node3\""),
        "{out}"
    );
    assert_eq!(c.dcs.leader().unwrap().0, "node3");

    let (r, out) = hactl(
        &c,
        &[
            "switchover",
            "--candidate",
            "node1",
            "--scheduled",
            "2099-01-01T00:00:00+00:00",
            "--force",
        ],
        "",
    )
    .await;
    r.unwrap();
    assert!(out.contains("Switchover scheduled"), "{out}");
    assert!(
        out.contains(" Switchover scheduled at: 2099-01-01T00:00:00+00:00"),
        "{out}"
    );
    assert!(
        out.contains("from: node3") && out.contains("to: node1"),
        "{out}"
    );
    let (r, out) = hactl(&c, &["flush", "batman", "switchover"], "").await;
    r.unwrap();
    assert_eq!(out.trim(), "Success: scheduled switchover deleted");
    let (_, out) = hactl(&c, &["list"], "").await;
    assert!(!out.contains("Switchover scheduled"), "{out}");
}

#[tokio::test]
async fn edit_config_with_a_restart_parameter_then_restart_pending() {
    let (c, _pump) = running_cluster(2).await;
    let (r, out) = hactl(
        &c,
        &[
            "edit-config",
            "--pg",
            "max_connections=200",
            "--set",
            "maximum_lag_on_failover=2097152",
        ],
        "y\n",
    )
    .await;
    r.unwrap();
    assert!(out.contains("+maximum_lag_on_failover: 2097152"), "{out}");
    assert!(out.contains("+    max_connections: 200"), "{out}");
    assert!(
        out.contains("Apply these changes? [y/N]") && out.contains("Configuration changed"),
        "{out}"
    );
    let (r, out) = hactl(&c, &["show-config"], "").await;
    r.unwrap();
    assert!(
        out.contains("max_connections: 200") && out.contains("ttl: 5"),
        "{out}"
    );

    // The same edit again changes nothing; a timing that breaks the rule is taken as Patroni takes it, with a
    // warning naming the keys and what every node will run with.
    let (r, out) = hactl(
        &c,
        &["edit-config", "--pg", "max_connections=200", "--force"],
        "",
    )
    .await;
    r.unwrap();
    assert_eq!(out.trim(), "Not changed");
    let (r, out) = hactl(&c, &["edit-config", "-s", "loop_wait=10", "--force"], "").await;
    r.unwrap();
    assert!(
        out.contains("Warning: Violated the rule \"loop_wait + 2*retry_timeout <= ttl\"")
            && out.contains("Adjusting loop_wait from 10 to 1"),
        "{out}"
    );

    // The loops apply the parameter: every member now waits for a restart.
    loops(10).await;
    let (_, out) = hactl(&c, &["list"], "").await;
    assert!(out.contains("Pending restart"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains("| * ")).count(),
        2,
        "{out}"
    );

    let (r, out) = hactl(&c, &["restart", "batman", "--pending"], "y\n").await;
    r.unwrap();
    assert!(
        out.contains("Are you sure you want to restart members node1, node2? [y/N]"),
        "{out}"
    );
    assert!(
        out.contains("Success: restart on member node1")
            && out.contains("Success: restart on member node2"),
        "{out}"
    );
    loops(10).await;
    let (_, out) = hactl(&c, &["list"], "").await;
    assert!(!out.contains("Pending restart"), "{out}");
    let (r, out) = hactl(&c, &["restart", "--pending", "--force"], "").await;
    r.unwrap();
    assert_eq!(out.trim(), "No members with a pending restart");
}

#[tokio::test]
async fn pause_and_resume() {
    let (c, _pump) = running_cluster(2).await;
    let (r, out) = hactl(&c, &["pause", "--wait"], "").await;
    r.unwrap();
    assert!(
        out.ends_with("Success: cluster management is paused\n"),
        "{out}"
    );
    let (_, out) = hactl(&c, &["list"], "").await;
    assert!(out.contains(" Maintenance mode: on"), "{out}");
    let (r, _) = hactl(&c, &["pause"], "").await;
    assert_eq!(r.unwrap_err().to_string(), "Cluster is already paused");
    let (r, out) = hactl(&c, &["resume", "--wait"], "").await;
    r.unwrap();
    assert!(
        out.ends_with("Success: cluster management is resumed\n"),
        "{out}"
    );
    let (r, _) = hactl(&c, &["resume"], "").await;
    assert_eq!(r.unwrap_err().to_string(), "Cluster is not paused");
}

#[tokio::test]
async fn reload_reinit_version_and_restart_scheduling() {
    let (c, _pump) = running_cluster(2).await;
    let (r, out) = hactl(&c, &["reload", "--force"], "").await;
    r.unwrap();
    assert!(
        out.contains(
            "Reload request received for member node1 and will be processed within 1 seconds"
        ),
        "{out}"
    );

    let (r, out) = hactl(&c, &["reinit", "batman", "node1", "--force"], "").await;
    assert!(r.is_err());
    assert!(out.contains("Failed: reinitialize for member node1, status code=503, (I am the leader, can not reinitialize)"), "{out}");
    let (r, out) = hactl(&c, &["reinit", "node2", "--force", "--wait"], "").await;
    r.unwrap();
    assert!(
        out.contains("Success: reinitialize for member node2")
            && out.contains("Reinitialize is completed on: node2"),
        "{out}"
    );

    let (r, out) = hactl(&c, &["version"], "").await;
    r.unwrap();
    assert_eq!(out.trim(), format!("hactl version {}", hactl::VERSION));
    let (r, out) = hactl(&c, &["version", "batman", "node1"], "").await;
    r.unwrap();
    assert!(
        out.contains(&format!(
            "node1: Patroni {} PostgreSQL 15.18",
            hactl::VERSION
        )),
        "{out}"
    );

    let (r, out) = hactl(
        &c,
        &[
            "restart",
            "node1",
            "--scheduled",
            "2099-01-01T00:00:00+00:00",
            "--force",
        ],
        "",
    )
    .await;
    r.unwrap();
    assert_eq!(out.trim(), "Success: restart scheduled on member node1");
    let (r, out) = hactl(
        &c,
        &[
            "restart",
            "node1",
            "--scheduled",
            "2099-01-01T00:00:00+00:00",
            "--force",
        ],
        "",
    )
    .await;
    assert!(r.is_err());
    assert_eq!(
        out.trim(),
        "Failed: another restart is already scheduled on member node1"
    );
    // The schedule is in node1's member key within a loop: `list` shows it, `flush` finds it there.
    loops(10).await;
    let (r, out) = hactl(&c, &["list"], "").await;
    r.unwrap();
    let node1 = out.lines().find(|l| l.starts_with("| node1 ")).unwrap();
    assert!(
        out.contains("Scheduled restart") && node1.contains("2099-01-01T00:00:00+00:00"),
        "{out}"
    );
    let (r, out) = hactl(&c, &["flush", "restart", "-r", "replica", "--force"], "").await;
    r.unwrap();
    assert_eq!(out.trim(), "No scheduled restart for member node2");
    let (r, out) = hactl(&c, &["flush", "restart", "--force"], "").await;
    r.unwrap();
    assert!(
        out.contains("Success: flush scheduled restart for member node1")
            && out.contains("No scheduled restart for member node2"),
        "{out}"
    );
    loops(10).await;
    let (r, out) = hactl(&c, &["list"], "").await;
    r.unwrap();
    assert!(!out.contains("Scheduled restart"), "flushed: {out}");

    let (r, _) = hactl(&c, &["restart", "node9", "--force"], "").await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "node9 is not a member of cluster batman"
    );
}

#[tokio::test]
async fn remove_asks_for_the_cluster_and_leader_names() {
    let (c, pump) = running_cluster(2).await;
    let (r, _) = hactl(&c, &["remove", "batman"], "robin\n").await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "Cluster names specified do not match"
    );
    let (r, _) = hactl(&c, &["remove", "batman"], "batman\nyes\n").await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "You did not exactly type \"Yes I am aware\""
    );
    pump.abort();
    let (r, out) = hactl(&c, &["remove", "batman"], "batman\nYes I am aware\nnode1\n").await;
    r.unwrap();
    assert!(
        out.contains("Please specify the leader name to continue"),
        "{out}"
    );
    assert!(c.dcs.leader().is_none() && c.dcs.get_raw("config").is_none());
}

#[tokio::test]
async fn a_second_daemon_with_a_running_nodes_name_refuses_to_start() {
    let (c, _pump) = running_cluster(1).await;
    let dcs: Arc<dyn ha_core::dcs::DcsClient> = Arc::new(c.dcs.client("new-daemon"));
    let err = hactl::daemon::ensure_unique_name(&dcs, "node1")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Can't start; there is already a node named 'node1' running"
    );
    hactl::daemon::ensure_unique_name(&dcs, "node2")
        .await
        .unwrap();
}

#[tokio::test]
async fn demote_cluster_makes_a_standby_cluster_and_promote_cluster_undoes_it() {
    let (c, _pump) = running_cluster(2).await;
    let (r, _) = hactl(&c, &["demote-cluster", "--force"], "").await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "At least --host, --port or --restore-command should be specified"
    );
    let demote = hactl(
        &c,
        &[
            "demote-cluster",
            "--host",
            "dc1",
            "--port",
            "5433",
            "--force",
        ],
        "",
    );
    let (r, out) = tokio::time::timeout(Duration::from_secs(30), demote)
        .await
        .expect("demote-cluster returns");
    r.unwrap();
    assert!(out.ends_with("cluster is successfully demoted\n"), "{out}");
    let (_, out) = hactl(&c, &["list"], "").await;
    assert!(out.contains("Standby Leader"), "{out}");
    let (r, _) = hactl(&c, &["demote-cluster", "--host", "dc1", "--force"], "").await;
    assert_eq!(
        r.unwrap_err().to_string(),
        "Cluster is already in the required state"
    );
    let promote = hactl(&c, &["promote-cluster", "--force"], "");
    let (r, out) = tokio::time::timeout(Duration::from_secs(30), promote)
        .await
        .expect("promote-cluster returns");
    r.unwrap();
    assert!(out.ends_with("cluster is successfully promoted\n"), "{out}");
}
