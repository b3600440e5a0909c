//! The Consul session every key of this node hangs on: its TTL rule, its creation, its renewal.
//!
//! One session per process, named `<scope>-<name>`, created lazily by the first call that needs it. Its TTL is
//! `max(10 s, ttl / 2)` (the crate doc says why, and what it means for the failover bound). A lost session is not an
//! error here: a new one is created, and the caller learns (`Ok(false)`) that every key the old one held is gone.

use std::time::Duration;

use consulrs::api::session::requests::{CreateSessionRequest, RenewSessionRequest};
use tracing::{info, warn};

use crate::error::CallError;
use crate::ConsulDcs;

/// Consul's smallest accepted session TTL (`SessionTTLMin`).
pub const MIN_SESSION_TTL: Duration = Duration::from_secs(10);

/// The session TTL Consul gets for hactl's `ttl`: half of it, as Patroni does, but never under Consul's minimum.
pub fn session_ttl_for(ttl: Duration) -> Duration {
    (ttl / 2).max(MIN_SESSION_TTL)
}

/// How long after its last renewal Consul may still keep a session (and so the keys it holds).
pub fn worst_case_session_lifetime(ttl: Duration) -> Duration {
    session_ttl_for(ttl) * 2
}

impl ConsulDcs {
    /// Creates a session `<scope>-<name>`: `Behavior=delete` (our keys vanish with it), `LockDelay=0s` (a failover
    /// is not stalled 15 s after our death), no node checks (only the TTL decides, as with Patroni's default).
    pub(crate) async fn create_session(&self) -> Result<String, CallError> {
        let Some(name) = &self.name else {
            return Err(CallError::NoSession {
                what: "session create",
            });
        };
        let ttl = self.state().session_ttl;
        let mut b = CreateSessionRequest::builder();
        if let Some(dc) = &self.dc {
            b.dc(dc.clone());
        }
        b.name(format!("{}-{}", self.scope, name))
            .behavior("delete")
            .lock_delay("0s")
            .node_checks(Vec::<String>::new())
            .ttl(format!("{}ms", ttl.as_millis()));
        let ep = b.build().map_err(|e| CallError::Decode {
            what: "session create",
            detail: e.to_string(),
        })?;
        let r = self
            .call(
                "session create",
                consulrs::api::exec_with_result(&self.client, ep),
            )
            .await?;
        let id = r.response.id;
        info!(session = %id, ttl_ms = ttl.as_millis() as u64, "created a Consul session");
        let mut st = self.state();
        st.session = Some(id.clone());
        st.renewed_since_load = true;
        Ok(id)
    }

    /// Our session, created if there is none.
    pub(crate) async fn ensure_session(&self) -> Result<String, CallError> {
        if self.name.is_none() {
            return Err(CallError::NoSession { what: "session" });
        }
        let existing = self.state().session.clone();
        match existing {
            Some(s) => Ok(s),
            None => self.create_session().await,
        }
    }

    /// Renews our session. `Ok(false)`: it was gone, a new one was created (every key it held is lost).
    pub(crate) async fn renew_session(&self) -> Result<bool, CallError> {
        let current = self.state().session.clone();
        let Some(sid) = current else {
            self.create_session().await?;
            // Deliberately replaced: our keys still exist under the old session, and are re-taken by the caller.
            return Ok(std::mem::take(&mut self.state().replaced_for_ttl));
        };
        let mut b = RenewSessionRequest::builder();
        if let Some(dc) = &self.dc {
            b.dc(dc.clone());
        }
        b.uuid(sid.clone());
        let ep = b.build().map_err(|e| CallError::Decode {
            what: "session renew",
            detail: e.to_string(),
        })?;
        match self
            .call(
                "session renew",
                consulrs::api::exec_with_result(&self.client, ep),
            )
            .await
        {
            Ok(_) => {
                self.state().renewed_since_load = true;
                Ok(true)
            }
            Err(CallError::Status { code: 404, .. }) => {
                warn!(session = %sid, "our Consul session expired: creating a new one; our keys are gone");
                {
                    let mut st = self.state();
                    if st.session.as_deref() == Some(sid.as_str()) {
                        st.session = None;
                    }
                }
                self.create_session().await?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
