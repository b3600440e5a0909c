//! What can go wrong on one ZooKeeper call, before it is folded into ha-core's [`DcsError`] taxonomy.

use std::time::Duration;

use ha_core::dcs::DcsError;
use zookeeper_async::ZkError;

/// One failed ZooKeeper call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the deadline (the client queues requests while it reconnects, so every call is wrapped).
    #[error("{what}: no answer from ZooKeeper within {timeout:?}")]
    Timeout {
        /// The call, in words (`"acquire leader"`).
        what: &'static str,
        /// The deadline it had (`retry_timeout`).
        timeout: Duration,
    },
    /// The server answered with an error code.
    #[error("{what}: ZooKeeper error {code:?}")]
    Zk {
        /// The call, in words.
        what: &'static str,
        /// ZooKeeper's error code.
        code: ZkError,
    },
    /// Our session is gone: every ephemeral key we held went with it.
    #[error("{what}: our ZooKeeper session expired")]
    SessionLost {
        /// The call, in words.
        what: &'static str,
    },
    /// The server granted a shorter session than the ttl (its `maxSessionTimeout` caps the request): a frozen
    /// leader's key would vanish, and another node promote, before the leader's own lease ends. Refused, so the
    /// node never leads on a lock the server may drop early.
    #[error(
        "{what}: ZooKeeper granted a session timeout of {negotiated:?}, shorter than the ttl ({ttl:?}): a frozen \
         leader's key would vanish before its lease ends; raise the server's `maxSessionTimeout` to at least the \
         ttl, or lower `ttl`"
    )]
    SessionTooShort {
        /// The call, in words.
        what: &'static str,
        /// The session timeout the server granted.
        negotiated: Duration,
        /// The ttl the driver counts its lease on.
        ttl: Duration,
    },
    /// This client was built without a node name (`ZkDcs::ctl`) and cannot hold keys.
    #[error("{what}: a ctl client cannot hold the leader or member keys")]
    NoSession {
        /// The call, in words.
        what: &'static str,
    },
}

impl CallError {
    pub(crate) fn code(&self) -> Option<ZkError> {
        match self {
            CallError::Zk { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<CallError> for DcsError {
    fn from(e: CallError) -> DcsError {
        let msg = e.to_string();
        match e {
            CallError::Timeout { .. } | CallError::SessionLost { .. } => DcsError::Unreachable(msg),
            CallError::Zk { code, .. } => match code {
                ZkError::ConnectionLoss
                | ZkError::OperationTimeout
                | ZkError::SessionExpired
                | ZkError::SessionMoved
                | ZkError::SystemError
                | ZkError::RuntimeInconsistency
                | ZkError::DataInconsistency
                | ZkError::MarshallingError => DcsError::Unreachable(msg),
                ZkError::BadVersion | ZkError::NodeExists | ZkError::NotEmpty => {
                    DcsError::Conflict(msg)
                }
                _ => DcsError::Rejected(msg),
            },
            CallError::NoSession { .. } | CallError::SessionTooShort { .. } => {
                DcsError::Rejected(msg)
            }
        }
    }
}
