//! Errors: the crate's own (bad settings) and the mapping of etcd-client's errors onto the trait's
//! [`DcsError`] kinds, because the HA decision has one policy per kind.

use ha_core::dcs::DcsError;

/// Settings that cannot work, found before any network traffic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdDcsError {
    /// `endpoints` is empty.
    #[error("no etcd endpoints configured")]
    NoEndpoints,
    /// An endpoint that is not `host:port` with a numeric port, optionally after `http://` or `https://`.
    #[error("invalid etcd endpoint {0:?}: expected host:port or http://host:port")]
    BadEndpoint(String),
    /// Some endpoints are `https://` and others not: the client takes one TLS configuration for all of them.
    #[error("some etcd endpoints use https and others http: use one protocol for all")]
    MixedSchemes,
    /// [`EtcdTls`](crate::EtcdTls) is given but no endpoint is `https://`: the material would be silently unused.
    #[error("TLS settings (cacert, cert, key) are set but the etcd endpoints use http: use https")]
    TlsWithoutHttps,
    /// The TLS material holds no PEM block of the kind expected (`cacert`, `cert` or `key`, named in the text).
    #[error("etcd TLS: {0}")]
    BadTls(String),
    /// `scope` is empty once its slashes are trimmed: the cluster's keys would sit straight under the namespace.
    #[error("the cluster scope is empty")]
    EmptyScope,
    /// A node's member name is empty or holds a `/` (it is the last part of the key `members/<name>`); a ctl
    /// client needs no name.
    #[error("invalid member name {0:?}: it must be non-empty and contain no '/'")]
    BadName(String),
    /// `password` is set and `username` is not.
    #[error("an etcd password is set without a username")]
    PasswordWithoutUser,
    /// `request_timeout` is zero: every call would time out at once.
    #[error("the request timeout (retry_timeout) must be positive")]
    ZeroTimeout,
}

/// What one failed RPC means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The endpoint did not answer usefully (down, no leader, timed out): try another, then report `Unreachable`.
    Unreachable(String),
    /// Our lease is gone (expired while we were away, or revoked): grant a new one and retry once.
    LeaseNotFound,
    /// The server answered and refused: retrying elsewhere would not help.
    Rejected(String),
}

impl Failure {
    pub(crate) fn into_dcs(self, op: &str) -> DcsError {
        match self {
            Failure::Unreachable(e) => DcsError::Unreachable(format!("{op}: {e}")),
            Failure::LeaseNotFound => DcsError::Unreachable(format!(
                "{op}: the lease was lost and could not be replaced"
            )),
            Failure::Rejected(e) => DcsError::Rejected(format!("{op}: {e}")),
        }
    }
}

/// Sorts an etcd-client error into a [`Failure`]. Unknown kinds count as unreachable: the decision's policy for
/// "nothing known" is the safe one.
pub(crate) fn classify(e: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    use tonic::Code;
    if let Some(f) = tls_failure(e) {
        return f;
    }
    match e {
        E::GRpcStatus(s) => {
            let msg = s.message();
            match s.code() {
                Code::NotFound if msg.contains("lease not found") => Failure::LeaseNotFound,
                Code::InvalidArgument
                | Code::PermissionDenied
                | Code::Unauthenticated
                | Code::FailedPrecondition
                | Code::OutOfRange
                | Code::Unimplemented
                | Code::AlreadyExists
                | Code::NotFound => Failure::Rejected(format!("{:?}: {msg}", s.code())),
                _ => Failure::Unreachable(format!("{:?}: {msg}", s.code())),
            }
        }
        E::LeaseKeepAliveError(m) if m.contains("lease not found") => Failure::LeaseNotFound,
        E::InvalidArgs(m) => Failure::Rejected(m.clone()),
        E::InvalidUri(u) => Failure::Rejected(u.to_string()),
        E::EndpointError(m) => Failure::Rejected(m.clone()),
        other => Failure::Unreachable(other.to_string()),
    }
}

/// A TLS handshake that failed on a setting (our CA does not verify the server, the server refuses our client
/// certificate) fails the same way on every endpoint and at every retry: it is a rejection naming the setting, not
/// an unreachable etcd to wait for.
fn tls_failure(e: &etcd_client::Error) -> Option<Failure> {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    if let etcd_client::Error::GRpcStatus(s) = e {
        text.push_str(": ");
        text.push_str(s.message());
        source = std::error::Error::source(s);
    }
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    tls_failure_in(&text)
}

/// Sorts the text of a failed TLS handshake (etcd-client's, or the probe's) into a rejection naming the setting.
pub(crate) fn tls_failure_in(text: &str) -> Option<Failure> {
    const SERVER_NOT_VERIFIED: [&str; 5] = [
        "invalid peer certificate",
        "UnknownIssuer",
        "NotValidForName",
        "BadSignature",
        "certificate expired",
    ];
    const CLIENT_REFUSED: [&str; 4] = [
        "CertificateRequired",
        "BadCertificate",
        "CertificateUnknown",
        "UnknownCA",
    ];
    if SERVER_NOT_VERIFIED.iter().any(|m| text.contains(m)) {
        return Some(Failure::Rejected(format!(
            "TLS: the etcd server's certificate does not verify against `cacert` (or the system's CAs when \
             `cacert` is not set): {text}"
        )));
    }
    if CLIENT_REFUSED.iter().any(|m| text.contains(m)) {
        return Some(Failure::Rejected(format!(
            "TLS: the etcd server refused our client certificate (`cert`, `key`), or none was set: {text}"
        )));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_not_found_is_recognised_in_both_shapes() {
        let s = tonic::Status::not_found("etcdserver: requested lease not found");
        assert_eq!(
            classify(&etcd_client::Error::GRpcStatus(s)),
            Failure::LeaseNotFound
        );
        let k = etcd_client::Error::LeaseKeepAliveError("lease not found".into());
        assert_eq!(classify(&k), Failure::LeaseNotFound);
    }

    #[test]
    fn no_leader_is_unreachable_and_permission_is_rejected() {
        let s = tonic::Status::unavailable("etcdserver: no leader");
        assert!(matches!(
            classify(&etcd_client::Error::GRpcStatus(s)),
            Failure::Unreachable(_)
        ));
        let s = tonic::Status::permission_denied("etcdserver: permission denied");
        assert!(matches!(
            classify(&etcd_client::Error::GRpcStatus(s)),
            Failure::Rejected(_)
        ));
    }
}
