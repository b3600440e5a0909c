//! Two nodes: a primary and a replica behind HAProxy, the CLI listing them, SIGTERM handing over within the ttl.

use super::*;

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

    super::cli_depth::cli_depth_against_a_running_cluster(dir.path(), &etcd_hostport, &scope).await;

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
