//! Plain requests on the cluster's keys: put, delete, the linearizable range of the prefix, transactions (the
//! initialize race on `create_revision == 0`), and the compare-and-set on a key's `mod_revision` that `config`,
//! `failover`, `sync` and `history` use. Every write's answer is recorded in `seen`, so the next load never shows
//! an older state than one etcd already told us of.

use std::collections::BTreeMap;

use etcd_client::{Client, Compare, CompareOp, DeleteOptions, GetOptions, KeyValue, Txn, TxnOp};
use ha_core::dcs::DcsError;
use ha_core::model::codec::keys;

use crate::cache::CachedKv;
use crate::dcs::Inner;
use crate::error::Failure;

/// The store revision an answer was taken at (0 when it has no header).
pub(crate) fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, |h| h.revision())
}

/// A key's version as hactl sees it: its `mod_revision`.
pub(crate) fn version_of(kv: &KeyValue) -> u64 {
    kv.mod_revision().max(0) as u64
}

/// etcd's bytes as text; a byte that is not UTF-8 is replaced, not an error.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Inner {
    pub(crate) async fn put(
        &self,
        op: &'static str,
        key: String,
        value: String,
    ) -> Result<i64, DcsError> {
        let resp = self
            .conn
            .call(op, |mut c: Client| {
                let (k, v) = (key.clone(), value.clone());
                async move { c.put(k, v, None).await }
            })
            .await
            .map_err(|f| f.into_dcs(op))?;
        let revision = revision_of(resp.header());
        self.wrote(revision);
        Ok(revision)
    }

    pub(crate) async fn delete(
        &self,
        op: &'static str,
        key: String,
        prefix: bool,
    ) -> Result<(), DcsError> {
        let resp = self
            .conn
            .call(op, |mut c: Client| {
                let k = key.clone();
                let opts = prefix.then(|| DeleteOptions::new().with_prefix());
                async move { c.delete(k, opts).await }
            })
            .await
            .map_err(|f| f.into_dcs(op))?;
        let revision = revision_of(resp.header());
        if resp.deleted() > 0 {
            self.wrote(revision);
        } else {
            self.answered(revision);
        }
        Ok(())
    }

    /// A transaction; every one of ours writes in its success branch only, which tells whether an event follows.
    pub(crate) async fn txn(
        &self,
        op: &'static str,
        txn: Txn,
    ) -> Result<etcd_client::TxnResponse, Failure> {
        let resp = self
            .conn
            .call(op, |mut c: Client| {
                let t = txn.clone();
                async move { c.txn(t).await }
            })
            .await?;
        let revision = revision_of(resp.header());
        if resp.succeeded() {
            self.wrote(revision);
        } else {
            self.answered(revision);
        }
        Ok(resp)
    }

    /// `put` unconditionally (`version: None`) or as a compare-and-set on the key's mod_revision.
    pub(crate) async fn write_versioned(
        &self,
        op: &'static str,
        rel: &str,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        let key = self.keys.key(rel);
        let Some(v) = version else {
            return self.put(op, key, value).await.map(|_| ());
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(
                key.clone(),
                CompareOp::Equal,
                v as i64,
            )])
            .and_then([TxnOp::put(key.clone(), value, None)]);
        let resp = self.txn(op, txn).await.map_err(|f| f.into_dcs(op))?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(DcsError::Conflict(format!(
                "{op}: {key} is no longer at version {v}"
            )))
        }
    }

    /// The whole prefix, read linearizably (not Patroni's serializable): the read goes through the etcd leader, so
    /// a member that lags cannot show this node a leader key that is already gone. It is one round trip.
    pub(crate) async fn range_prefix(&self) -> Result<(BTreeMap<String, CachedKv>, i64), DcsError> {
        let prefix = self.keys.prefix().to_string();
        let mut resp = self
            .conn
            .call("load", |mut c: Client| {
                let p = prefix.clone();
                async move { c.get(p, Some(GetOptions::new().with_prefix())).await }
            })
            .await
            .map_err(|f| f.into_dcs("load"))?;
        let revision = revision_of(resp.header());
        let entries = resp
            .take_kvs()
            .into_iter()
            .map(|kv| (text(kv.key()), CachedKv::of(&kv)))
            .collect();
        Ok((entries, revision))
    }

    pub(crate) async fn do_initialize_race(&self, value: &str) -> Result<bool, DcsError> {
        let key = self.keys.key(keys::INITIALIZE);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self
            .txn("initialize_race", txn)
            .await
            .map_err(|f| f.into_dcs("initialize_race"))?;
        Ok(resp.succeeded())
    }

    pub(crate) async fn do_delete_cluster(&self) -> Result<(), DcsError> {
        self.delete("delete_cluster", self.keys.prefix().to_string(), true)
            .await?;
        let mut seen = self.seen();
        seen.leader = None;
        seen.member = None;
        Ok(())
    }
}
