//! Typed reads and writes of the KV store: plain and compare-and-set writes on `ModifyIndex`, deletes, prefix
//! reads, and `?acquire=<session>` writes (Consul's lock).
//!
//! Consul's CAS is `?cas=<ModifyIndex>` (`cas=0`: only while the key is absent); a lost CAS answers `false`, not an
//! error status, and [`ConsulDcs::put_versioned`] turns it into [`DcsError::Conflict`]. Values travel as base64 in
//! Consul's JSON and are plain text everywhere else ([`decode_value`]).

use base64::Engine;
use consulrs::api::kv::requests::{DeleteKeyRequest, ReadKeyRequest, SetKeyRequest};
use ha_core::dcs::DcsError;
use ha_core::model::codec::keys;
use tracing::warn;

use crate::error::CallError;
use crate::ConsulDcs;

impl ConsulDcs {
    /// `PUT key`, with `?cas=` and `?acquire=` when given. `Ok(false)`: Consul refused it (a lost CAS, a lock held
    /// by another session).
    pub(crate) async fn put(
        &self,
        what: &'static str,
        key: String,
        value: String,
        cas: Option<u64>,
        acquire: Option<String>,
    ) -> Result<bool, CallError> {
        let mut b = SetKeyRequest::builder();
        if let Some(dc) = &self.dc {
            b.dc(dc.clone());
        }
        b.key(key).value(value.into_bytes());
        if let Some(c) = cas {
            b.cas(c);
        }
        if let Some(s) = acquire {
            b.acquire(s);
        }
        let ep = b.build().map_err(|e| CallError::Decode {
            what,
            detail: e.to_string(),
        })?;
        let r = self
            .call(what, consulrs::api::exec_with_result(&self.client, ep))
            .await?;
        Ok(r.response)
    }

    /// `DELETE key` (a whole prefix with `recurse`), with `?cas=` when given. `Ok(false)`: a lost CAS.
    pub(crate) async fn delete(
        &self,
        what: &'static str,
        key: String,
        cas: Option<u64>,
        recurse: bool,
    ) -> Result<bool, CallError> {
        let mut b = DeleteKeyRequest::builder();
        if let Some(dc) = &self.dc {
            b.dc(dc.clone());
        }
        b.key(key);
        if let Some(c) = cas {
            b.cas(c);
        }
        if recurse {
            b.recurse(true);
        }
        let ep = b.build().map_err(|e| CallError::Decode {
            what,
            detail: e.to_string(),
        })?;
        let r = self
            .call(what, consulrs::api::exec_with_result(&self.client, ep))
            .await?;
        Ok(r.response)
    }

    /// Reads keys (one, or a prefix with `recurse`). `Ok(None)` on 404: nothing there.
    pub(crate) async fn read(
        &self,
        what: &'static str,
        key: String,
        recurse: bool,
    ) -> Result<Option<(Vec<consulrs::api::kv::common::KVPair>, Option<u64>)>, CallError> {
        let mut b = ReadKeyRequest::builder();
        if let Some(dc) = &self.dc {
            b.dc(dc.clone());
        }
        b.key(key);
        if recurse {
            b.recurse(true);
        }
        match self.consistency {
            Some(crate::settings::Consistency::Consistent) => {
                b.consistent(true);
            }
            Some(crate::settings::Consistency::Stale) => {
                b.stale(true);
            }
            None => {}
        }
        let ep = b.build().map_err(|e| CallError::Decode {
            what,
            detail: e.to_string(),
        })?;
        match self
            .call(what, consulrs::api::exec_with_result(&self.client, ep))
            .await
        {
            Ok(r) => Ok(Some((
                r.response,
                r.index.and_then(|i| i.trim().parse().ok()),
            ))),
            Err(CallError::Status { code: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT key?acquire=<session>`, with one retry on a new session if ours was gone (as Patroni does).
    pub(crate) async fn put_acquire(
        &self,
        what: &'static str,
        key: String,
        value: String,
    ) -> Result<bool, CallError> {
        let sid = self.ensure_session().await?;
        match self
            .put(what, key.clone(), value.clone(), None, Some(sid.clone()))
            .await
        {
            Err(CallError::SessionLost { .. }) => {
                warn!(session = %sid, "our Consul session disappeared: retrying with a new one");
                {
                    let mut st = self.state();
                    if st.session.as_deref() == Some(sid.as_str()) {
                        st.session = None;
                    }
                }
                let sid = self.create_session().await?;
                self.put(what, key, value, None, Some(sid)).await
            }
            other => other,
        }
    }

    /// Plain or compare-and-set write; a lost CAS is [`DcsError::Conflict`].
    pub(crate) async fn put_versioned(
        &self,
        what: &'static str,
        rel: &str,
        value: String,
        version: Option<u64>,
    ) -> Result<(), DcsError> {
        if self.put(what, self.key(rel), value, version, None).await? {
            Ok(())
        } else {
            Err(DcsError::Conflict(format!(
                "{what}: version {version:?} is stale"
            )))
        }
    }

    /// The leader key as it is now: (value, ModifyIndex, session), `None` when absent.
    pub(crate) async fn read_leader(
        &self,
    ) -> Result<Option<(String, u64, Option<String>)>, CallError> {
        let got = self
            .read("read leader", self.key(keys::LEADER), false)
            .await?;
        Ok(got.and_then(|(pairs, _)| {
            pairs
                .into_iter()
                .next()
                .map(|p| (decode_value(p.value), p.modify_index, p.session))
        }))
    }
}

/// A KV value as text. Patroni writes UTF-8; anything else is passed on lossily and the decoder rejects it.
pub(crate) fn decode_value(v: Option<consulrs::api::kv::common::Base64String>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    // Base64String's field is private; its serde form is the plain base64 text.
    let b64 = serde_json::to_value(&v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default();
    match base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            warn!(error = %e, "Consul returned a value that is not base64; treating it as empty");
            String::new()
        }
    }
}
