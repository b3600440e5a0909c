//! Patroni's documented etcd3 config, byte for byte, starts a node.

use super::*;

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
