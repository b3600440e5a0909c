//! What can go wrong on one Consul call, before it is folded into ha-core's [`DcsError`] taxonomy.

use std::time::Duration;

use ha_core::dcs::DcsError;

/// One failed Consul call. Kept apart from [`DcsError`] because one case, [`CallError::SessionLost`], is handled
/// inside this crate (a new session is created) and never reaches the HA decision as such.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the deadline (consulrs sets no timeout of its own, so every call is wrapped).
    #[error("{what}: no answer from Consul within {timeout:?}")]
    Timeout {
        /// The call, e.g. `acquire leader` or `session renew`.
        what: &'static str,
        /// The deadline that ran out: `retry_timeout`, or for the watch's first read the smaller of it and the
        /// time left to wait.
        timeout: Duration,
    },
    /// Connection refused, reset, DNS... nothing reached Consul or nothing came back.
    #[error("{what}: transport error: {detail}")]
    Transport {
        /// The call, e.g. `acquire leader` or `session renew`.
        what: &'static str,
        /// The HTTP client's error with its causes, e.g. `connection refused`.
        detail: String,
    },
    /// Consul answered with an HTTP error status.
    #[error("{what}: Consul answered HTTP {code}: {body}")]
    Status {
        /// The call, e.g. `acquire leader` or `session renew`.
        what: &'static str,
        /// The HTTP status, e.g. 403 (ACL denied) or 500. A 404 that means something (an absent key on a read, an
        /// expired session on a renew) is handled inside this crate, not returned.
        code: u16,
        /// The body Consul sent with it, which says why.
        body: String,
    },
    /// Consul does not know our session any more (expired after 2 × its TTL, or destroyed).
    #[error("{what}: our Consul session is gone")]
    SessionLost {
        /// The call, e.g. `acquire leader` or `session renew`.
        what: &'static str,
    },
    /// Consul answered 200 with a body we could not read.
    #[error("{what}: unreadable answer: {detail}")]
    Decode {
        /// The call, e.g. `acquire leader` or `session renew`.
        what: &'static str,
        /// The parse error and the body; or the error that kept the request from being built.
        detail: String,
    },
    /// This client was built without a session (`ConsulDcs::ctl`) and cannot hold keys.
    #[error("{what}: a ctl client has no session and cannot hold the leader or member keys")]
    NoSession {
        /// The call, e.g. `acquire leader` or `session renew`.
        what: &'static str,
    },
}

impl From<CallError> for DcsError {
    fn from(e: CallError) -> DcsError {
        let msg = e.to_string();
        match e {
            CallError::Timeout { .. } | CallError::Transport { .. } | CallError::Decode { .. } => {
                DcsError::Unreachable(msg)
            }
            // 5xx: no cluster leader, raft not ready... the same policy as an outage. 4xx: Consul refused us.
            CallError::Status { code, .. } if code >= 500 => DcsError::Unreachable(msg),
            CallError::Status { .. } | CallError::NoSession { .. } => DcsError::Rejected(msg),
            // Reaching the decision means the retry with a new session failed too: the keys are not ours.
            CallError::SessionLost { .. } => DcsError::Conflict(msg),
        }
    }
}

/// Classifies a consulrs error. Consul answers `500 invalid session "<id>"` to an acquire with a dead session.
pub(crate) fn from_consulrs(what: &'static str, e: consulrs::error::ClientError) -> CallError {
    use consulrs::error::ClientError as C;
    match e {
        C::APIError { code, message } => {
            let body = message.unwrap_or_default();
            if body.to_ascii_lowercase().contains("invalid session") {
                CallError::SessionLost { what }
            } else {
                CallError::Status { what, code, body }
            }
        }
        C::RestClientError { source } => {
            use rustify_errors::ClientError as R;
            match source {
                R::ServerResponseError { code, content } => {
                    let body = content.unwrap_or_default();
                    if body.to_ascii_lowercase().contains("invalid session") {
                        CallError::SessionLost { what }
                    } else {
                        CallError::Status { what, code, body }
                    }
                }
                R::ResponseParseError { source, content } => CallError::Decode {
                    what,
                    detail: format!("{source}: {}", content.unwrap_or_default()),
                },
                other => CallError::Transport {
                    what,
                    detail: format!("{other}: {}", error_chain(&other)),
                },
            }
        }
        other => CallError::Decode {
            what,
            detail: other.to_string(),
        },
    }
}

/// rustify wraps reqwest's error; its Display alone says only "Error sending HTTP request".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

/// rustify's error type, reached through consulrs (which does not re-export it).
mod rustify_errors {
    pub use rustify::errors::ClientError;
}
