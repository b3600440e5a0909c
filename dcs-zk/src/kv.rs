//! Keys and values: cluster-relative keys mapped to znode paths, typed reads and writes of persistent znodes
//! (unconditional, or compare-and-set on the znode `version`), ephemeral znodes (`create` with a mode; the leader
//! key re-created under our session), the versions hactl sees, and `load`, the whole cluster in three pipelined
//! waves (see the crate doc's round-trip count).

use std::sync::atomic::Ordering;

use ha_core::dcs::DcsError;
use ha_core::model::codec::keys;
use ha_core::model::{Cluster, RawEntry};
use ha_core::sync::lock;
use tracing::{debug, info_span, Instrument};
use zookeeper_async::{CreateMode, Stat, ZkError};

use crate::dcs::Inner;
use crate::error::CallError;
use crate::session::Conn;

fn zk_path(p: &str) -> String {
    p.trim_end_matches('/').to_string()
}

impl Inner {
    pub(crate) fn key(&self, rel: &str) -> String {
        zk_path(&self.path.key(rel))
    }

    pub(crate) fn prefix(&self) -> String {
        zk_path(self.path.prefix())
    }

    /// Creates the persistent parents of `path` (Patroni's `makepath`).
    async fn make_parents(&self, c: &Conn, path: &str) -> Result<(), CallError> {
        let mut cur = String::new();
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            cur.push('/');
            cur.push_str(part);
            match self
                .op(
                    c,
                    "create parent",
                    c.zk.create(
                        &cur,
                        Vec::new(),
                        self.settings.create_acl(),
                        CreateMode::Persistent,
                    ),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some(ZkError::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `create2`, making the parents on `NoNode`.
    pub(crate) async fn create(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
        value: &str,
        mode: CreateMode,
    ) -> Result<Stat, CallError> {
        let attempt = || {
            c.zk.create2(
                path,
                value.as_bytes().to_vec(),
                self.settings.create_acl(),
                mode,
            )
        };
        match self.op(c, what, attempt()).await {
            Err(e) if e.code() == Some(ZkError::NoNode) => {
                self.make_parents(c, path).await?;
                Ok(self.op(c, what, attempt()).await?.1)
            }
            r => Ok(r?.1),
        }
    }

    /// Unconditional (`version: None`, creating the key if needed) or compare-and-set write of a persistent key.
    pub(crate) async fn put(
        &self,
        what: &'static str,
        rel: &str,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        let c = self.conn().await?;
        let path = self.key(rel);
        let v = version.map(|v| v as i32);
        match self
            .op(&c, what, c.zk.set_data(&path, value.as_bytes().to_vec(), v))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(ZkError::BadVersion) => Err(DcsError::Conflict(format!(
                "{what}: version {version:?} is stale"
            ))),
            Err(e) if e.code() == Some(ZkError::NoNode) => {
                if version.is_some() {
                    return Err(DcsError::Conflict(format!("{what}: the key is gone")));
                }
                match self
                    .create(&c, what, &path, &value, CreateMode::Persistent)
                    .await
                {
                    Ok(_) => Ok(()),
                    // Created concurrently: write over it, as an unconditional write would have.
                    Err(e) if e.code() == Some(ZkError::NodeExists) => Ok(self
                        .op(&c, what, c.zk.set_data(&path, value.into_bytes(), None))
                        .await
                        .map(|_| ())?),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn get(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
    ) -> Result<Option<(String, Stat)>, CallError> {
        match self.op(c, what, c.zk.get_data(path, false)).await {
            Ok((data, stat)) => Ok(Some((String::from_utf8_lossy(&data).into_owned(), stat))),
            Err(e) if e.code() == Some(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn children(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
    ) -> Result<Vec<String>, CallError> {
        match self.op(c, what, c.zk.get_children(path, false)).await {
            Ok(v) => Ok(v),
            Err(e) if e.code() == Some(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn delete(
        &self,
        c: &Conn,
        what: &'static str,
        path: &str,
        version: Option<i32>,
    ) -> Result<bool, CallError> {
        match self.op(c, what, c.zk.delete(path, version)).await {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(ZkError::NoNode) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Our own leader key, from a session of ours that is gone on our side (a restarted daemon; a server restart
    /// that brought the old session back), recreated under this session, as Patroni does ("Recreating the leader
    /// ZNode due to ownership mismatch"), instead of leaving the cluster leaderless until the server expires the old
    /// session. The version check makes it lose to any change in between: `false` then.
    pub(crate) async fn recreate_own_leader_key(
        &self,
        c: &Conn,
        name: &str,
        old: &Stat,
    ) -> Result<bool, CallError> {
        let path = self.key(keys::LEADER);
        match self
            .delete(c, "renew leader", &path, Some(old.version))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) if e.code() == Some(ZkError::BadVersion) => return Ok(false),
            Err(e) => return Err(e),
        }
        match self
            .create(c, "renew leader", &path, name, CreateMode::Ephemeral)
            .await
        {
            Ok(created) => {
                c.learn_session(&created);
                Ok(true)
            }
            Err(e) if e.code() == Some(ZkError::NodeExists) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes `path` and everything under it (children first).
    pub(crate) async fn delete_tree(&self, c: &Conn, path: &str) -> Result<(), CallError> {
        let mut stack = vec![(path.to_string(), false)];
        // Bounded: the cluster prefix is 3 levels deep; a runaway tree stops at 100,000 nodes.
        let mut budget = 100_000u32;
        while let Some((p, expanded)) = stack.pop() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                break;
            }
            if expanded {
                match self.delete(c, "delete cluster", &p, None).await {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(ZkError::NotEmpty) => stack.push((p, false)),
                    Err(e) => return Err(e),
                }
                continue;
            }
            let kids = self.children(c, "delete cluster", &p).await?;
            stack.push((p.clone(), true));
            for k in kids {
                stack.push((format!("{p}/{k}"), false));
            }
        }
        Ok(())
    }

    /// Reads the whole cluster: the top-level keys, then every value and the member list, then the members.
    pub(crate) async fn load(&self) -> Result<Cluster, DcsError> {
        let span = info_span!("zk_load", prefix = %self.prefix());
        async {
            let c = self.conn().await?;
            let prefix = self.prefix();
            let top = self.children(&c, "load", &prefix).await?;
            // Wave 2: every top-level value and the member list, pipelined on the one connection.
            let leaves: Vec<String> = top
                .iter()
                .filter(|k| *k != "members" && *k != "optime")
                .cloned()
                .chain(
                    top.iter()
                        .any(|k| k == "optime")
                        .then(|| keys::OPTIME_LEADER.to_string()),
                )
                .collect();
            let members_path = self.key("members");
            let (values, member_names) = tokio::join!(
                futures::future::join_all(leaves.iter().map(|k| {
                    let path = format!("{prefix}/{k}");
                    let c = &c;
                    async move { self.get(c, "load value", &path).await }
                })),
                async {
                    if top.iter().any(|k| k == "members") {
                        self.children(&c, "load members", &members_path).await
                    } else {
                        Ok(Vec::new())
                    }
                }
            );
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            let member_names = member_names?;
            // Wave 3: the members.
            let member_values = futures::future::join_all(member_names.iter().map(|m| {
                let path = format!("{members_path}/{m}");
                let c = &c;
                async move { self.get(c, "load member", &path).await }
            }))
            .await;
            if !member_names.is_empty() {
                self.round_trips.fetch_add(1, Ordering::Relaxed);
            }
            let mut entries = Vec::new();
            for (k, v) in leaves.iter().zip(values) {
                if let Some((value, stat)) = v? {
                    entries.push(RawEntry {
                        key: k.clone(),
                        version: version_of(k, &stat),
                        session: owner(&stat),
                        value,
                    });
                }
            }
            let mut member_seen = None;
            for (m, v) in member_names.iter().zip(member_values) {
                if let Some((value, stat)) = v? {
                    if self.name.as_deref() == Some(m.as_str()) {
                        member_seen = Some((value.clone(), stat.ephemeral_owner));
                    }
                    let key = format!("{}{m}", keys::MEMBERS);
                    entries.push(RawEntry {
                        version: version_of(&key, &stat),
                        key,
                        session: owner(&stat),
                        value,
                    });
                }
            }
            *lock(&self.member_seen) = member_seen;
            debug!(keys = entries.len(), "loaded");
            Ok(Cluster::from_entries(entries))
        }
        .instrument(span)
        .await
    }
}

/// The version hactl sees for a key: the znode `version` for CAS keys (it is what `set_data` compares), the
/// modification zxid for `leader` and members, which change identity when re-created (their `version` restarts at
/// 0, so a new leader would look unchanged to a watch).
pub(crate) fn version_of(rel: &str, stat: &Stat) -> u64 {
    if rel == keys::LEADER || rel.starts_with(keys::MEMBERS) {
        stat.mzxid as u64
    } else {
        stat.version as u64
    }
}

fn owner(stat: &Stat) -> Option<String> {
    (stat.ephemeral_owner != 0).then(|| stat.ephemeral_owner.to_string())
}
