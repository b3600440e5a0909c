//! Member tags (`patroni/tags.py`): what a node allows the cluster to do with it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::lenient;

/// Tags as they appear in the local config and, filtered, in the member key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tags {
    /// `nofailover`: this node never takes the lock; see [`Tags::nofailover`] for how it combines with
    /// `failover_priority`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub nofailover: Option<bool>,
    /// `failover_priority`: among candidates at the same WAL position the higher wins; 0 or less: never a candidate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_i64"
    )]
    pub failover_priority: Option<i64>,
    /// `noloadbalance`: load balancers should send no read traffic here (`GET /replica` answers 503).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub noloadbalance: Option<bool>,
    /// `clonefrom`: a new replica prefers to clone from this node rather than from the leader.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub clonefrom: Option<bool>,
    /// `nosync`: never a synchronous standby; see [`Tags::never_sync`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub nosync: Option<bool>,
    /// `nostream`: replays from the archive only, never streams; nobody keeps a slot for it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_bool"
    )]
    pub nostream: Option<bool>,
    /// `replicatefrom`: the member to stream from instead of the leader (cascading replication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicatefrom: Option<String>,
    /// Custom tags, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tags {
    /// `nofailover: true` or `failover_priority: 0` keep a node out of every leader race. When both are given and
    /// disagree, the boolean wins, as in Patroni.
    pub fn nofailover(&self) -> bool {
        match self.nofailover {
            Some(b) => b,
            None => self.failover_priority.map(|p| p <= 0).unwrap_or(false),
        }
    }

    /// The priority among members with the same WAL position: 0 if the node may not fail over, else the tag (default 1).
    pub fn failover_priority(&self) -> i64 {
        if self.nofailover() {
            0
        } else {
            self.failover_priority.unwrap_or(1).max(1)
        }
    }

    /// `noloadbalance`, off when unset.
    pub fn noloadbalance(&self) -> bool {
        self.noloadbalance.unwrap_or(false)
    }
    /// `clonefrom`, off when unset.
    pub fn clonefrom(&self) -> bool {
        self.clonefrom.unwrap_or(false)
    }
    /// `nostream`: this member replays from the archive only; nobody keeps a slot for it.
    pub fn nostream(&self) -> bool {
        self.nostream.unwrap_or(false)
    }
    /// `nosync` as given, off when unset (see [`Tags::never_sync`] for the rule with `sync_priority`).
    pub fn nosync(&self) -> bool {
        self.nosync.unwrap_or(false)
    }
    /// `sync_priority` (Patroni 4.1): among candidates for synchronous standby the higher goes first; 0 or less
    /// never becomes one. Default 1.
    pub fn sync_priority(&self) -> i64 {
        self.extra
            .get("sync_priority")
            .and_then(super::lenient::value_i64)
            .unwrap_or(1)
    }

    /// Never a synchronous standby: `nosync` when it is set (it wins over `sync_priority`, as in Patroni 4.1),
    /// else `sync_priority` ≤ 0.
    pub fn never_sync(&self) -> bool {
        self.nosync.unwrap_or_else(|| self.sync_priority() <= 0)
    }

    /// The tags as Patroni writes them into the member key: boolean tags only when true, custom tags always;
    /// `nofailover`/`nosync` also when false if `failover_priority`/`sync_priority` is set (Patroni's
    /// `_filter_tags`).
    pub fn for_member_key(&self) -> Tags {
        let keep = |b: Option<bool>| if b == Some(true) { Some(true) } else { None };
        let has_sync_priority = self.extra.contains_key("sync_priority");
        Tags {
            nofailover: keep(self.nofailover),
            failover_priority: if self.nofailover() {
                None
            } else {
                self.failover_priority
            },
            noloadbalance: keep(self.noloadbalance),
            clonefrom: keep(self.clonefrom),
            nosync: if has_sync_priority {
                self.nosync
            } else {
                keep(self.nosync)
            },
            nostream: keep(self.nostream),
            replicatefrom: self.replicatefrom.clone(),
            extra: self.extra.clone(),
        }
    }

    /// No tag at all: the member key leaves `tags` out.
    pub fn is_empty(&self) -> bool {
        *self == Tags::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_tag_beats_priority_tag() {
        let t: Tags = serde_json::from_str(r#"{"nofailover":true,"failover_priority":5}"#).unwrap();
        assert!(t.nofailover());
        assert_eq!(t.failover_priority(), 0);
        let t: Tags = serde_json::from_str(r#"{"failover_priority":0}"#).unwrap();
        assert!(t.nofailover());
    }

    #[test]
    fn member_key_shows_only_true_booleans_and_custom_tags() {
        let t: Tags =
            serde_json::from_str(r#"{"nofailover":false,"nosync":true,"dc":"east"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&t.for_member_key()).unwrap(),
            r#"{"nosync":true,"dc":"east"}"#
        );
    }
}
