//! Every REST endpoint's status codes for a primary, a replica and a stopped node, auth, bad JSON, and the JSON and
//! metric shapes — against ha-core's real driver on the in-memory DCS and simulated PostgreSQL.

mod common;

use common::{call, fixed_context, TestCluster};
use ha_core::model::Tags;
use ha_core::pg::{PgObservation, PgRunState};
use hactl::config::BasicAuth;

const ADMIN: Option<(&str, &str)> = Some(("admin", "secret"));

fn auth() -> Option<BasicAuth> {
    Some(BasicAuth {
        username: "admin".into(),
        password: "secret".into(),
    })
}

fn dc_tags(dc: &str) -> Tags {
    serde_json::from_value(serde_json::json!({ "dc": dc })).unwrap()
}

/// node1 primary, node2 replica, node3 a replica whose PostgreSQL is reported stopped.
fn three_nodes() -> (TestCluster, axum::Router, axum::Router, axum::Router) {
    let c = TestCluster::new(
        3,
        auth(),
        &[dc_tags("east"), dc_tags("east"), dc_tags("west")],
    );
    c.settle();
    let mut stopped = c.report(3);
    stopped.pg = PgObservation {
        run_state: Some(PgRunState::Stopped),
        in_recovery: true,
        ..Default::default()
    };
    let r3 = hactl::api::router(fixed_context(&c.ctxs[2], Some(stopped)));
    let (r1, r2) = (c.router(1), c.router(2));
    (c, r1, r2, r3)
}

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

#[tokio::test]
async fn unsafe_methods_need_basic_auth() {
    let (_c, primary, _replica, _stopped) = three_nodes();
    for (method, path, body) in [
        ("POST", "/reload", None),
        ("POST", "/restart", None),
        ("POST", "/reinitialize", None),
        ("POST", "/switchover", Some(r#"{"leader":"node1"}"#)),
        ("POST", "/failover", Some(r#"{"candidate":"node2"}"#)),
        ("POST", "/failsafe", Some(r#"{"name":"node1"}"#)),
        ("PATCH", "/config", Some(r#"{"ttl":6}"#)),
        ("PUT", "/config", Some(r#"{"ttl":6}"#)),
        ("DELETE", "/switchover", None),
        ("DELETE", "/restart", None),
    ] {
        for creds in [None, Some(("admin", "wrong")), Some(("nobody", "secret"))] {
            let r = call(&primary, method, path, body, creds).await;
            assert_eq!(r.status, 401, "{method} {path} with {creds:?}");
            assert_eq!(r.headers["www-authenticate"], "Basic realm=\"Patroni\"");
        }
    }
    let r = call(&primary, "POST", "/reload", None, ADMIN).await;
    assert_eq!((r.status, r.body.as_str()), (202, "reload scheduled"));
    // Reads need no credentials.
    assert_eq!(
        call(&primary, "GET", "/config", None, None).await.status,
        200
    );
}

#[tokio::test]
async fn malformed_json_is_a_400_with_a_message_never_a_500() {
    let (_c, primary, replica, _stopped) = three_nodes();
    for (method, path) in [
        ("PATCH", "/config"),
        ("PUT", "/config"),
        ("POST", "/switchover"),
        ("POST", "/failover"),
        ("POST", "/restart"),
        ("POST", "/reinitialize"),
    ] {
        for bad in ["{not json", "[1,2]", "\"text\"", "\u{0}\u{1}", "{\"a\":"] {
            for router in [&primary, &replica] {
                let r = call(router, method, path, Some(bad), ADMIN).await;
                assert_eq!(r.status, 400, "{method} {path} {bad:?}: {}", r.body);
                assert!(r.body.starts_with("Bad request"), "{}", r.body);
            }
        }
        if method != "POST" || path == "/switchover" || path == "/failover" {
            let r = call(&primary, method, path, Some("{}"), ADMIN).await;
            assert_eq!(r.status, 400, "{method} {path} with an empty object");
        }
    }
    // No Content-Length on an endpoint that needs a body: 411.
    let r = call(&primary, "PATCH", "/config", None, ADMIN).await;
    assert_eq!(r.status, 411);
    // A config of the wrong shape: 400. One breaking the timing rule is taken, as Patroni takes it (every node
    // adjusts it when it reads it).
    let r = call(
        &primary,
        "PATCH",
        "/config",
        Some(r#"{"ttl":{"x":1}}"#),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = call(
        &primary,
        "PATCH",
        "/config",
        Some(r#"{"loop_wait":10}"#),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["loop_wait"], 10);
}

#[tokio::test]
async fn patch_and_put_config() {
    let (c, primary, _replica, _stopped) = three_nodes();
    let r = call(
        &primary,
        "PATCH",
        "/config",
        Some(r#"{"ttl":8,"postgresql":{"parameters":{"work_mem":"8MB"}}}"#),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ttl"], 8);
    assert_eq!(r.json()["postgresql"]["parameters"]["work_mem"], "8MB");
    let r = call(
        &primary,
        "PATCH",
        "/config",
        Some(r#"{"postgresql":{"parameters":{"work_mem":null}},"pause":true}"#),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["postgresql"]["parameters"]
            .get("work_mem")
            .is_none(),
        "{}",
        r.body
    );
    assert_eq!(r.json()["pause"], true);
    let stored: serde_json::Value =
        serde_json::from_str(&c.dcs.get_raw("config").unwrap()).unwrap();
    assert_eq!(stored["ttl"], 8);
    let r = call(
        &primary,
        "PUT",
        "/config",
        Some(r#"{"ttl":20,"loop_wait":5,"retry_timeout":5}"#),
        ADMIN,
    )
    .await;
    assert_eq!((r.status, r.json()["ttl"].as_u64()), (200, Some(20)));
    let stored: serde_json::Value =
        serde_json::from_str(&c.dcs.get_raw("config").unwrap()).unwrap();
    assert!(stored.get("pause").is_none(), "PUT replaces: {stored}");
}

#[tokio::test]
async fn switchover_prechecks_and_scheduling() {
    let (c, primary, _replica, _stopped) = three_nodes();
    let cases: &[(&str, &str, u16, &str)] = &[
        ("/switchover", r#"{"candidate":"node2"}"#, 400, "Switchover could be performed only from a specific leader"),
        ("/failover", r#"{"leader":"node1"}"#, 400, "Failover could be performed only to a specific candidate"),
        ("/switchover", r#"{"leader":"node2","candidate":"node3"}"#, 412, "leader name does not match"),
        ("/switchover", r#"{"leader":"node1","candidate":"node9"}"#, 412, "candidate does not exists"),
        ("/switchover", r#"{"leader":"node1","candidate":"node1"}"#, 400, "Switchover target and source are the same"),
        ("/switchover", r#"{"leader":"node1","scheduled_at":"2020-01-01T00:00:00+00:00"}"#, 422, "Cannot schedule switchover in the past"),
        ("/switchover", r#"{"leader":"node1","scheduled_at":"2099-01-01T00:00:00"}"#, 400, "Timezone information is mandatory for the scheduled switchover"),
        ("/switchover", r#"{"leader":"node1","scheduled_at":"whenever"}"#, 422, "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"),
        ("/failover", r#"{"candidate":"node2","scheduled_at":"2099-01-01T00:00:00+00:00"}"#, 400, "Failover can't be scheduled"),
    ];
    for (path, body, code, msg) in cases {
        let r = call(&primary, "POST", path, Some(body), ADMIN).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (*code, *msg),
            "POST {path} {body}"
        );
    }
    assert_eq!(
        call(&primary, "DELETE", "/switchover", None, ADMIN)
            .await
            .status,
        404
    );
    let r = call(
        &primary,
        "POST",
        "/switchover",
        Some(
            r#"{"leader":"node1","candidate":"node2","scheduled_at":"2099-01-01T00:00:00+00:00"}"#,
        ),
        ADMIN,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (202, "Switchover scheduled"));
    let cl = call(&primary, "GET", "/cluster", None, None).await.json();
    assert_eq!(cl["scheduled_switchover"]["from"], "node1");
    assert_eq!(cl["scheduled_switchover"]["to"], "node2");
    let r = call(&primary, "DELETE", "/switchover", None, ADMIN).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "scheduled switchover deleted")
    );
    assert_eq!(
        call(&primary, "DELETE", "/switchover", None, ADMIN)
            .await
            .status,
        404
    );
    assert_eq!(c.dcs.leader().unwrap().0, "node1");
}

#[tokio::test]
async fn switchover_runs_and_reports_the_new_leader() {
    let c = TestCluster::new(2, None, &[]);
    c.settle();
    let pump = c.pump();
    let r = call(
        &c.router(1),
        "POST",
        "/switchover",
        Some(r#"{"leader":"node1","candidate":"node2"}"#),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "Successfully switched over to \"node2\"")
    );
    assert_eq!(c.dcs.leader().unwrap().0, "node2");
    pump.abort();
    // A precheck on the new topology: node1 no longer leads.
    let r = call(
        &c.router(2),
        "POST",
        "/switchover",
        Some(r#"{"leader":"node1"}"#),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (412, "leader name does not match")
    );
}

#[tokio::test]
async fn restart_now_scheduled_and_cancelled() {
    let c = TestCluster::new(2, None, &[]);
    c.settle();
    let r = call(
        &c.router(2),
        "POST",
        "/restart",
        Some(r#"{"role":"leader"}"#),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "PostgreSQL role should be either primary, standby_leader, or replica"
        )
    );
    let r = call(
        &c.router(2),
        "POST",
        "/restart",
        Some(r#"{"when":"now"}"#),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, "Unknown filter for the scheduled restart: when")
    );
    let r = call(
        &c.router(2),
        "POST",
        "/restart",
        Some(r#"{"timeout":"-1"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    let r = call(
        &c.router(2),
        "POST",
        "/restart",
        Some(r#"{"role":"primary"}"#),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "restart conditions are not satisfied")
    );
    let r = call(
        &c.router(2),
        "POST",
        "/restart",
        Some(r#"{"restart_pending":true}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 503, "nothing pending");

    let pump = c.pump();
    let r = call(&c.router(2), "POST", "/restart", None, None).await;
    assert_eq!((r.status, r.body.as_str()), (200, "restarted successfully"));
    pump.abort();

    let at = r#"{"schedule":"2099-01-01T00:00:00+00:00"}"#;
    let r = call(&c.router(1), "POST", "/restart", Some(at), None).await;
    assert_eq!((r.status, r.body.as_str()), (202, "Restart scheduled"));
    let p = call(&c.router(1), "GET", "/patroni", None, None)
        .await
        .json();
    assert_eq!(
        p["scheduled_restart"]["schedule"],
        "2099-01-01T00:00:00+00:00"
    );
    let r = call(&c.router(1), "POST", "/restart", Some(at), None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (409, "Another restart is already scheduled")
    );
    let r = call(&c.router(1), "DELETE", "/restart", None, None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "scheduled restart deleted")
    );
    let r = call(&c.router(1), "DELETE", "/restart", None, None).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "no restarts are scheduled")
    );
}

#[tokio::test]
async fn reinitialize_is_refused_on_the_leader_and_started_on_a_replica() {
    let (c, primary, replica, _stopped) = three_nodes();
    let r = call(&primary, "POST", "/reinitialize", None, ADMIN).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "I am the leader, can not reinitialize")
    );
    let r = call(
        &replica,
        "POST",
        "/reinitialize",
        Some(r#"{"force":true}"#),
        ADMIN,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "reinitialize started"));
    let r = call(&replica, "POST", "/reinitialize", None, ADMIN).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "reinitialize already in progress")
    );
    assert!(c.drivers.lock().unwrap()[1]
        .requests()
        .reinitialize
        .load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn failsafe_endpoints() {
    let (c, primary, replica, _stopped) = three_nodes();
    assert_eq!(
        call(&primary, "GET", "/failsafe", None, None).await.status,
        502
    );
    let r = call(
        &replica,
        "POST",
        "/failsafe",
        Some(r#"{"name":"node1"}"#),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, 502, "failsafe_mode is off");
    let r = call(
        &primary,
        "PATCH",
        "/config",
        Some(r#"{"failsafe_mode":true}"#),
        ADMIN,
    )
    .await;
    assert_eq!(r.status, 200);
    for _ in 0..3 {
        c.step();
    }
    let f = call(&primary, "GET", "/failsafe", None, None).await;
    assert_eq!(f.status, 200, "{}", f.body);
    assert_eq!(f.json()["node2"], "http://127.0.0.1:8009/patroni");
    let r = call(
        &replica,
        "POST",
        "/failsafe",
        Some(r#"{"name":"node1","api_url":"http://127.0.0.1:8008/patroni"}"#),
        ADMIN,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "Accepted"));
    assert!(r.headers.contains_key("lsn"));
    let r = call(
        &primary,
        "POST",
        "/failsafe",
        Some(r#"{"name":"node1"}"#),
        ADMIN,
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (500, "Running as a leader"));
    let r = call(&replica, "POST", "/failsafe", Some("{bad"), ADMIN).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn serves_on_a_real_socket() {
    let c = TestCluster::new(1, None, &[]);
    c.settle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hactl::api::serve(listener, c.ctxs[0].clone(), async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{addr}/primary"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(format!("http://{addr}/replica"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    // A body without the JSON content type, and a raw malformed one, through the real HTTP stack.
    let r = client
        .patch(format!("http://{addr}/config"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Patroni's `restart_matches` runs again when a scheduled restart's time comes: a restart scheduled for replicas
/// on the primary does not restart it (the acceptance suite's "check the scheduled restart").
#[tokio::test]
async fn a_scheduled_restart_checks_its_filters_when_its_time_comes() {
    use ha_core::time::Clock;
    let c = TestCluster::new(2, None, &[]);
    c.settle();
    let soon = |ms: i64| {
        let at = chrono::DateTime::from_timestamp_millis(c.clock.unix_ms() + ms)
            .unwrap()
            .to_rfc3339();
        format!(r#"{{"schedule":"{at}","role":"replica"}}"#)
    };
    let r = call(&c.router(1), "POST", "/restart", Some(&soon(1500)), None).await;
    assert_eq!((r.status, r.body.as_str()), (202, "Restart scheduled"));
    let r = call(&c.router(2), "POST", "/restart", Some(&soon(1500)), None).await;
    assert_eq!((r.status, r.body.as_str()), (202, "Restart scheduled"));
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    use std::sync::atomic::Ordering;
    assert!(
        !c.ctxs[0].requests.restart.load(Ordering::SeqCst),
        "the primary is not a replica: no restart"
    );
    assert!(
        c.ctxs[1].requests.restart.load(Ordering::SeqCst),
        "the replica restarts"
    );
}
