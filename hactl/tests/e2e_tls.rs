//! A cluster with TLS on every link the way a production Patroni deployment runs it — the REST API requiring client
//! certificates (`verify_client: required`), the CLI and the daemons' own requests showing theirs, HAProxy checking
//! over HTTPS with `check-ssl verify required` and a client certificate, Prometheus scraping `/metrics` over HTTPS,
//! etcd speaking only HTTPS with client certificates and user authentication, PostgreSQL replication only over
//! `hostssl ... clientcert=verify-ca` with `sslmode: verify-ca` — and a switchover through the CLI with a writer
//! committing through HAProxy the whole time.
//! The same on ZooKeeper, whose client has no TLS: the nodes authenticate with a digest (`auth_data`) and every
//! znode they create is closed to everyone else (`set_acls`), so a client without the digest cannot even read.
//! One cluster start per backend, several checks each; certificates made by the test (rcgen), nothing checked in.

mod e2e_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_support::{finish, prerequisites_on, write_gap, Backend, Cluster, Spec, Writer, SERIAL};
use serde_json::json;

/// Prometheus scraping every node's `/metrics` over HTTPS with the test CA and client certificate; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(c: &Cluster) -> Prometheus {
        let p = c.tls.as_ref().expect("a TLS cluster");
        let port = dcs_etcd::testing::free_port();
        let targets: Vec<String> = c
            .nodes
            .iter()
            .map(|n| format!("'127.0.0.1:{}'", n.api_port))
            .collect();
        let cfg = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}\nrule_files: ['{}']\n\
             scrape_configs:\n  - job_name: hactl\n    scheme: https\n    \
             tls_config: {{ca_file: '{}', cert_file: '{}', key_file: '{}'}}\n    static_configs: [{{targets: [{}]}}]\n",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/prometheus/alerts.yml")
                .display(),
            p.ca.display(),
            p.client_cert.display(),
            p.client_key.display(),
            targets.join(", ")
        );
        let path = c.dir.join("prometheus.yml");
        std::fs::write(&path, cfg).expect("prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                c.dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(c.dir.join("prometheus.log")).expect("log"))
            .spawn()
            .expect("prometheus");
        Prometheus { child, port }
    }

    /// The alerting rules Prometheus loaded: (name, health, state) each.
    async fn rules(&self) -> Vec<(String, String, String)> {
        let url = format!("http://127.0.0.1:{}/api/v1/rules", self.port);
        let Ok(r) = reqwest::get(url).await else {
            return Vec::new();
        };
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        let mut out = Vec::new();
        for g in v["data"]["groups"].as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
                out.push((s("name"), s("health"), s("state")));
            }
        }
        out
    }

    /// The value of a PromQL expression that returns one sample, once Prometheus answers it.
    async fn query(&self, expr: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let r = reqwest::Client::new()
            .get(url)
            .query(&[("query", expr)])
            .send()
            .await
            .ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hactl switchover --candidate <next> --force` with node `first`'s config: the CLI reaches the primary's REST
/// API over HTTPS with its client certificate. Returns the new primary, how long it took, and the write gap.
async fn switchover_through_the_cli(
    c: &Cluster,
    w: &Writer,
    first: usize,
) -> (usize, Duration, Duration) {
    let cand = (first + 1) % 3;
    // The candidate must be a healthy streaming replica, or the switchover is rightly refused.
    c.wait_replica(cand, Duration::from_secs(30))
        .await
        .expect("the candidate streams");
    let t0 = Instant::now();
    let mut tries = 0;
    loop {
        let (ok, out) = c.ctl(
            first,
            &["switchover", "--candidate", &c.nodes[cand].name, "--force"],
        );
        if ok {
            break;
        }
        tries += 1;
        eprintln!("[e2e] switchover refused (try {tries}): {out}");
        assert!(
            tries < 3,
            "hactl switchover over HTTPS: {out}\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (newp, took) = c
        .wait_new_primary(first, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("no new primary\n{}", c.dump_logs()));
    assert_eq!(newp, cand);
    (newp, took, write_gap(c, w, t0).await)
}

/// Replication connections on node `i` that use TLS with a verified client certificate.
async fn replicas_over_tls(c: &Cluster, i: usize) -> i64 {
    let Ok(db) = c.connect(c.nodes[i].pg_port).await else {
        return 0;
    };
    db.query_one(
        "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s ON s.pid = r.pid \
         WHERE s.ssl AND s.client_dn IS NOT NULL AND r.state = 'streaming'",
        &[],
    )
    .await
    .map(|r| r.get::<_, i64>(0))
    .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "consul")]
async fn a_consul_cluster_over_https_refuses_clients_without_a_certificate_and_switches_over() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scenario = "switchover_tls_consul";
    if !prerequisites_on(scenario, Backend::Consul) {
        return;
    }
    let c = Cluster::start_spec(Spec::new(scenario).on(Backend::Consul).tls()).await;
    let first = c.primary().await.expect("a primary");
    assert_eq!(
        replicas_over_tls(&c, first).await,
        2,
        "replication over hostssl with client certificates"
    );
    let (ok, list) = c.ctl(first, &["list"]);
    assert!(ok, "hactl list over HTTPS to Consul: {list}");
    // The same CLI config without its client certificate is refused by Consul (`verify_incoming_https`).
    let text = run_with_config_lines_removed(&c, first, &["  cert:", "  key:"]);
    assert!(
        !text.contains(&c.nodes[first].name),
        "a Consul client without a certificate: {text}"
    );

    let w = Writer::start(c.write_port).await;
    assert!(
        w.wait_progress(25, Duration::from_secs(30)).await,
        "no write through HAProxy\n{}",
        c.dump_logs()
    );
    let (newp, took, gap) = switchover_through_the_cli(&c, &w, first).await;
    let figures =
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64()});
    finish(&c, w, newp, scenario, figures, 0).await;
}

/// `hactl list` with node `i`'s config less the lines starting with any of `prefixes`; its output (it must fail).
fn run_with_config_lines_removed(c: &Cluster, i: usize, prefixes: &[&str]) -> String {
    let config = std::fs::read_to_string(&c.nodes[i].config).unwrap();
    let stripped: String = config
        .lines()
        .filter(|l| !prefixes.iter().any(|p| l.starts_with(p)))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = c.dir.join("stranger.yml");
    std::fs::write(&path, stripped).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hactl"))
        .arg("-c")
        .arg(&path)
        .arg("list")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("[e2e] {}: {}", prefixes.join(" "), text.trim());
    assert!(!out.status.success(), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(feature = "zookeeper")]
async fn a_zookeeper_cluster_with_acls_keeps_strangers_out_and_switches_over_over_https() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scenario = "switchover_tls_zookeeper_acl";
    if !prerequisites_on(scenario, Backend::Zookeeper) {
        return;
    }
    let c = Cluster::start_spec(Spec::new(scenario).on(Backend::Zookeeper).tls()).await;
    let first = c.primary().await.expect("a primary");
    assert_eq!(
        replicas_over_tls(&c, first).await,
        2,
        "replication over hostssl with client certificates"
    );
    let (ok, list) = c.ctl(first, &["list"]);
    assert!(ok, "hactl list with the digest: {list}");
    // The same CLI config without `auth_data` cannot read the cluster: every znode is the digest user's.
    let text = run_with_config_lines_removed(&c, first, &["  auth_data:"]);
    assert!(
        text.contains("NoAuth"),
        "a client without the digest: {text}"
    );

    let w = Writer::start(c.write_port).await;
    assert!(
        w.wait_progress(25, Duration::from_secs(30)).await,
        "no write through HAProxy\n{}",
        c.dump_logs()
    );
    let (newp, took, gap) = switchover_through_the_cli(&c, &w, first).await;
    let figures =
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64()});
    finish(&c, w, newp, scenario, figures, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_is_checked_scraped_listed_and_switched_over_over_https_only() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let scenario = "switchover_tls";
    if !prerequisites_on(scenario, Backend::Etcd) {
        return;
    }
    if !std::path::Path::new("/usr/bin/prometheus").exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "prometheus missing under CI"
        );
        eprintln!("{scenario}: skipped, prometheus missing (run scripts/install.sh)");
        return;
    }
    let c = Cluster::start_spec(Spec::new(scenario).tls()).await;
    let first = c
        .primary()
        .await
        .expect("a primary (found over HTTPS with the client certificate)");
    let api = c.nodes[first].api();
    assert!(api.starts_with("https://"));

    // Without the client certificate, or over plain HTTP, the API does not answer at all.
    let pki = c.tls.as_ref().unwrap();
    let no_cert = hactl::client::http_client_with(&hactl::tls::client::ClientTlsSettings {
        cacert: Some(pki.ca.clone()),
        ..Default::default()
    })
    .unwrap();
    assert!(
        no_cert.get(format!("{api}/patroni")).send().await.is_err(),
        "a handshake without a client certificate"
    );
    let plain = reqwest::Client::new()
        .get(format!("{}/patroni", api.replace("https", "http")))
        .send()
        .await;
    assert!(
        plain.map_or(true, |r| !r.status().is_success()),
        "plain HTTP is not served"
    );
    // The member keys carry https API URLs, so members and tools reach each other over HTTPS.
    let (ok, list) = c.ctl(first, &["list", "-f", "json"]);
    assert!(ok, "hactl list over HTTPS: {list}");

    // etcd speaks only HTTPS, and both replicas stream over TLS with a verified client certificate.
    assert!(
        c.dcs_endpoint().starts_with("https://"),
        "{}",
        c.dcs_endpoint()
    );
    assert_eq!(
        replicas_over_tls(&c, first).await,
        2,
        "replication over hostssl with client certificates"
    );

    // HAProxy's checks run over HTTPS: writes reach the primary through it.
    let w = Writer::start(c.write_port).await;
    assert!(
        w.wait_progress(25, Duration::from_secs(30)).await,
        "no write through HAProxy\n{}",
        c.dump_logs()
    );

    // Prometheus scrapes every node over HTTPS with the client certificate.
    let prom = Prometheus::start(&c);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut up = 0.0;
    while Instant::now() < deadline {
        up = prom.query("sum(up{job=\"hactl\"})").await.unwrap_or(0.0);
        if up == 3.0 && prom.query("sum(patroni_primary)").await == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(up, 3.0, "Prometheus scraped every node over HTTPS");
    assert_eq!(
        prom.query("sum(patroni_primary)").await,
        Some(1.0),
        "one primary in the scraped metrics"
    );
    // The example alert rules load and evaluate on the live metrics; on a healthy cluster none fires. (One may be
    // pending for a moment: a scrape that times out on a loaded machine leaves the primary's series stale, and "no
    // primary" holds until the next one, well inside the rule's `for: 1m`.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let rules = loop {
        let rules = prom.rules().await;
        if (rules.len() == 5 && rules.iter().all(|(_, health, _)| health == "ok"))
            || Instant::now() > deadline
        {
            break rules;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(rules.len(), 5, "the example alert rules loaded: {rules:?}");
    for (name, health, state) in &rules {
        assert_eq!(health, "ok", "{name}: {rules:?}");
        assert_ne!(state, "firing", "{name} on a healthy cluster: {rules:?}");
    }

    let (newp, took, gap) = switchover_through_the_cli(&c, &w, first).await;
    // The old primary rejoined (pg_rewind and streaming over TLS, with the rewind and replication roles' options).
    let deadline = Instant::now() + Duration::from_secs(60);
    while replicas_over_tls(&c, newp).await < 2 {
        assert!(
            Instant::now() < deadline,
            "replicas not streaming over TLS after the switchover\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let figures =
        json!({"time_to_new_primary_s": took.as_secs_f64(), "write_gap_s": gap.as_secs_f64()});
    finish(&c, w, newp, scenario, figures, 0).await;
}
