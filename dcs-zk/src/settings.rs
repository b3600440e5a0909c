//! Connection settings: which ZooKeeper ensemble, which cluster (namespace and scope), which node, the two
//! durations that bound everything else (the session's `ttl`, every call's `retry_timeout`), and who we are to
//! ZooKeeper: the credentials sent on every connection (`auth_data`) and the ACL every znode we create gets
//! (`set_acls`).

use std::time::Duration;

pub use zookeeper_async::{Acl, Permission};

/// Where and who.
#[derive(Debug, Clone)]
pub struct ZkSettings {
    /// `host:port[,host:port...]`
    pub hosts: String,
    /// Patroni's `namespace` (default `service`).
    pub namespace: String,
    /// Patroni's `scope`: the cluster name.
    pub scope: String,
    /// This node's name.
    pub name: String,
    /// hactl's ttl: the session timeout, and the local lease of our ephemerals.
    pub ttl: Duration,
    /// Deadline of every call.
    pub retry_timeout: Duration,
    /// Patroni's `auth_data`: `(scheme, credential)` pairs added to every connection (e.g. `("digest",
    /// "user:password")`), before any other request and again after every reconnection.
    pub auth: Vec<(String, String)>,
    /// Patroni's `set_acls`: the ACL of every znode this client creates. Empty: open to all (`world:anyone`,
    /// ZooKeeper's and Patroni's default).
    pub acl: Vec<Acl>,
}

impl ZkSettings {
    /// Settings with no credentials and open ACLs.
    pub fn new(
        hosts: impl Into<String>,
        namespace: impl Into<String>,
        scope: impl Into<String>,
        name: impl Into<String>,
        ttl: Duration,
        retry_timeout: Duration,
    ) -> ZkSettings {
        ZkSettings {
            hosts: hosts.into(),
            namespace: namespace.into(),
            scope: scope.into(),
            name: name.into(),
            ttl,
            retry_timeout,
            auth: Vec::new(),
            acl: Vec::new(),
        }
    }

    /// The ACL for new znodes.
    pub(crate) fn create_acl(&self) -> Vec<Acl> {
        if self.acl.is_empty() {
            Acl::open_unsafe().clone()
        } else {
            self.acl.clone()
        }
    }
}

/// One `set_acls` entry the way Patroni reads it: `principal` is `scheme:id` (`digest:user:<base64 sha1>`,
/// `ip:10.0.0.0/8`, `world:anyone`, `sasl:name`), or a bare x509 distinguished name; `permissions` are `READ`,
/// `WRITE`, `CREATE`, `DELETE`, `ADMIN` or `ALL`, in any case. Patroni skips a permission it does not know; here it
/// is an error, since a misspelt permission would silently withhold a right (or leave one granted that was meant to
/// go).
pub fn acl_from_patroni(principal: &str, permissions: &[String]) -> Result<Acl, String> {
    let (scheme, id) = principal.split_once(':').unwrap_or(("x509", principal));
    // `auth:` (the creator's own identities) is the one scheme whose id may be empty.
    if id.is_empty() && scheme != "auth" {
        return Err(format!("principal {principal:?} has no id"));
    }
    let mut perms = Permission::NONE;
    for p in permissions {
        perms = perms
            | match p.to_ascii_uppercase().as_str() {
                "READ" => Permission::READ,
                "WRITE" => Permission::WRITE,
                "CREATE" => Permission::CREATE,
                "DELETE" => Permission::DELETE,
                "ADMIN" => Permission::ADMIN,
                "ALL" => Permission::ALL,
                other => {
                    return Err(format!(
                        "unknown permission {other:?} (READ, WRITE, CREATE, DELETE, ADMIN or ALL)"
                    ))
                }
            };
    }
    if perms == Permission::NONE {
        return Err(format!("principal {principal:?} has no permission"));
    }
    Ok(Acl::new(perms, scheme, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patroni_acl_entries() {
        let a = acl_from_patroni("digest:u:abc=", &["read".into(), "WRITE".into()]).unwrap();
        assert_eq!((a.scheme.as_str(), a.id.as_str()), ("digest", "u:abc="));
        assert_eq!(a.perms, Permission::READ | Permission::WRITE);
        let a = acl_from_patroni("CN=node1", &["ALL".into()]).unwrap();
        assert_eq!((a.scheme.as_str(), a.perms), ("x509", Permission::ALL));
        assert!(acl_from_patroni("world:anyone", &["REED".into()]).is_err());
        assert!(acl_from_patroni("world:anyone", &[]).is_err());
    }
}
