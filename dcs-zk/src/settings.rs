//! Connection settings: which ZooKeeper ensemble, which cluster (namespace and scope), which node, and the two
//! durations that bound everything else (the session's `ttl`, every call's `retry_timeout`).

use std::time::Duration;

/// Where and who.
#[derive(Debug, Clone)]
pub struct ZkSettings {
    /// `host:port[,host:port...]`
    pub hosts: String,
    /// Patroni's `namespace` (default `service`).
    pub namespace: String,
    pub scope: String,
    /// This node's name.
    pub name: String,
    /// hactl's ttl: the session timeout, and the local lease of our ephemerals.
    pub ttl: Duration,
    /// Deadline of every call.
    pub retry_timeout: Duration,
}
