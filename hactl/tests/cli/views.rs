//! What the CLI shows: list and topology as tables, JSON and tsv, several clusters, watching, dsn.

use std::time::Duration;

use super::*;

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
