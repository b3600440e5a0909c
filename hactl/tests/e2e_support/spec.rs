//! What a scenario asks of its cluster: nodes, timing, backend, and the options each scenario turns on.

use super::*;

/// What to start: the defaults are 3 nodes, all running, on one etcd, with [`FAST`] timings and failsafe off.
#[derive(Debug, Clone)]
pub struct Spec {
    pub test: String,
    pub nodes: usize,
    pub running: usize,
    pub timing: Timing,
    pub backend: Backend,
    pub etcd_members: usize,
    pub failsafe_mode: bool,
    /// `synchronous_mode` and `synchronous_mode_strict` on.
    pub synchronous: bool,
    /// `synchronous_mode: quorum` (with `synchronous_mode_strict`), instead of `on`.
    pub quorum: bool,
    /// Consul and ZooKeeper reached through a forwarder per node, so that [`Partition::cut`] can cut one node.
    pub partitionable: bool,
    /// TLS on the REST API (client certificates required), for the CLI, HAProxy's checks and Prometheus.
    pub tls: bool,
    /// Permanent slots in the configuration (`keep_me` physical, `cdc` logical with test_decoding) and
    /// `wal_level: logical`.
    pub slots: bool,
    /// A standby cluster of the PostgreSQL listening on this port (127.0.0.1): `standby_cluster` in bootstrap.dcs.
    pub standby_of: Option<u16>,
    /// HAProxy's config rendered by `hactl template` from the shipped `examples/confd` template (reloaded as members
    /// come and go) instead of written once by the test with every configured node.
    pub templated_haproxy: bool,
    /// The nodes use Patroni's `etcd:` section, etcd's v2 API, instead of `etcd3:`.
    pub etcd_v2: bool,
}

impl Spec {
    pub fn new(test: &str) -> Spec {
        Spec {
            test: test.to_string(),
            nodes: 3,
            running: 3,
            timing: FAST,
            backend: Backend::Etcd,
            etcd_members: 1,
            failsafe_mode: false,
            synchronous: false,
            quorum: false,
            partitionable: false,
            tls: false,
            slots: false,
            standby_of: None,
            templated_haproxy: false,
            etcd_v2: false,
        }
    }
    /// See [`Spec::etcd_v2`].
    pub fn etcd_v2(mut self) -> Spec {
        self.etcd_v2 = true;
        self
    }
    /// See [`Spec::templated_haproxy`].
    pub fn templated_haproxy(mut self) -> Spec {
        self.templated_haproxy = true;
        self
    }
    /// A standby cluster following the PostgreSQL on `port` (another cluster's HAProxy write port, so that a
    /// switchover there needs nothing from this one).
    pub fn standby_of(mut self, port: u16) -> Spec {
        self.standby_of = Some(port);
        self
    }
    /// Permanent slots: `keep_me` (physical) and `cdc` (logical, test_decoding), with `wal_level: logical`.
    pub fn slots(mut self) -> Spec {
        self.slots = true;
        self
    }
    /// Strict synchronous replication: every acknowledged commit is on the synchronous standby.
    pub fn synchronous(mut self) -> Spec {
        self.synchronous = true;
        self
    }
    /// Strict quorum commit: every acknowledged commit is on any `synchronous_node_count` of the standbys, and a
    /// node is elected only with a quorum's votes.
    pub fn quorum(mut self) -> Spec {
        self.synchronous = true;
        self.quorum = true;
        self
    }
    /// One node's link to the DCS can be cut alone (on every backend).
    pub fn partitionable(mut self) -> Spec {
        self.partitionable = true;
        self
    }
    pub fn tls(mut self) -> Spec {
        self.tls = true;
        self
    }
    pub fn on(mut self, backend: Backend) -> Spec {
        self.backend = backend;
        self
    }
    pub fn timing(mut self, timing: Timing) -> Spec {
        self.timing = timing;
        self
    }
    pub fn failsafe(mut self) -> Spec {
        self.failsafe_mode = true;
        self
    }
}
