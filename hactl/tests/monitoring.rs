//! The monitoring examples against what a node serves: every metric the Grafana dashboard and the Prometheus alert
//! rules in `examples/` use is in a node's `/metrics`, and the rules pass `promtool check` and their unit tests
//! (`examples/prometheus/alerts_test.yml`). The nodes are the REST tests' simulated cluster (ha-core's driver over
//! the in-memory DCS): the `/metrics` handler is the daemon's.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{call, TestCluster};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The `patroni_*` metric names in a text (a PromQL expression, a rules file).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("patroni_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Every `expr` of a Grafana dashboard's panels and templating queries.
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr" | "query", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| dashboard_exprs(x, out)),
        _ => {}
    }
}

/// The metric names a primary, a replica and a node whose PostgreSQL is stopped serve, together.
async fn served_metrics() -> BTreeSet<String> {
    let c = TestCluster::new(3, None, &[]);
    c.settle();
    let mut served = BTreeSet::new();
    for i in 1..=3 {
        let m = call(&c.router(i), "GET", "/metrics", None, None).await;
        assert_eq!(m.status, 200);
        for line in m
            .body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            served.insert(line[..end].to_string());
        }
    }
    served
}

#[tokio::test]
async fn the_dashboard_and_the_alert_rules_use_only_metrics_a_node_serves() {
    let served = served_metrics().await;
    assert!(served.contains("patroni_primary"), "{served:?}");

    let text = std::fs::read_to_string(examples().join("grafana/hactl-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    dashboard_exprs(&serde_json::from_str(&text).unwrap(), &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard's queries: {exprs:?}");
    let used = exprs
        .iter()
        .flat_map(|e| metric_names(e))
        .collect::<BTreeSet<_>>();
    let missing: Vec<_> = used.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses {missing:?}, which no node serves"
    );

    let rules = std::fs::read_to_string(examples().join("prometheus/alerts.yml")).unwrap();
    let used = metric_names(&rules);
    for alerted in [
        "patroni_cluster_unlocked",
        "patroni_primary",
        "patroni_pending_restart",
    ] {
        assert!(used.contains(alerted), "{used:?}");
    }
    let missing: Vec<_> = used.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "the alert rules use {missing:?}, which no node serves"
    );
}

/// `promtool`, or `None` (a skip) outside CI when Debian's `prometheus` package is missing.
fn promtool() -> Option<&'static str> {
    const PROMTOOL: &str = "/usr/bin/promtool";
    if Path::new(PROMTOOL).exists() {
        return Some(PROMTOOL);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("promtool is missing under CI (scripts/install.sh installs the prometheus package)");
    }
    eprintln!("SKIPPED: promtool is missing (apt-get install prometheus)");
    None
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = examples().join("prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
        // The example Prometheus configuration loads the rules.
        vec!["check", "config", "prometheus.yml"],
    ] {
        let out = Command::new(promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The unit tests are no formality: a rule that never fires fails them.
    let broken = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(dir.join("alerts.yml"))
        .unwrap()
        .replace(
            "sum by (scope) (patroni_primary) > 1",
            "sum by (scope) (patroni_primary) > 2",
        );
    std::fs::write(broken.path().join("alerts.yml"), rules).unwrap();
    std::fs::copy(
        dir.join("alerts_test.yml"),
        broken.path().join("alerts_test.yml"),
    )
    .unwrap();
    let out = Command::new(promtool)
        .args(["test", "rules", "alerts_test.yml"])
        .current_dir(broken.path())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a two-primaries rule that cannot fire passed its tests"
    );
}
