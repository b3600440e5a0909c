//! Who may change something through the REST API: Patroni's `check_access`, run on every POST, PUT, PATCH and
//! DELETE, in Patroni's order and with its answers:
//! 1. the peer's address must be in `restapi.allowlist`, or (with `allowlist_include_members`) be a member's REST
//!    address (not asked for `POST /failsafe`, as in Patroni) → else 403 `Access is denied`;
//! 2. over HTTPS with `verify_client: optional` or `required`, the client must have shown a certificate → else 403
//!    `client certificate required`;
//! 3. with `restapi.authentication`, the Basic credentials must match, compared in constant time → else 401 with
//!    no hint of what was wrong beyond Patroni's two texts.
//!
//! A request whose peer is unknown (a router driven without the accept loop, as tests do) is outside any allowlist.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::{header, HeaderMap};
use axum::response::Response;
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use super::server::ConnInfo;
use super::{text, unauthorized, ApiContext};
use crate::config::BasicAuth;

/// The REST API's access rules beyond authentication.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// `restapi.allowlist`, resolved at start; empty: no address check.
    pub allowlist: Vec<IpNet>,
    /// `restapi.allowlist_include_members`: members' REST addresses are allowed too (and turn the check on).
    pub include_members: bool,
    /// HTTPS with `verify_client: optional` or `required`.
    pub client_cert_required: bool,
}

/// Why an allowlist entry was refused.
#[derive(Debug, thiserror::Error)]
#[error("`restapi.allowlist`: `{entry}` is neither an IP network, an address nor a resolvable host name: {why}")]
pub struct AllowlistError {
    pub entry: String,
    pub why: String,
}

impl AccessPolicy {
    /// Resolves `restapi.allowlist` as Patroni does (a CIDR network, an address, or a host name resolved to every
    /// address it has), except that an entry that cannot be read refuses the start: Patroni logs and drops it,
    /// which can leave an empty list, and an empty list lets everyone in.
    pub fn resolve_allowlist(entries: &[String]) -> Result<Vec<IpNet>, AllowlistError> {
        let mut nets = Vec::new();
        for entry in entries {
            let e = entry.trim();
            if e.contains('/') {
                let net = IpNet::from_str(e).map_err(|err| AllowlistError {
                    entry: entry.clone(),
                    why: err.to_string(),
                })?;
                nets.push(net.trunc());
            } else if let Ok(ip) = IpAddr::from_str(e) {
                nets.push(IpNet::from(ip));
            } else {
                use std::net::ToSocketAddrs;
                let addrs: Vec<_> = (e, 8080)
                    .to_socket_addrs()
                    .map_err(|err| AllowlistError {
                        entry: entry.clone(),
                        why: err.to_string(),
                    })?
                    .collect();
                if addrs.is_empty() {
                    return Err(AllowlistError {
                        entry: entry.clone(),
                        why: "no address".into(),
                    });
                }
                nets.extend(addrs.into_iter().map(|a| IpNet::from(a.ip())));
            }
        }
        Ok(nets)
    }
}

/// Runs the three checks; `Some(response)` refuses the request.
pub(crate) async fn check_access(
    ctx: &ApiContext,
    conn: Option<ConnInfo>,
    headers: &HeaderMap,
    check_members: bool,
) -> Option<Response> {
    let policy = &ctx.access;
    let check_members = check_members && policy.include_members;
    if !policy.allowlist.is_empty() || check_members {
        let allowed = match conn {
            None => false,
            Some(c) => {
                let ip = canonical(c.peer.ip());
                policy.allowlist.iter().any(|n| n.contains(&ip))
                    || (check_members && member_ips(ctx).await.contains(&ip))
            }
        };
        if !allowed {
            return Some(text(403, "Access is denied"));
        }
    }
    if policy.client_cert_required && !conn.is_some_and(|c| c.https && c.client_cert) {
        return Some(text(403, "client certificate required"));
    }
    check_auth(ctx.auth.as_ref(), headers)
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The addresses of every member's REST API, from the latest loop's view of the DCS.
async fn member_ips(ctx: &ApiContext) -> Vec<IpAddr> {
    let Some(report) = ctx.state.latest() else {
        return Vec::new();
    };
    let Ok(cluster) = &report.cluster else {
        return Vec::new();
    };
    let mut ips = Vec::new();
    for m in &cluster.members {
        let Some(url) = m.data.api_url.as_deref() else {
            continue;
        };
        let Ok(u) = reqwest::Url::parse(url) else {
            continue;
        };
        let Some(host) = u.host_str() else { continue };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = IpAddr::from_str(host) {
            ips.push(canonical(ip));
        } else if let Ok(addrs) =
            tokio::net::lookup_host((host, u.port_or_known_default().unwrap_or(8008))).await
        {
            ips.extend(addrs.map(|a| canonical(a.ip())));
        }
    }
    ips
}

/// Patroni's `check_auth_header`: Basic credentials against `restapi.authentication`, in constant time.
fn check_auth(auth: Option<&BasicAuth>, headers: &HeaderMap) -> Option<Response> {
    use base64::Engine;
    let auth = auth?;
    let Some(given) = headers.get(header::AUTHORIZATION) else {
        return Some(unauthorized("no auth header received"));
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", auth.username, auth.password))
    );
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        None
    } else {
        Some(unauthorized("not authenticated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_entries_are_networks_addresses_or_host_names() {
        let nets = AccessPolicy::resolve_allowlist(&[
            "10.1.2.3/8".into(),
            "127.0.0.1".into(),
            "localhost".into(),
        ])
        .unwrap();
        assert_eq!(nets[0].to_string(), "10.0.0.0/8");
        assert!(nets[1].contains(&IpAddr::from([127, 0, 0, 1])));
        assert!(nets.len() >= 3);
    }

    #[test]
    fn an_unreadable_allowlist_entry_refuses_instead_of_opening_the_api() {
        let e = AccessPolicy::resolve_allowlist(&["10.0.0.0/99".into()]).unwrap_err();
        assert!(e.to_string().contains("restapi.allowlist"), "{e}");
        assert!(AccessPolicy::resolve_allowlist(&["no-such-host.invalid".into()]).is_err());
    }

    #[test]
    fn a_v4_mapped_peer_matches_its_v4_network() {
        let ip: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(canonical(ip), IpAddr::from([127, 0, 0, 1]));
    }
}
