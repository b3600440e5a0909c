//! The daemon's HAProxy notifier against a real HAProxy: a promotion puts the node up in the primary backend and
//! down in the replica backend through the runtime API and takes every other server of the primary backend out, a
//! primary about to stop takes itself out first, and an
//! HAProxy that is not there costs nothing but a warning. HAProxy's own checks are slowed to a minute, so every
//! state seen here is one the hooks set.

use std::process::Command;
use std::time::{Duration, Instant};

use ha_core::decision::Action;
use ha_core::driver::{Hooks, NodeRole, Outcome};
use ha_core::pg::StopMode;
use ha_core::testing::{free_port, ServerProcess};
use hactl::config::haproxy::{HaproxyConfig, RuntimeApi};
use hactl::daemon::haproxy::{send_to, HaproxyHooks};

/// Killed by PID and reaped on drop ([`ServerProcess`]), before its directory goes.
struct Haproxy {
    _process: ServerProcess,
    api: RuntimeApi,
    _dir: tempfile::TempDir,
}

/// HAProxy with `primary` and `replicas` backends holding `node1` and `node2`, its runtime API on a unix socket.
fn haproxy() -> Option<Haproxy> {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("admin.sock");
    let (pg, api) = (free_port(), free_port());
    let cfg = format!(
        "global\n    stats socket {} level admin\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1m\n    timeout server 1m\n    default-server inter 60s fall 1 rise 1\n\
         listen primary\n    bind 127.0.0.1:{}\n    option httpchk GET /primary\n    server node1 127.0.0.1:{pg} check port {api}\n    server node2 127.0.0.1:{pg} check port {api}\n\
         listen replicas\n    bind 127.0.0.1:{}\n    option httpchk GET /replica\n    server node1 127.0.0.1:{pg} check port {api}\n",
        sock.display(),
        free_port(),
        free_port()
    );
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let spawned = ServerProcess::spawn(
        Command::new("haproxy").args(["-db", "-f"]).arg(&path),
        &dir.path().join("haproxy.log"),
    );
    let mut process = ha_core::testing::or_skip(
        spawned,
        |e| e.kind() == std::io::ErrorKind::NotFound,
        "haproxy",
    )?;
    process
        .wait_ready(Duration::from_secs(10), || sock.exists())
        .unwrap_or_else(|e| panic!("HAProxy did not open its runtime API: {e}"));
    Some(Haproxy {
        _process: process,
        api: RuntimeApi::Unix(sock),
        _dir: dir,
    })
}

/// `backend/node1`'s status in `show stat` (`UP`, `DOWN`, ...).
async fn status(api: &RuntimeApi, backend: &str) -> String {
    server_status(api, backend, "node1").await
}

/// `backend/server`'s status in `show stat`.
async fn server_status(api: &RuntimeApi, backend: &str, server: &str) -> String {
    let stat = send_to(api, "show stat\n").await.expect("show stat");
    stat.lines()
        .find(|l| l.starts_with(&format!("{backend},{server},")))
        .and_then(|l| l.split(',').nth(17))
        .unwrap_or("missing")
        .to_string()
}

async fn eventually(api: &RuntimeApi, backend: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let got = status(api, backend).await;
        if got.starts_with(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{backend}/node1 is {got}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_promotion_and_a_stop_move_the_node_between_haproxys_backends_at_once() {
    let Some(h) = haproxy() else { return };
    let hooks = HaproxyHooks::new(
        &HaproxyConfig {
            runtime_api: vec![h.api.clone()],
            ..Default::default()
        },
        "node1",
    );
    // node2 is the old primary, still up in HAProxy (cut off, say, so its check has not failed yet).
    send_to(&h.api, "set server primary/node2 health up\n")
        .await
        .unwrap();
    assert!(server_status(&h.api, "primary", "node2")
        .await
        .starts_with("UP"));
    // A stopping replica is none of HAProxy's business here.
    hooks
        .before_action(&Action::Stop(StopMode::Fast), NodeRole::Replica)
        .await;
    hooks.after_action(&Action::Promote, &Outcome::Done).await;
    eventually(&h.api, "primary", "UP").await;
    eventually(&h.api, "replicas", "DOWN").await;
    // The lock holder is the only primary: the old one is taken out with its sessions.
    let deadline = Instant::now() + Duration::from_secs(2);
    while !server_status(&h.api, "primary", "node2")
        .await
        .starts_with("DOWN")
    {
        assert!(
            Instant::now() < deadline,
            "the old primary is still routed to"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The primary about to stop: out of the primary backend before the hook returns.
    hooks
        .before_action(&Action::Stop(StopMode::Fast), NodeRole::Primary)
        .await;
    assert!(
        status(&h.api, "primary").await.starts_with("DOWN"),
        "still routed to while stopping"
    );

    // Started again as primary (a restart of the leader): back in.
    hooks
        .on_role_change(NodeRole::Stopped, NodeRole::Primary)
        .await;
    eventually(&h.api, "primary", "UP").await;
    // Seen crashed by the loop: out again.
    hooks
        .on_role_change(NodeRole::Primary, NodeRole::Stopped)
        .await;
    eventually(&h.api, "primary", "DOWN").await;
}

#[tokio::test]
async fn an_haproxy_that_is_not_there_does_not_hold_up_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = HaproxyHooks::new(
        &HaproxyConfig {
            runtime_api: vec![
                RuntimeApi::Unix(dir.path().join("gone.sock")),
                RuntimeApi::Tcp(format!("127.0.0.1:{}", free_port())),
            ],
            ..Default::default()
        },
        "node1",
    );
    let t0 = Instant::now();
    hooks
        .before_action(&Action::Stop(StopMode::Fast), NodeRole::Primary)
        .await;
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
}
