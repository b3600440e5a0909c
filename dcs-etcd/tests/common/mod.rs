//! Shared by the test files: settings for a test client, a raw etcd client for writing behind EtcdDcs's back.
#![allow(dead_code)]

use std::time::Duration;

use dcs_etcd::EtcdSettings;

/// Short leases keep the suite quick; etcd's minimum lease with the test servers' 1 s election timeout is 2 s.
pub const TTL: Duration = Duration::from_secs(2);

/// The per-call deadline (retry_timeout) of the test clients.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

pub fn settings<S: AsRef<str>>(endpoints: &[S], scope: &str, name: &str) -> EtcdSettings {
    let mut s = EtcdSettings::new(
        endpoints.iter().map(|e| e.as_ref().to_string()),
        scope,
        name,
    );
    s.request_timeout = REQUEST_TIMEOUT;
    s
}

pub async fn raw_client(endpoint: &str) -> etcd_client::Client {
    etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap()
}

/// Logs to the test output when RUST_LOG is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
