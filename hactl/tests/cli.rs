//! The patronictl-like commands against a running (simulated) cluster: real REST servers on local sockets, ha-core's
//! driver on the in-memory DCS and simulated PostgreSQL, loops running in the background.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::TestCluster;
use ha_core::mock_dcs::MemoryDcs;
use hactl::cli::ctl::{http_client, CliError, Connector, Ctl};
use hactl::cli::Cli;
use hactl::config::BasicAuth;

fn auth() -> Option<BasicAuth> {
    Some(BasicAuth {
        username: "admin".into(),
        password: "secret".into(),
    })
}

/// Runs `hactl <args>` with `input` as the answers typed; returns the result and what was printed.
async fn hactl(c: &TestCluster, args: &[&str], input: &str) -> (Result<(), CliError>, String) {
    hactl_for(c, args, input, None).await
}

/// `hactl`, interrupted after `limit` when one is given (`-w` watches until interrupted). Clusters other than
/// `batman` are reachable by name, with no keys in their DCS.
async fn hactl_for(
    c: &TestCluster,
    args: &[&str],
    input: &str,
    limit: Option<Duration>,
) -> (Result<(), CliError>, String) {
    let argv: Vec<&str> = std::iter::once("hactl")
        .chain(args.iter().copied())
        .collect();
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut out = Vec::new();
    let mut inp = std::io::Cursor::new(input.as_bytes().to_vec());
    let elsewhere = MemoryDcs::new(Arc::new(c.clock.clone()));
    let connect: Connector = Arc::new(move |_name: &str| {
        Ok(Arc::new(elsewhere.client("ctl")) as Arc<dyn ha_core::dcs::Dcs>)
    });
    let mut ctl = Ctl {
        scope: "batman".into(),
        dcs: Arc::new(c.dcs.client("ctl")),
        http: http_client(),
        auth: auth(),
        format: cli.format,
        out: &mut out,
        input: &mut inp,
        editor: None,
        poll_interval: Duration::from_millis(5),
        connect: Some(connect),
        group: None,
        terminal: false,
    };
    let r = match limit {
        None => ctl.execute(&cli.command).await,
        Some(l) => tokio::time::timeout(l, ctl.execute(&cli.command))
            .await
            .unwrap_or(Ok(())),
    };
    drop(ctl);
    (r, String::from_utf8(out).unwrap())
}

async fn running_cluster(n: usize) -> (TestCluster, tokio::task::JoinHandle<()>) {
    let c = TestCluster::served(n, auth()).await;
    c.settle();
    let pump = c.pump();
    (c, pump)
}

/// Lets the loops run `n` more times (the pump advances one virtual second per loop).
async fn loops(n: u64) {
    tokio::time::sleep(Duration::from_millis(3 * n)).await;
}

#[tokio::test]
async fn list_and_topology_print_patronictls_table_and_json() {
    let (c, _pump) = running_cluster(3).await;
    let (r, out) = hactl(&c, &["list"], "").await;
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("+ Cluster: batman (73"), "{out}");
    assert_eq!(
        lines[1]
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>(),
        [
            "Member",
            "Host",
            "Role",
            "State",
            "TL",
            "Receive LSN",
            "Lag",
            "Replay LSN",
            "Lag"
        ]
    );
    assert!(
        lines[3].starts_with("| node1 ")
            && lines[3].contains("| Leader ")
            && lines[3].contains("| running "),
        "{out}"
    );
    assert!(
        lines[4].starts_with("| node2 ")
            && lines[4].contains("| Replica ")
            && lines[4].contains("| streaming "),
        "{out}"
    );
    assert!(
        lines[4].contains("127.0.0.1:5433"),
        "non-default ports are shown: {out}"
    );
    assert_eq!(
        lines[0].len(),
        lines[2].len(),
        "the title sits in the top border"
    );

    // patronictl's dsn: the leader by default, a member by name, a clear error for nobody.
    let (r, out) = hactl(&c, &["dsn"], "").await;
    r.unwrap();
    assert_eq!(out.trim(), "host=127.0.0.1 port=5432");
    let (r, out) = hactl(&c, &["dsn", "-m", "node2"], "").await;
    r.unwrap();
    assert_eq!(out.trim(), "host=127.0.0.1 port=5433");
    let (r, _) = hactl(&c, &["dsn", "-m", "nobody"], "").await;
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("Can not find a suitable member"));
    let (r, _) = hactl(&c, &["dsn", "-r", "replica", "-m", "node2"], "").await;
    assert!(r.is_err(), "--role with --member is refused");

    let (r, out) = hactl(&c, &["-f", "json", "list"], "").await;
    r.unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["Member"], "node1");
    assert_eq!(v[0]["Role"], "Leader");
    assert_eq!(v[1]["State"], "streaming");

    let (r, out) = hactl(&c, &["list", "-e"], "").await;
    r.unwrap();
    assert!(
        out.contains("Pending restart") && out.contains("Tags"),
        "{out}"
    );

    let (r, out) = hactl(&c, &["topology"], "").await;
    r.unwrap();
    assert!(
        out.contains("| node1 ") && out.contains("| + node2 ") && out.contains("| + node3 "),
        "{out}"
    );
}

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
async fn tsv_several_clusters_and_watching_as_patronictl() {
    let (c, _pump) = running_cluster(2).await;
    let (r, out) = hactl(&c, &["list", "-f", "tsv"], "").await;
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag"
    );
    assert!(
        lines[1].starts_with("batman\tnode1\t127.0.0.1:5432\tLeader\trunning\t"),
        "every host with its port once one runs on a non-default port: {out}"
    );
    assert!(
        lines[2].starts_with("batman\tnode2\t127.0.0.1:5433\tReplica\tstreaming\t"),
        "{out}"
    );
    assert_eq!(lines[2].split('\t').count(), 10, "{out}");
    let (r, out) = hactl(&c, &["history", "-f", "tsv"], "").await;
    r.unwrap();
    assert_eq!(
        out.lines().next(),
        Some("TL\tLSN\tReason\tTimestamp\tNew Leader")
    );

    // Several clusters, each with its title; one with no keys is uninitialized.
    let (r, out) = hactl(&c, &["list", "batman", "robin"], "").await;
    r.unwrap();
    assert!(out.contains("+ Cluster: batman (73"), "{out}");
    assert!(out.contains(" Cluster: robin (uninitialized) "), "{out}");
    let (r, out) = hactl(&c, &["-f", "json", "list", "robin", "batman"], "").await;
    r.unwrap();
    let docs: Vec<&str> = out.lines().collect();
    assert_eq!(docs, ["[]", docs[1]], "{out}");
    assert!(docs[1].contains(r#""Cluster":"batman""#), "{out}");

    // -w: the listing again every interval until interrupted.
    let (r, out) = hactl_for(
        &c,
        &["list", "-w", "0.03"],
        "",
        Some(Duration::from_millis(200)),
    )
    .await;
    r.unwrap();
    let n = out.matches("+ Cluster: batman").count();
    assert!(n >= 3, "{n} listings in 200 ms at -w 0.03:\n{out}");
    let (r, out) = hactl_for(
        &c,
        &["topology", "-W"],
        "",
        Some(Duration::from_millis(100)),
    )
    .await;
    r.unwrap();
    assert_eq!(out.matches("+ Cluster: batman").count(), 1, "-W waits 2 s");
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
    let dcs: Arc<dyn ha_core::dcs::Dcs> = Arc::new(c.dcs.client("new-daemon"));
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
