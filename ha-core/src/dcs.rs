//! The distributed configuration store as the HA logic needs it. One implementation per backend (`dcs-etcd`,
//! `dcs-consul`, `dcs-zk`) plus [`crate::mock_dcs::MemoryDcs`]; all pass [`crate::conformance`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::model::codec::{keys, to_json};
use crate::model::{Cluster, Failover, GlobalConfig, HistoryEntry, MemberData, Status, SyncState};

/// What went wrong talking to the DCS. The decision has one policy per kind, so keep them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcsError {
    /// The DCS could not be reached, or did not answer within the deadline: nothing is known about the cluster.
    #[error("DCS unreachable: {0}")]
    Unreachable(String),
    /// A compare-and-set lost: the version given is stale, or another node won the race.
    #[error("DCS conflict: {0}")]
    Conflict(String),
    /// The DCS answered but refused the request (permissions, invalid argument, quota...).
    #[error("DCS refused the request: {0}")]
    Rejected(String),
}

impl DcsError {
    /// Whether the DCS could not be reached (the kind failsafe mode and lease expiry act on).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, DcsError::Unreachable(_))
    }
}

/// The cluster-wide keys any client may compare-and-set ([`DcsClient::write_shared`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SharedKey {
    /// `config`: the dynamic configuration.
    Config,
    /// `failover`: a switchover or failover request.
    Failover,
    /// `sync`: the synchronous standbys (and the quorum).
    Sync,
    /// `history`: the timeline history.
    History,
}

impl SharedKey {
    /// The key's name under the cluster's prefix.
    pub fn path(self) -> &'static str {
        match self {
            SharedKey::Config => keys::CONFIG,
            SharedKey::Failover => keys::FAILOVER,
            SharedKey::Sync => keys::SYNC,
            SharedKey::History => keys::HISTORY,
        }
    }

    /// The name of the typed write, as backends log and count it.
    pub fn op(self) -> &'static str {
        match self {
            SharedKey::Config => "set_config",
            SharedKey::Failover => "set_failover",
            SharedKey::Sync => "set_sync_state",
            SharedKey::History => "set_history",
        }
    }
}

/// How a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchOutcome {
    /// The leader key changed (written, deleted or expired).
    LeaderChanged,
    /// The timeout passed without a change.
    TimedOut,
}

/// What any client of a cluster's keys may do, with or without a lease: read the cluster, compare-and-set the
/// shared keys, delete a member or the cluster. The CLI and the REST API hold only this (Patroni's ctl clients are
/// lease-less too), so they cannot be asked to take, renew or release the leader lock or to write as a member;
/// [`Dcs`] adds what only a node does. Each call must return within the client's own deadline (`retry_timeout`).
#[async_trait]
pub trait DcsClient: Send + Sync {
    /// Reads the whole cluster prefix as one snapshot. Malformed values are logged and left out (see
    /// [`Cluster::from_entries`]).
    async fn load(&self) -> Result<Cluster, DcsError>;

    /// Deletes a member key (`hactl remove`, or a node leaving for good).
    async fn delete_member(&self, name: &str) -> Result<(), DcsError>;

    /// Writes `value` (JSON) at one of the cluster's shared keys: compare-and-set against `version` when given,
    /// unconditionally otherwise. The one write a backend implements for them; the typed writes below are made of it.
    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError>;

    /// Writes `config`. `version: Some(v)` is a compare-and-set against the version read; `None` writes
    /// unconditionally (bootstrap).
    async fn set_config(
        &self,
        config: &GlobalConfig,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.write_shared(SharedKey::Config, to_json(config), version)
            .await
    }

    /// Writes `failover` (`{}` clears it), compare-and-set on `version` when given.
    async fn set_failover(
        &self,
        failover: &Failover,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.write_shared(SharedKey::Failover, to_json(failover), version)
            .await
    }

    /// Writes `sync`, compare-and-set on `version` when given.
    async fn set_sync_state(&self, sync: &SyncState, version: Option<u64>) -> Result<(), DcsError> {
        self.write_shared(SharedKey::Sync, to_json(sync), version)
            .await
    }

    /// Writes `history`, compare-and-set on `version` when given.
    async fn set_history(
        &self,
        history: &[HistoryEntry],
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        self.write_shared(SharedKey::History, to_json(&history), version)
            .await
    }

    /// Deletes the whole cluster prefix (`hactl remove`).
    async fn delete_cluster(&self) -> Result<(), DcsError>;
}

/// The DCS operations of one node: its lease (the leader lock and its member key live and die with it), the
/// bootstrap race, the leader's own keys (`status`, `failsafe`) and the leader watch, on top of [`DcsClient`]. Each
/// call must return within the client's own deadline (`retry_timeout`): a hung DCS call must not hang the loop.
#[async_trait]
pub trait Dcs: DcsClient {
    /// Sets the lease length used for the leader and member keys from now on.
    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError>;

    /// Sets the deadline of every call from now on (`retry_timeout` of the cluster's configuration, which may
    /// differ from the one the client was built with, and change at run time as Patroni's does).
    fn set_retry_timeout(&self, timeout: Duration);

    /// The bootstrap race: creates `initialize` with `value` only if it is absent (`Ok(false)`: someone else won).
    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError>;

    /// Overwrites `initialize` (the winner writes the system identifier once initdb has made one).
    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError>;

    /// Deletes `initialize` after a failed bootstrap, so another node may try.
    async fn cancel_initialization(&self) -> Result<(), DcsError>;

    /// Creates the leader key with our name, bound to our lease, only if it is absent. `Ok(false)`: someone holds it.
    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError>;

    /// Renews our hold on the leader key. `Ok(false)`: the key is no longer ours (expired, deleted or taken), so we
    /// are not the leader. Never creates the key for someone who does not hold it.
    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError>;

    /// Deletes the leader key if it holds our name, so another node can take over at once.
    async fn release_leader(&self, name: &str) -> Result<(), DcsError>;

    /// Writes our member key, bound to our lease.
    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError>;

    /// Writes `status` (the leader's optime).
    async fn write_status(&self, status: &Status) -> Result<(), DcsError>;

    /// Writes `failsafe` (every member's api_url).
    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError>;

    /// Returns as soon as the leader key changes, or after `timeout`. `known_version` is the leader key's version
    /// in the last snapshot (`None`: there was no leader key), so a change between that load and this call is seen.
    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError>;
}

/// A DCS shared behind an `Arc` (the driver owns its client by value; a REST API or a product's own code beside it
/// holds another `Arc` of the same client). Every call goes through unchanged: `touch_member` in particular must
/// reach the backend each loop, because the same call keeps the member's lease alive.
#[async_trait]
impl<T: DcsClient + ?Sized> DcsClient for std::sync::Arc<T> {
    async fn write_shared(
        &self,
        key: SharedKey,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        (**self).write_shared(key, value, version).await
    }

    async fn load(&self) -> Result<Cluster, DcsError> {
        (**self).load().await
    }

    async fn delete_member(&self, name: &str) -> Result<(), DcsError> {
        (**self).delete_member(name).await
    }

    async fn delete_cluster(&self) -> Result<(), DcsError> {
        (**self).delete_cluster().await
    }
}

#[async_trait]
impl<T: Dcs + ?Sized> Dcs for std::sync::Arc<T> {
    async fn set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        (**self).set_ttl(ttl).await
    }

    fn set_retry_timeout(&self, timeout: Duration) {
        (**self).set_retry_timeout(timeout)
    }

    async fn initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        (**self).initialize_race(value).await
    }

    async fn set_initialize(&self, sysid: &str) -> Result<(), DcsError> {
        (**self).set_initialize(sysid).await
    }

    async fn cancel_initialization(&self) -> Result<(), DcsError> {
        (**self).cancel_initialization().await
    }

    async fn acquire_leader(&self, name: &str) -> Result<bool, DcsError> {
        (**self).acquire_leader(name).await
    }

    async fn renew_leader(&self, name: &str) -> Result<bool, DcsError> {
        (**self).renew_leader(name).await
    }

    async fn release_leader(&self, name: &str) -> Result<(), DcsError> {
        (**self).release_leader(name).await
    }

    async fn touch_member(&self, name: &str, data: &MemberData) -> Result<(), DcsError> {
        (**self).touch_member(name, data).await
    }

    async fn write_status(&self, status: &Status) -> Result<(), DcsError> {
        (**self).write_status(status).await
    }

    async fn write_failsafe(&self, members: &BTreeMap<String, String>) -> Result<(), DcsError> {
        (**self).write_failsafe(members).await
    }

    async fn watch_leader(
        &self,
        known_version: Option<u64>,
        timeout: Duration,
    ) -> Result<WatchOutcome, DcsError> {
        (**self).watch_leader(known_version, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Dcs;
    use crate::mock_dcs::MemoryDcs;
    use crate::model::MemberData;
    use crate::time::ManualClock;

    #[tokio::test]
    async fn an_unchanged_member_key_touched_every_loop_through_an_arc_outlives_its_ttl() {
        let clock = ManualClock::new(0);
        let store = MemoryDcs::new(Arc::new(clock.clone()));
        let dcs: Arc<dyn Dcs> = Arc::new(store.client("node1"));
        dcs.set_ttl(Duration::from_secs(10)).await.unwrap();
        let data = MemberData {
            conn_url: Some("postgres://127.0.0.1:5432/postgres".into()),
            state: Some("running".into()),
            ..Default::default()
        };
        // Thirty loops of 2 s with the same value: three ttls.
        for _ in 0..30 {
            dcs.load().await.unwrap();
            dcs.touch_member("node1", &data).await.unwrap();
            clock.advance_ms(2_000);
            assert!(
                dcs.load().await.unwrap().member("node1").is_some(),
                "the member key vanished although its node touched it every loop"
            );
        }
    }
}
