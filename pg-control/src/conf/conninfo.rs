//! Reaching other members: host and port of a member's conn_url, and the libpq conninfo strings a standby
//! streams with and pg_basebackup / pg_rewind connect with (the password always read from the pgpass file), each
//! carrying its role's connection options (`sslmode` & co., `sslmode=prefer` when none is set).

use std::path::Path;

use ha_core::pg::Upstream;

use crate::conn_options::ConnOptions;
use crate::ctl::PgCtl;
use crate::error::{Error, Result};

/// Quotes a value for a libpq connection string.
pub fn quote_conninfo(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// Host and port of a member's conn_url (`postgres://host:port/db`) or of a key/value conninfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

pub fn parse_conn_url(url: &str) -> Option<Endpoint> {
    let url = url.trim();
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let authority = rest.split(['/', '?']).next()?;
        let hostport = authority.rsplit('@').next()?;
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, after) = h.split_once(']')?;
            (h.to_string(), after.strip_prefix(':').unwrap_or(""))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p),
                None => (hostport.to_string(), ""),
            }
        };
        let port = if port.is_empty() {
            5432
        } else {
            port.parse().ok()?
        };
        if host.is_empty() {
            return None;
        }
        return Some(Endpoint { host, port });
    }
    // key=value form
    let mut host = None;
    let mut port = 5432;
    for kv in url.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        let v = v.trim_matches('\'');
        match k {
            "host" | "hostaddr" => host = Some(v.to_string()),
            "port" => port = v.parse().ok()?,
            _ => {}
        }
    }
    Some(Endpoint { host: host?, port })
}

/// A libpq conninfo to `ep` as `user`, reading the password from `passfile`.
pub fn conninfo(ep: &Endpoint, user: &str, passfile: &Path, extra: &[(&str, &str)]) -> String {
    let mut s = format!(
        "host={} port={} user={} passfile={}",
        quote_conninfo(&ep.host),
        ep.port,
        quote_conninfo(user),
        quote_conninfo(&passfile.to_string_lossy())
    );
    for (k, v) in extra {
        s.push_str(&format!(" {k}={}", quote_conninfo(v)));
    }
    s
}

impl PgCtl {
    /// The conninfo a standby of `up` streams with.
    pub(crate) fn primary_conninfo(&self, up: &Upstream) -> Result<String> {
        let ep = parse_conn_url(&up.conn_url).ok_or_else(|| {
            Error::BadSetting(format!(
                "cannot read host and port from {}'s conn_url {:?}",
                up.name, up.conn_url
            ))
        })?;
        let mut extra = vec![("application_name", self.s.name.as_str())];
        // postgresql.conf is 0600 and the walreceiver has no service file: the key's password goes inline, as
        // Patroni writes it.
        extra.extend(self.conn.replication.libpq_pairs(true));
        Ok(conninfo(
            &ep,
            &self.s.replication.username,
            &self.s.pgpass,
            &extra,
        ))
    }

    /// The conninfo pg_basebackup (replication role) or pg_rewind (rewind role) connects with, on its command
    /// line: the role's options, its `sslpassword` through the service file.
    pub(crate) fn command_conninfo(
        &self,
        ep: &Endpoint,
        opts: &ConnOptions,
        user: &str,
        extra: &[(&str, &str)],
    ) -> String {
        let service = opts.service_name();
        let mut all: Vec<(&str, &str)> = extra.to_vec();
        if let Some(s) = &service {
            all.push(("service", s));
        }
        all.extend(opts.libpq_pairs(false));
        conninfo(ep, user, &self.s.pgpass, &all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_urls_parse() {
        assert_eq!(
            parse_conn_url("postgres://127.0.0.1:5433/postgres"),
            Some(Endpoint {
                host: "127.0.0.1".into(),
                port: 5433
            })
        );
        assert_eq!(
            parse_conn_url("postgresql://u@[::1]:6000/db?sslmode=disable"),
            Some(Endpoint {
                host: "::1".into(),
                port: 6000
            })
        );
        assert_eq!(
            parse_conn_url("host=node2 port=5434 user=x"),
            Some(Endpoint {
                host: "node2".into(),
                port: 5434
            })
        );
        assert_eq!(parse_conn_url("postgres:///nohost"), None);
    }

    #[test]
    fn conninfo_carries_the_role_options_quoted() {
        let cred = crate::settings::Credentials::new("rep", None)
            .with_option("sslmode", "verify-full")
            .with_option("sslrootcert", "/etc/my certs/ca.crt")
            .with_option("sslpassword", "it's");
        let o = ConnOptions::parse("replication", &cred, 150000).unwrap();
        let ep = Endpoint {
            host: "10.0.0.1".into(),
            port: 5432,
        };
        let mut extra = vec![("application_name", "n2")];
        extra.extend(o.libpq_pairs(true));
        assert_eq!(
            conninfo(&ep, "rep", Path::new("/p/pgpass"), &extra),
            "host=10.0.0.1 port=5432 user=rep passfile=/p/pgpass application_name=n2 sslmode=verify-full \
             sslpassword='it\\'s' sslrootcert='/etc/my certs/ca.crt'"
        );
        let plain = ConnOptions::parse(
            "replication",
            &crate::settings::Credentials::new("rep", None),
            150000,
        )
        .unwrap();
        assert_eq!(
            conninfo(
                &ep,
                "rep",
                Path::new("/p/pgpass"),
                &plain.libpq_pairs(false)
            ),
            "host=10.0.0.1 port=5432 user=rep passfile=/p/pgpass sslmode=prefer"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_conninfo("a b"), "'a b'");
        assert_eq!(quote_conninfo("/tmp/x.pgpass"), "/tmp/x.pgpass");
    }
}
