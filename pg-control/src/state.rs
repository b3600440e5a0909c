//! The state file: what this node remembers across daemon restarts (the member it follows, the cluster-wide
//! parameters), read once by [`PgCtl::new`] and rewritten whole on every change.

use std::collections::BTreeMap;

use ha_core::pg::Upstream;
use ha_core::sync::lock;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::ctl::PgCtl;
use crate::error::Result;
use crate::os;

/// What this node remembers across daemon restarts (in [`PgSettings::state_file`](crate::PgSettings::state_file)): PostgreSQL's files do not say
/// which member a standby follows, and the cluster-wide parameters must survive a regenerated postgresql.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodeState {
    pub upstream: Option<StoredUpstream>,
    pub cluster_parameters: BTreeMap<String, String>,
    /// The cluster-wide `postgresql.recovery_conf` (a standby's extra recovery settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_recovery_conf: BTreeMap<String, String>,
    /// `synchronous_standby_names` as the leader manages it in synchronous mode (overrides the parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_standby_names: Option<String>,
    /// The slots hactl made, or adopted because the configuration names them: the only ones it ever drops (the
    /// name is kept from when these were members' slots only, so old state files still read).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub member_slots: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredUpstream {
    pub name: String,
    pub conn_url: String,
    /// A standby cluster's source: the recovery settings it needs on every rewrite of the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<ha_core::pg::RemoteSource>,
}

impl StoredUpstream {
    pub(crate) fn to_upstream(&self) -> Upstream {
        Upstream {
            name: self.name.clone(),
            conn_url: self.conn_url.clone(),
            remote: self.remote.clone(),
        }
    }
}

impl PgCtl {
    /// Loads the state file, if there is one; an unreadable one is ignored (and said so), as if there were none.
    pub(crate) fn load_state_file(&self) {
        if let Ok(text) = std::fs::read_to_string(&self.s.state_file) {
            match serde_json::from_str::<NodeState>(&text) {
                Ok(st) => *lock(&self.state) = st,
                Err(e) => {
                    warn!(file = ?self.s.state_file, error = %e, "ignoring an unreadable state file")
                }
            }
        }
    }

    /// The member this node follows, as last told (clone, start_replica, follow, rewind).
    pub fn upstream_name(&self) -> Option<String> {
        self.node_state().upstream.map(|u| u.name)
    }

    pub(crate) fn node_state(&self) -> NodeState {
        lock(&self.state).clone()
    }

    pub(crate) fn update_state(&self, f: impl FnOnce(&mut NodeState)) -> Result<()> {
        let snapshot = {
            let mut g = lock(&self.state);
            f(&mut g);
            g.clone()
        };
        let text = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
        os::write_file(&self.run_as, &self.s.state_file, &text, 0o600)
    }

    pub(crate) fn remember_upstream(&self, up: Option<&Upstream>) -> Result<()> {
        self.update_state(|st| {
            st.upstream = up.map(|u| StoredUpstream {
                name: u.name.clone(),
                conn_url: u.conn_url.clone(),
                remote: u.remote.clone(),
            })
        })
    }
}
