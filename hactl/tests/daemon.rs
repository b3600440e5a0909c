//! The daemon end to end: two `hactl run` processes with Patroni-format configs on a real etcd and real PostgreSQL 15.
//! A primary and a replica come up, HAProxy routes its primary and replica frontends like Patroni's health checks
//! say, the CLI lists the cluster, and SIGTERM on the primary hands the leader role over well within the ttl (the
//! lock is released, not left to expire), with the new primary's on_role_change callback run.
//!
//! Skipped (with a message) when PostgreSQL 15 or etcd are missing, unless CI=true.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

fn ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

fn prerequisites() -> bool {
    let pg = Path::new(PG_BIN).join("initdb").is_file();
    let etcd = dcs_etcd::testing::etcd_binary().is_some();
    if pg && etcd {
        return true;
    }
    if ci() {
        panic!(
            "CI=true but PostgreSQL 15 ({pg}) or etcd ({etcd}) is missing: run scripts/install.sh"
        );
    }
    eprintln!("SKIPPED: PostgreSQL 15 or etcd is not installed");
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A directory the postgres user can use.
fn shared_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        let (u, g) = postgres_ids();
        std::os::unix::fs::chown(path, Some(u), Some(g)).unwrap();
    }
}

/// A running `hactl run`; SIGKILLed with its PostgreSQL on drop, whatever happened.
struct Node {
    child: Option<Child>,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Node {
    fn start(config: &Path, log: PathBuf, data_dir: PathBuf) -> Node {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hactl"))
            .arg("run")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Node {
            child: Some(child),
            data_dir,
            log,
        }
    }

    fn sigterm_and_wait(&mut self, limit: Duration) -> bool {
        let Some(c) = self.child.as_mut() else {
            return true;
        };
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(_)) = c.try_wait() {
                self.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        hactl::daemon::fencer::fence_data_dir(&self.data_dir);
    }
}

fn free_port() -> u16 {
    dcs_etcd::testing::free_port()
}

async fn status(client: &reqwest::Client, port: u16, path: &str) -> Option<u16> {
    client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

async fn wait_for(
    client: &reqwest::Client,
    port: u16,
    path: &str,
    limit: Duration,
) -> Option<Duration> {
    let t = Instant::now();
    while t.elapsed() < limit {
        if status(client, port, path).await == Some(200) {
            return Some(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// `psql -c "select pg_is_in_recovery()"` through `port`.
fn in_recovery_via(port: u16, pgpass: &Path) -> Option<String> {
    let out = Command::new(Path::new(PG_BIN).join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            "select pg_is_in_recovery()",
        ])
        .env("PGPASSWORD", "su-pass")
        .env("PGPASSFILE", pgpass)
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_failover_on_sigterm_haproxy_routes_and_cli_lists() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("hactl-e2e-")
        .tempdir_in("/tmp")
        .unwrap();
    shared_dir(dir.path());
    let etcd = dcs_etcd::testing::EtcdServer::start(dir.path()).unwrap();
    let etcd_hostport = etcd.endpoint().trim_start_matches("http://").to_string();
    let scope = format!("e2e{}", std::process::id());
    let calls = dir.path().join("callbacks.log");
    let script = dir.path().join("callback.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut api_ports = Vec::new();
    let mut pg_ports = Vec::new();
    let mut configs = Vec::new();
    for i in 1..=2 {
        let (api, pg) = (free_port(), free_port());
        api_ports.push(api);
        pg_ports.push(pg);
        let node_dir = dir.path().join(format!("node{i}"));
        shared_dir(&node_dir);
        let yaml = format!(
            r#"scope: {scope}
name: node{i}
restapi: {{listen: 127.0.0.1:{api}, connect_address: 127.0.0.1:{api}}}
etcd3: {{hosts: [{etcd_hostport}]}}
bootstrap:
  dcs: {{ttl: 10, loop_wait: 1, retry_timeout: 3, maximum_lag_on_failover: 1048576,
        postgresql: {{use_pg_rewind: true, parameters: {{wal_log_hints: "on", max_wal_senders: 10}}}}}}
  initdb: [{{encoding: UTF8}}, data-checksums]
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {data}
  bin_dir: {PG_BIN}
  pgpass: {node_dir}/pgpass
  authentication:
    replication: {{username: replicator, password: rep-pass}}
    superuser: {{username: postgres, password: su-pass}}
  parameters: {{unix_socket_directories: {node_dir}}}
  pg_hba: [local all all trust, host replication replicator 127.0.0.1/32 scram-sha-256, host all all 127.0.0.1/32 scram-sha-256]
  callbacks: {{on_role_change: {script}, on_start: {script}}}
tags: {{nofailover: false}}
"#,
            data = node_dir.join("data").display(),
            node_dir = node_dir.display(),
            script = script.display(),
        );
        let path = dir.path().join(format!("node{i}.yml"));
        std::fs::write(&path, yaml).unwrap();
        configs.push(path);
    }
    let client = reqwest::Client::new();
    let mut n1 = Node::start(
        &configs[0],
        dir.path().join("node1.log"),
        dir.path().join("node1/data"),
    );
    let up = wait_for(&client, api_ports[0], "/primary", Duration::from_secs(90)).await;
    assert!(
        up.is_some(),
        "node1 never became primary:\n{}",
        n1.log_text()
    );
    let mut n2 = Node::start(
        &configs[1],
        dir.path().join("node2.log"),
        dir.path().join("node2/data"),
    );
    let up = wait_for(&client, api_ports[1], "/replica", Duration::from_secs(120)).await;
    assert!(
        up.is_some(),
        "node2 never became a streaming replica:\n{}\n{}",
        n2.log_text(),
        n1.log_text()
    );
    assert_eq!(status(&client, api_ports[0], "/replica").await, Some(503));
    assert_eq!(status(&client, api_ports[1], "/primary").await, Some(503));

    // HAProxy in front, checking /primary and /replica like Patroni's documented haproxy.cfg.
    if let Some(haproxy) = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    {
        let (fp, fr) = (free_port(), free_port());
        let cfg = format!(
            "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\
             listen primary\n  bind 127.0.0.1:{fp}\n  option httpchk OPTIONS /primary\n  http-check expect status 200\n  default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions\n\
             \x20 server node1 127.0.0.1:{p1} maxconn 100 check port {a1}\n  server node2 127.0.0.1:{p2} maxconn 100 check port {a2}\n\
             listen replicas\n  bind 127.0.0.1:{fr}\n  option httpchk OPTIONS /replica\n  http-check expect status 200\n  default-server inter 200ms fall 2 rise 1 on-marked-down shutdown-sessions\n\
             \x20 server node1 127.0.0.1:{p1} maxconn 100 check port {a1}\n  server node2 127.0.0.1:{p2} maxconn 100 check port {a2}\n",
            p1 = pg_ports[0], p2 = pg_ports[1], a1 = api_ports[0], a2 = api_ports[1]
        );
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut hp = Command::new(haproxy)
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pgpass = dir.path().join("client.pgpass");
        std::fs::write(&pgpass, "").unwrap();
        let t = Instant::now();
        let (mut via_primary, mut via_replica) = (None, None);
        while t.elapsed() < Duration::from_secs(20) {
            via_primary = in_recovery_via(fp, &pgpass);
            via_replica = in_recovery_via(fr, &pgpass);
            if via_primary.as_deref() == Some("f") && via_replica.as_deref() == Some("t") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let _ = hp.kill();
        let _ = hp.wait();
        assert_eq!(
            via_primary.as_deref(),
            Some("f"),
            "the primary frontend reaches the primary"
        );
        assert_eq!(
            via_replica.as_deref(),
            Some("t"),
            "the replica frontend reaches the replica"
        );
    } else if ci() {
        panic!("CI=true but haproxy is not installed");
    }

    // The CLI against the running cluster. `/replica` answers 200 as soon as the replica runs (as Patroni's does),
    // which can be a moment before its WAL receiver connects: the listing is read until it shows streaming.
    let list = || {
        let out = Command::new(env!("CARGO_BIN_EXE_hactl"))
            .args(["-c", configs[0].to_str().unwrap(), "list"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = list();
    while !text.contains("streaming") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        text = list();
    }
    assert!(text.contains(&format!("+ Cluster: {scope} (")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("| node1 ") && l.contains("Leader")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("| node2 ") && l.contains("Replica") && l.contains("streaming")),
        "{text}"
    );

    cli_depth_against_a_running_cluster(dir.path(), &etcd_hostport, &scope).await;

    // SIGTERM on the primary: it stops PostgreSQL and releases the lock, so node2 takes over well within the ttl.
    let t = Instant::now();
    assert!(
        n1.sigterm_and_wait(Duration::from_secs(30)),
        "node1 did not exit on SIGTERM:\n{}",
        n1.log_text()
    );
    let took = wait_for(&client, api_ports[1], "/primary", Duration::from_secs(30)).await;
    let total = t.elapsed();
    assert!(took.is_some(), "node2 never took over:\n{}", n2.log_text());
    assert!(
        total < Duration::from_secs(10),
        "takeover took {total:?}, not faster than the 10 s ttl"
    );
    let mut calls_text = String::new();
    for _ in 0..50 {
        calls_text = std::fs::read_to_string(&calls).unwrap_or_default();
        if calls_text.contains(&format!("on_role_change primary {scope}")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        calls_text.contains(&format!("on_start primary {scope}")),
        "{calls_text}"
    );
    assert!(
        calls_text.contains(&format!("on_role_change primary {scope}")),
        "{calls_text}"
    );
    assert!(
        n1.log_text()
            .contains(" INFO: no action. I am (node1), the leader with the lock"),
        "one line per loop, in Patroni's format:\n{}",
        n1.log_text()
    );
    // SIGHUP re-reads the config file, reloads PostgreSQL and applies the new tags (Patroni's "check local
    // configuration reload"): the REST API shows them within a loop.
    let text = std::fs::read_to_string(&configs[1]).unwrap();
    std::fs::write(
        &configs[1],
        text.replace(
            "tags: {nofailover: false}",
            "tags: {nofailover: false, new_tag: new_value}",
        ),
    )
    .unwrap();
    let pid2 = n2.child.as_ref().unwrap().id() as i32;
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid2, libc::SIGHUP);
    }
    let mut reloaded = false;
    for _ in 0..50 {
        if n2.log_text().contains("configuration file re-read") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "SIGHUP did not reload:\n{}", n2.log_text());
    let mut tags = serde_json::Value::Null;
    for _ in 0..50 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{}/patroni", api_ports[1]))
            .send()
            .await
        {
            tags = r.json::<serde_json::Value>().await.unwrap_or_default()["tags"].clone();
            if tags["new_tag"] == "new_value" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        tags["new_tag"],
        "new_value",
        "the reloaded tags are not served:\n{}",
        n2.log_text()
    );
    assert!(
        n2.sigterm_and_wait(Duration::from_secs(30)),
        "node2 did not exit on SIGTERM"
    );
    drop(etcd);
}

/// The 3-node etcd3 config from Patroni's documentation style, byte for byte, starts a node: only the addresses that
/// cannot exist on this machine come from `PATRONI_*` variables, as a deployment would set them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_documentation_config_starts_a_node_unchanged() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("hactl-doc-")
        .tempdir_in("/tmp")
        .unwrap();
    shared_dir(dir.path());
    let etcd = dcs_etcd::testing::EtcdServer::start(dir.path()).unwrap();
    let (api, pg) = (free_port(), free_port());
    let node_dir = dir.path().join("node1");
    shared_dir(&node_dir);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/patroni-node1.yml");
    let log = dir.path().join("node1.log");
    let out = std::fs::File::create(&log).unwrap();
    let scope = format!("doc{}", std::process::id());
    let child = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .arg("run")
        .arg(&config)
        .env("PATRONI_SCOPE", &scope)
        .env("PATRONI_RESTAPI_LISTEN", format!("127.0.0.1:{api}"))
        .env(
            "PATRONI_RESTAPI_CONNECT_ADDRESS",
            format!("127.0.0.1:{api}"),
        )
        .env(
            "PATRONI_ETCD3_HOSTS",
            etcd.endpoint().trim_start_matches("http://"),
        )
        .env("PATRONI_POSTGRESQL_LISTEN", format!("127.0.0.1:{pg}"))
        .env(
            "PATRONI_POSTGRESQL_CONNECT_ADDRESS",
            format!("127.0.0.1:{pg}"),
        )
        .env("PATRONI_POSTGRESQL_DATA_DIR", node_dir.join("data"))
        .env("PATRONI_POSTGRESQL_PGPASS", node_dir.join("pgpass"))
        .env("PATRONI_POSTGRESQL_BIN_DIR", PG_BIN)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut node = Node {
        child: Some(child),
        data_dir: node_dir.join("data"),
        log,
    };
    let client = reqwest::Client::new();
    let up = wait_for(&client, api, "/primary", Duration::from_secs(90)).await;
    assert!(
        up.is_some(),
        "the node never became primary:\n{}",
        node.log_text()
    );
    let p: serde_json::Value = client
        .get(format!("http://127.0.0.1:{api}/patroni"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["patroni"]["scope"], scope.as_str());
    assert_eq!(p["patroni"]["name"], "node1");
    let cfg: serde_json::Value = client
        .get(format!("http://127.0.0.1:{api}/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        cfg["ttl"], 30,
        "bootstrap.dcs was written to the DCS: {cfg}"
    );
    assert_eq!(cfg["postgresql"]["use_pg_rewind"], true);
    assert!(
        node.sigterm_and_wait(Duration::from_secs(30)),
        "no clean exit:\n{}",
        node.log_text()
    );
    let text = node.log_text();
    assert!(
        text.contains("hactl started") && text.contains("hactl stopped"),
        "{text}"
    );
    drop(etcd);
}

/// Runs the hactl binary with `args`, no config file (`HOME` at `home`, `PATRONICTL_CONFIG_FILE` unset), `env`
/// added and `input` typed; returns (success, stdout, stderr).
fn hactl_cmd(
    home: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    input: &str,
) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hactl"));
    cmd.args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .env_remove("DCS_URL")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// patronictl's ways in, against the running two-node cluster: the default config file, `--dcs-url` with no file,
/// `tsv`, `-w` watching, `query` by role with a typed password and `PGPASSWORD`, an SQL error printed as a row,
/// and `--group` reading a Citus group's keys as Patroni lays them out.
async fn cli_depth_against_a_running_cluster(dir: &Path, etcd: &str, scope: &str) {
    let home = dir.join("home");
    let url = format!("etcd3://{etcd}");

    // No -c: ~/.config/patroni/patronictl.yaml, as patronictl.
    std::fs::create_dir_all(home.join(".config/patroni")).unwrap();
    std::fs::write(
        home.join(".config/patroni/patronictl.yaml"),
        format!("scope: {scope}\netcd3: {{hosts: [{etcd}]}}\n"),
    )
    .unwrap();
    let (ok, out, err) = hactl_cmd(&home, &["list", "-f", "tsv"], &[], "");
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag",
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!("{scope}\tnode1\t127.0.0.1:"))
            && lines[1].contains("\tLeader\trunning\t"),
        "{out}"
    );
    assert!(lines[2].starts_with(&format!("{scope}\tnode2\t")), "{out}");
    std::fs::remove_file(home.join(".config/patroni/patronictl.yaml")).unwrap();

    // --dcs-url and no file at all: the cluster named is the scope.
    let (ok, out, err) = hactl_cmd(
        &home,
        &["--dcs-url", &url, "-f", "json", "list", scope],
        &[],
        "",
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Cluster"], scope, "{out}");
    assert_eq!(v[0]["Role"], "Leader", "{out}");
    assert!(
        v[0].get("Receive LSN").is_none(),
        "empty values left out: {out}"
    );

    // -w: the listing again every 0.3 s until interrupted.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_hactl"))
        .args(["--dcs-url", &url, "list", scope, "-w", "0.3"])
        .env("HOME", &home)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let tables = String::from_utf8_lossy(&out.stdout)
        .matches(&format!("Cluster: {scope} ("))
        .count();
    assert!(
        (3..=7).contains(&tables),
        "{tables} listings in 1.5 s at -w 0.3"
    );

    // query: the leader by default, with the password typed; a replica by role with PGPASSWORD; an error is a row.
    let (ok, out, err) = hactl_cmd(
        &home,
        &[
            "--dcs-url",
            &url,
            "query",
            scope,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "--password",
            "-c",
            "SELECT pg_is_in_recovery() AS rec, NULL AS nothing",
        ],
        &[],
        "su-pass\n",
    );
    assert!(ok, "{err}");
    assert!(out.ends_with("rec\tnothing\nf\tNone\n"), "{out}");
    let pw = [("PGPASSWORD", "su-pass")];
    let (ok, out, err) = hactl_cmd(
        &home,
        &[
            "--dcs-url",
            &url,
            "query",
            scope,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-r",
            "replica",
            "--format",
            "json",
            "-c",
            "SELECT pg_is_in_recovery() AS rec",
        ],
        &pw,
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"[{"rec":"t"}]"#);
    let (ok, out, err) = hactl_cmd(
        &home,
        &[
            "--dcs-url",
            &url,
            "query",
            scope,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT * FROM nowhere",
        ],
        &pw,
        "",
    );
    assert!(ok, "an SQL error is printed, not fatal: {err}");
    assert!(
        out.trim_end().ends_with("\tERROR, SQLSTATE: 42P01"),
        "{out}"
    );
    let (ok, _, err) = hactl_cmd(&home, &["--dcs-url", &url, "query", scope], &pw, "");
    assert!(!ok && err.contains("--command or --file"), "{err}");

    // --group: a Citus worker group's keys under <scope>/<group>/, written as Patroni writes them.
    let put = |key: &str, value: &str| {
        let st = Command::new("etcdctl")
            .args([
                "--endpoints",
                etcd,
                "put",
                &format!("/service/{scope}/1/{key}"),
                value,
            ])
            .env("ETCDCTL_API", "3")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "etcdctl put {key}");
    };
    put("initialize", "7300000000000000001");
    put("leader", "worker1");
    put(
        "members/worker1",
        r#"{"conn_url":"postgres://10.0.0.7:5432/postgres","api_url":"http://10.0.0.7:8008/patroni","state":"running","role":"primary","version":"4.1.0","timeline":1}"#,
    );
    let (ok, out, err) = hactl_cmd(
        &home,
        &["--dcs-url", &url, "--group", "1", "list", scope],
        &[],
        "",
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "Citus cluster: {scope} (group: 1, 7300000000000000001)"
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("| worker1 ") && l.contains("Leader")),
        "{out}"
    );
    assert!(!out.contains("node1"), "{out}");
}
