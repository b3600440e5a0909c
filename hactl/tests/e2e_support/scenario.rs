//! What most scenarios share: one at a time, a cluster with the writer running, and the waits for a new primary,
//! a rejoined node and streaming replicas.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{prerequisites_on, Census, Cluster, Spec, Writer, SERIAL};

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn post(url: &str, body: Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .expect("POST");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// A 3-node cluster with the writer running, and the primary at the start.
pub async fn cluster_with_writer(test: &str) -> Option<(Cluster, Writer, usize)> {
    cluster_with_writer_as(Spec::new(test)).await
}

/// The cluster `spec` describes, with the writer running, and the primary at the start.
pub async fn cluster_with_writer_as(spec: Spec) -> Option<(Cluster, Writer, usize)> {
    if !prerequisites_on(&spec.test, spec.backend) {
        return None;
    }
    // Strict synchronous modes acknowledge nothing until the leader has a synchronous standby (a loop or two).
    let settle = if spec.synchronous { 30 } else { 2 };
    let mut c = Cluster::start_spec(spec).await;
    let p = c.primary().await.expect("a primary");
    // Every scenario's census of writable nodes, from before its fault to its end (checked by `finish`).
    c.census = Some(Census::start(&c));
    let w = Writer::start(c.write_port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !w.acked().is_empty() || w.wait_progress(1, Duration::from_secs(settle)).await,
        "the writer got no write through HAProxy before the fault\n{}",
        c.dump_logs()
    );
    Some((c, w, p))
}

/// Waits until both replicas stream from the primary.
pub async fn wait_streaming(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.streaming_replicas().await < 2 {
        assert!(
            Instant::now() < deadline,
            "replicas not streaming\n{}",
            c.dump_logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn failed_over(c: &Cluster, old: usize, within: Duration) -> (usize, Duration) {
    c.wait_new_primary(old, within)
        .await
        .unwrap_or_else(|| panic!("no new primary within {within:?}\n{}", c.dump_logs()))
}

pub async fn rejoined(c: &Cluster, node: usize) -> Duration {
    c.wait_replica(node, Duration::from_secs(90))
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} did not come back as a replica\n{}",
                c.nodes[node].name,
                c.dump_logs()
            )
        })
}
