//! The lease (one per process, TTL = ttl) and the keys put with it: the leader key (acquire, renew, release) and
//! this node's member key (touch, delete).
//!
//! The lease is the liveness: keepalives renew it, and when the process stops they stop, the lease expires and etcd
//! deletes both keys. A lease etcd no longer knows (expired while we were cut off) is replaced by a new one, and a
//! write refused with `LeaseNotFound` is tried once more on it, as Patroni's etcd3 does.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use ha_core::dcs::DcsError;
use ha_core::model::codec::{keys, to_json};
use ha_core::model::MemberData;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::dcs::{Inner, Mode};
use crate::error::Failure;
use crate::kv::{revision_of, text};

/// Patroni's default ttl (30 s): the lease length until the driver calls `set_ttl` with the configured one.
pub(crate) const DEFAULT_TTL_S: i64 = 30;

/// A lease refreshed less than this long ago is not refreshed again before a member write: it saves a round trip
/// when renew and touch_member follow each other. An acquire or a renewal always refreshes it: the driver counts its
/// lock from the moment that request was *sent*, while etcd counts the lease from its last keepalive, and reusing
/// a 500 ms old lease would eat half of the driver's 1 s safety margin (#11 hole 6).
const LEASE_FRESH: Duration = Duration::from_millis(500);

/// Our lease: which one, how long, when it was last known alive.
#[derive(Debug)]
pub(crate) struct LeaseState {
    pub(crate) id: Option<i64>,
    pub(crate) ttl_s: i64,
    /// When the request of the last successful grant or keepalive was sent (etcd's expiry is later than this + ttl).
    pub(crate) refreshed_at: Option<Instant>,
}

impl Inner {
    async fn grant(&self, st: &mut LeaseState) -> Result<i64, DcsError> {
        let ttl = st.ttl_s;
        let sent = Instant::now();
        let resp = self
            .conn
            .call("lease_grant", |mut c: Client| async move {
                c.lease_grant(ttl, None).await
            })
            .await
            .map_err(|f| f.into_dcs("lease_grant"))?;
        info!(lease = resp.id(), ttl_s = resp.ttl(), "granted a new lease");
        st.id = Some(resp.id());
        st.refreshed_at = Some(sent);
        self.seen().lease_alive_at = Some(sent);
        Ok(resp.id())
    }

    /// Makes sure we hold a live lease refreshed less than `max_age` ago (`Duration::ZERO`: refresh now). A lease
    /// etcd no longer knows (expired while we were cut off) is replaced by a new one.
    async fn fresh_lease(&self, max_age: Duration) -> Result<i64, DcsError> {
        let mut st = self.lease.lock().await;
        let Some(id) = st.id else {
            return self.grant(&mut st).await;
        };
        if let Some(at) = st.refreshed_at {
            if !max_age.is_zero() && at.elapsed() < max_age {
                return Ok(id);
            }
        }
        let sent = Instant::now();
        let r = self
            .conn
            .call("lease_keepalive", |mut c: Client| async move {
                c.lease_keep_alive(id).await.map(|_| ())
            })
            .await;
        match r {
            Ok(()) => {
                st.refreshed_at = Some(sent);
                self.seen().lease_alive_at = Some(sent);
                Ok(id)
            }
            Err(Failure::LeaseNotFound) => {
                warn!(lease = id, "our lease expired; granting a new one");
                st.id = None;
                self.seen().lease_alive_at = None;
                self.grant(&mut st).await
            }
            Err(f) => Err(f.into_dcs("lease_keepalive")),
        }
    }

    /// Forgets `id` if it is still our lease, so the next use grants a new one.
    async fn drop_lease(&self, id: i64) {
        let mut st = self.lease.lock().await;
        if st.id == Some(id) {
            st.id = None;
            st.refreshed_at = None;
            self.seen().lease_alive_at = None;
        }
    }

    /// Puts `key` with our lease; if etcd no longer knows the lease, grants a new one and tries once more
    /// (Patroni's etcd3 does the same on `LeaseNotFound`).
    async fn put_leased(&self, op: &'static str, key: &str, value: &str) -> Result<i64, DcsError> {
        for attempt in 0..2 {
            let lease = self.fresh_lease(LEASE_FRESH).await?;
            let r = self
                .conn
                .call(op, |mut c: Client| {
                    let (k, v) = (key.to_string(), value.to_string());
                    async move { c.put(k, v, Some(PutOptions::new().with_lease(lease))).await }
                })
                .await;
            match r {
                Ok(resp) => {
                    let revision = revision_of(resp.header());
                    self.wrote(revision);
                    return Ok(revision);
                }
                Err(Failure::LeaseNotFound) if attempt == 0 => self.drop_lease(lease).await,
                Err(f) => return Err(f.into_dcs(op)),
            }
        }
        Err(Failure::LeaseNotFound.into_dcs(op))
    }

    pub(crate) async fn do_set_ttl(&self, ttl: Duration) -> Result<(), DcsError> {
        if self.mode == Mode::Ctl {
            return Ok(());
        }
        let ttl_s = (ttl.as_secs_f64().ceil() as i64).max(1);
        let mut st = self.lease.lock().await;
        if st.ttl_s != ttl_s {
            // Patroni's etcd3 does the same: the next use grants a lease of the new length; the keys on the old one
            // move to the new one with the next renew and touch_member; the old lease is left to expire.
            info!(
                from_s = st.ttl_s,
                to_s = ttl_s,
                "ttl changed: a new lease will be granted"
            );
            st.ttl_s = ttl_s;
            st.id = None;
            st.refreshed_at = None;
            let mut seen = self.seen();
            seen.ttl = Duration::from_secs(ttl_s as u64);
            seen.lease_alive_at = None;
        }
        Ok(())
    }

    pub(crate) async fn do_acquire(&self, name: &str) -> Result<bool, DcsError> {
        let key = self.keys.key(keys::LEADER);
        for attempt in 0..2 {
            // Always a keepalive: the driver counts the lock from this call's send time.
            let lease = self.fresh_lease(Duration::ZERO).await?;
            let txn = Txn::new()
                .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(
                    key.clone(),
                    name,
                    Some(PutOptions::new().with_lease(lease)),
                )])
                .or_else([TxnOp::get(key.clone(), None)]);
            match self.txn("acquire_leader", txn).await {
                Ok(resp) => {
                    let revision = revision_of(resp.header());
                    let mut seen = self.seen();
                    if resp.succeeded() {
                        seen.own_leader_write(revision);
                        seen.leader = Some((name.to_string(), lease));
                        return Ok(true);
                    }
                    let holder = resp.op_responses().into_iter().find_map(|r| match r {
                        TxnOpResponse::Get(g) => {
                            g.kvs().first().map(|kv| (text(kv.value()), kv.lease()))
                        }
                        _ => None,
                    });
                    // Our own earlier attempt may have landed although its answer was lost (a timeout, then the
                    // same request again on another endpoint): the key with our name on our lease is ours.
                    let ours = holder.as_ref() == Some(&(name.to_string(), lease));
                    seen.leader = holder;
                    return Ok(ours);
                }
                Err(Failure::LeaseNotFound) if attempt == 0 => self.drop_lease(lease).await,
                Err(f) => return Err(f.into_dcs("acquire_leader")),
            }
        }
        Err(Failure::LeaseNotFound.into_dcs("acquire_leader"))
    }

    pub(crate) async fn do_renew(&self, name: &str) -> Result<bool, DcsError> {
        let key = self.keys.key(keys::LEADER);
        for attempt in 0..2 {
            // Always a keepalive: the driver counts the lock from this call, so the lease must be refreshed now.
            let lease = self.fresh_lease(Duration::ZERO).await?;
            if self.seen().leader.as_ref() == Some(&(name.to_string(), lease)) {
                return Ok(true);
            }
            // The key is not on our current lease (a ttl change, a restart, a lost lease): move it to ours, but only
            // if it still names us. An absent key is not re-created: the lock was lost.
            let txn = Txn::new()
                .when([Compare::value(key.clone(), CompareOp::Equal, name)])
                .and_then([TxnOp::put(
                    key.clone(),
                    name,
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            match self.txn("renew_leader", txn).await {
                Ok(resp) => {
                    let mut seen = self.seen();
                    if resp.succeeded() {
                        debug!(lease, "moved the leader key to our lease");
                        seen.own_leader_write(revision_of(resp.header()));
                        seen.leader = Some((name.to_string(), lease));
                        return Ok(true);
                    }
                    seen.leader = None;
                    return Ok(false);
                }
                Err(Failure::LeaseNotFound) if attempt == 0 => self.drop_lease(lease).await,
                Err(f) => return Err(f.into_dcs("renew_leader")),
            }
        }
        Err(Failure::LeaseNotFound.into_dcs("renew_leader"))
    }

    pub(crate) async fn do_release(&self, name: &str) -> Result<(), DcsError> {
        let key = self.keys.key(keys::LEADER);
        let txn = Txn::new()
            .when([Compare::value(key.clone(), CompareOp::Equal, name)])
            .and_then([TxnOp::delete(key, None)]);
        let resp = self
            .txn("release_leader", txn)
            .await
            .map_err(|f| f.into_dcs("release_leader"))?;
        let mut seen = self.seen();
        if resp.succeeded() {
            seen.own_leader_write(revision_of(resp.header()));
            seen.leader = None;
        }
        Ok(())
    }

    pub(crate) async fn do_touch_member(
        &self,
        name: &str,
        data: &MemberData,
    ) -> Result<(), DcsError> {
        let value = to_json(data);
        // Keeps the lease alive on every loop (a replica has no other keepalive), unless renew just did.
        let lease = self.fresh_lease(LEASE_FRESH).await?;
        let is_me = self.mode
            == Mode::Node {
                name: name.to_string(),
            };
        if is_me && self.seen().member.as_ref() == Some(&(value.clone(), lease)) {
            // Unchanged and on our live lease: Patroni skips the write too.
            return Ok(());
        }
        let key = self.keys.member(name);
        self.put_leased("touch_member", &key, &value).await?;
        if is_me {
            let lease = self.lease.lock().await.id.unwrap_or(0);
            self.seen().member = Some((value, lease));
        }
        Ok(())
    }

    pub(crate) async fn do_delete_member(&self, name: &str) -> Result<(), DcsError> {
        self.delete("delete_member", self.keys.member(name), false)
            .await?;
        if self.mode
            == (Mode::Node {
                name: name.to_string(),
            })
        {
            self.seen().member = None;
        }
        Ok(())
    }
}
