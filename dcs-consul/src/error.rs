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
        what: &'static str,
        timeout: Duration,
    },
    /// Connection refused, reset, DNS... nothing reached Consul or nothing came back.
    #[error("{what}: transport error: {detail}")]
    Transport { what: &'static str, detail: String },
    /// Consul answered with an HTTP error status.
    #[error("{what}: Consul answered HTTP {code}: {body}")]
    Status {
        what: &'static str,
        code: u16,
        body: String,
    },
    /// Consul does not know our session any more (expired after 2 × its TTL, or destroyed).
    #[error("{what}: our Consul session is gone")]
    SessionLost { what: &'static str },
    /// Consul answered 200 with a body we could not read.
    #[error("{what}: unreadable answer: {detail}")]
    Decode { what: &'static str, detail: String },
    /// This client was built without a session (`ConsulDcs::ctl`) and cannot hold keys.
    #[error("{what}: a ctl client has no session and cannot hold the leader or member keys")]
    NoSession { what: &'static str },
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
