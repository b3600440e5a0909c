//! What the API changes, and what it refuses: authentication, malformed input, config patches, switchover, restart,
//! reinitialize, failsafe, and the same over a real socket.

use super::*;

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
