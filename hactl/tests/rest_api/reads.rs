//! What the API serves: health checks for each role, the status JSON, cluster, history, config and metrics.

use super::*;

#[tokio::test]
async fn health_checks_answer_like_patroni_for_primary_replica_and_stopped_node() {
    let (_c, primary, replica, stopped) = three_nodes();
    // path, primary, replica, stopped
    let table: &[(&str, u16, u16, u16)] = &[
        ("/", 200, 503, 503),
        ("/primary", 200, 503, 503),
        ("/master", 200, 503, 503),
        ("/read-write", 200, 503, 503),
        ("/leader", 200, 503, 503),
        ("/standby-leader", 503, 503, 503),
        ("/standby_leader", 503, 503, 503),
        ("/replica", 503, 200, 503),
        ("/replica?replication_state=streaming", 503, 200, 503),
        (
            "/replica?replication_state=in%20archive%20recovery",
            503,
            503,
            503,
        ),
        ("/replica?lag=1GB", 503, 200, 503),
        ("/replica?tag_dc=east", 503, 200, 503),
        ("/replica?tag_dc=west", 503, 503, 503),
        ("/replica?tag_rack=1", 503, 503, 503),
        ("/primary?tag_dc=nowhere", 200, 503, 503),
        ("/read-only", 200, 200, 503),
        ("/health", 200, 200, 503),
        ("/sync", 503, 503, 503),
        ("/synchronous", 503, 503, 503),
        ("/async", 503, 200, 503),
        ("/asynchronous", 503, 200, 503),
        ("/read-only-sync", 200, 503, 503),
        ("/no-such-check", 503, 503, 503),
    ];
    for (path, p, r, s) in table {
        for (who, router, want) in [
            ("primary", &primary, p),
            ("replica", &replica, r),
            ("stopped", &stopped, s),
        ] {
            let got = call(router, "GET", path, None, None).await;
            assert_eq!(got.status, *want, "GET {path} on the {who}: {}", got.body);
            assert_eq!(
                got.json()["patroni"]["scope"],
                "batman",
                "GET {path} body is the /patroni JSON"
            );
            for method in ["HEAD", "OPTIONS"] {
                let got = call(router, method, path, None, None).await;
                assert_eq!(got.status, *want, "{method} {path} on the {who}");
                assert!(got.body.is_empty(), "{method} {path}: status line only");
            }
        }
    }
}

#[tokio::test]
async fn lagging_and_noloadbalance_replicas_leave_the_replica_pool() {
    let nolb: Tags = serde_json::from_value(serde_json::json!({"noloadbalance": true})).unwrap();
    let c = TestCluster::new(2, None, &[Tags::default(), nolb]);
    c.settle();
    assert_eq!(
        call(&c.router(2), "GET", "/replica", None, None)
            .await
            .status,
        503
    );
    assert_eq!(
        call(&c.router(2), "GET", "/health", None, None)
            .await
            .status,
        200
    );

    let c = TestCluster::new(2, None, &[]);
    c.settle();
    let mut lagging = c.report(2);
    lagging.pg.replay_lsn = Some(0);
    let r = hactl::api::router(fixed_context(&c.ctxs[1], Some(lagging)));
    assert_eq!(call(&r, "GET", "/replica", None, None).await.status, 200);
    assert_eq!(
        call(&r, "GET", "/replica?lag=1", None, None).await.status,
        503
    );
    assert_eq!(
        call(&r, "GET", "/replica?lag=16kB", None, None)
            .await
            .status,
        503
    );
    assert_eq!(
        call(&r, "GET", "/replica?lag=1TB", None, None).await.status,
        200
    );
    assert_eq!(
        call(&r, "GET", "/readiness?lag=1", None, None).await.status,
        503
    );
}

#[tokio::test]
async fn liveness_and_readiness() {
    let (c, primary, replica, stopped) = three_nodes();
    for r in [&primary, &replica] {
        assert_eq!(call(r, "GET", "/liveness", None, None).await.status, 200);
        assert_eq!(call(r, "GET", "/readiness", None, None).await.status, 200);
    }
    assert_eq!(
        call(&stopped, "GET", "/readiness", None, None).await.status,
        503
    );
    let before_first_loop = hactl::api::router(fixed_context(&c.ctxs[0], None));
    assert_eq!(
        call(&before_first_loop, "GET", "/liveness", None, None)
            .await
            .status,
        503
    );
    // The loops stop: after ttl (5 s) the primary is not live, after 2 * ttl neither is the replica.
    c.clock.advance_ms(6_000);
    assert_eq!(
        call(&primary, "GET", "/liveness", None, None).await.status,
        503
    );
    assert_eq!(
        call(&replica, "GET", "/liveness", None, None).await.status,
        200
    );
    c.clock.advance_ms(6_000);
    assert_eq!(
        call(&replica, "GET", "/liveness", None, None).await.status,
        503
    );
}

#[tokio::test]
async fn patroni_status_json_has_patronis_shape() {
    let (_c, primary, replica, stopped) = three_nodes();
    let p = call(&primary, "GET", "/patroni", None, None).await;
    assert_eq!(p.status, 200);
    assert_eq!(p.headers["content-type"], "application/json");
    let p = p.json();
    assert_eq!(p["state"], "running");
    assert_eq!(p["role"], "primary");
    assert!(p["xlog"]["location"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["timeline"], 1);
    assert!(p["database_system_identifier"].as_str().unwrap().len() >= 10);
    assert_eq!(p["patroni"]["name"], "node1");
    assert_eq!(p["patroni"]["version"], hactl::VERSION);
    assert_eq!(p["tags"]["dc"], "east");
    assert!(p["dcs_last_seen"].as_i64().unwrap() > 1_700_000_000);

    let r = call(&replica, "GET", "/patroni", None, None).await.json();
    assert_eq!(r["role"], "replica");
    assert_eq!(r["replication_state"], "streaming");
    assert!(r["xlog"]["received_location"].is_u64() && r["xlog"]["replayed_location"].is_u64());
    assert!(r["xlog"]["replayed_timestamp"].is_null());
    assert_eq!(r["xlog"]["paused"], false);

    let s = call(&stopped, "GET", "/patroni", None, None).await;
    assert_eq!(s.status, 200, "/patroni is always 200");
    let s = s.json();
    assert_eq!(s["state"], "stopped");
    assert!(
        s.get("xlog").is_none() && s.get("timeline").is_none(),
        "{s}"
    );
}

#[tokio::test]
async fn cluster_history_and_config() {
    let (c, primary, _replica, _stopped) = three_nodes();
    let cl = call(&primary, "GET", "/cluster", None, None).await;
    assert_eq!(cl.status, 200);
    let cl = cl.json();
    assert_eq!(cl["scope"], "batman");
    let names: Vec<&str> = cl["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    let m1 = &cl["members"][0];
    assert_eq!(
        (m1["role"].as_str(), m1["state"].as_str()),
        (Some("leader"), Some("running"))
    );
    assert_eq!(
        (m1["host"].as_str(), m1["port"].as_u64()),
        (Some("127.0.0.1"), Some(5432))
    );
    assert!(m1.get("lag").is_none());
    let m2 = &cl["members"][1];
    assert_eq!(
        (m2["role"].as_str(), m2["state"].as_str()),
        (Some("replica"), Some("streaming"))
    );
    assert!(
        m2["lsn"].as_str().unwrap().contains('/') && m2["lag"].is_u64(),
        "{m2}"
    );

    let h = call(&primary, "GET", "/history", None, None).await;
    assert_eq!((h.status, h.body.as_str()), (200, "[]"));

    let cfg = call(&primary, "GET", "/config", None, None).await;
    assert_eq!(cfg.status, 200);
    assert_eq!(cfg.json()["ttl"], 5);

    // A DCS with no `config` key: 502.
    let empty = ha_core::mock_dcs::MemoryDcs::new(std::sync::Arc::new(c.clock.clone()));
    let ctx = hactl::api::ApiContext::new(
        common::identity(1, Tags::default()),
        "batman",
        std::sync::Arc::new(std::sync::Mutex::new(None)),
        std::sync::Arc::new(empty.client("api")),
        std::sync::Arc::new(c.clock.clone()),
    );
    let r = hactl::api::router(std::sync::Arc::new(ctx));
    assert_eq!(call(&r, "GET", "/config", None, None).await.status, 502);
    assert_eq!(call(&r, "GET", "/failsafe", None, None).await.status, 502);
    assert_eq!(call(&r, "GET", "/patroni", None, None).await.status, 200);
}

#[tokio::test]
async fn metrics_use_patronis_names_labels_and_values_line() {
    let (_c, primary, replica, stopped) = three_nodes();
    let m = call(&primary, "GET", "/metrics", None, None).await;
    assert_eq!(m.status, 200);
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let body = m.body;
    let l = r#"{scope="batman",name="node1"}"#;
    for line in [
        format!("patroni_primary{l} 1"),
        format!("patroni_replica{l} 0"),
        format!("patroni_postgres_running{l} 1"),
        format!("patroni_postgres_state{l} 5"),
        format!("patroni_cluster_unlocked{l} 0"),
        format!("patroni_is_paused{l} 0"),
        format!("patroni_postgres_timeline{l} 1"),
        format!("patroni_failover_priority{l} 1"),
        "# HELP patroni_version Patroni semver without periods.".to_string(),
        "# TYPE patroni_postgres_timeline gauge".to_string(),
        "# TYPE patroni_xlog_location counter".to_string(),
    ] {
        assert!(
            body.lines().any(|x| x == line),
            "missing {line:?} in\n{body}"
        );
    }
    let values = "# Values: 0=initdb, 1=initdb_failed, 2=custom_bootstrap, 3=custom_bootstrap_failed, 4=creating_replica, 5=running, 6=starting, 7=bootstrap_starting, 8=start_failed, 9=restarting, 10=restart_failed, 11=stopping, 12=stopped, 13=stop_failed, 14=crashed";
    let lines: Vec<&str> = body.lines().collect();
    let i = lines
        .iter()
        .position(|x| *x == values)
        .expect("the # Values: line");
    assert_eq!(
        lines[i - 1],
        "# HELP patroni_postgres_state Numeric representation of Postgres state."
    );
    assert_eq!(lines[i + 1], "# TYPE patroni_postgres_state gauge");
    // Every sample has its HELP and TYPE.
    for sample in lines.iter().filter(|x| !x.starts_with('#')) {
        let name = sample.split('{').next().unwrap();
        assert!(body.contains(&format!("# HELP {name} ")), "{name}");
        assert!(body.contains(&format!("# TYPE {name} ")), "{name}");
        assert!(sample.contains(l), "{sample}");
    }
    let r = call(&replica, "GET", "/metrics", None, None).await.body;
    assert!(
        r.contains("patroni_replica{scope=\"batman\",name=\"node2\"} 1"),
        "{r}"
    );
    let s = call(&stopped, "GET", "/metrics", None, None).await.body;
    assert!(
        s.contains("patroni_postgres_state{scope=\"batman\",name=\"node3\"} 12"),
        "{s}"
    );
    assert!(
        s.contains("patroni_postgres_running{scope=\"batman\",name=\"node3\"} 0"),
        "{s}"
    );
}
