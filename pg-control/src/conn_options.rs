//! The libpq connection options each role connects to other members with (Patroni's `authentication.<role>`
//! `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslpassword`, `sslcrl`, `sslcrldir`, `sslsni`, `gssencmode`,
//! `channel_binding`, `sslnegotiation`): read and checked once when a [`PgCtl`](crate::PgCtl) is made, then
//! written into each conninfo libpq reads (primary_conninfo, pg_basebackup, pg_rewind) and turned into the TLS
//! client of our own tokio-postgres connections (`tls`).
//!
//! Fail closed: an unknown key, a value libpq would not take, a file option our own connections could not read
//! the way libpq does, or a mode they cannot honour (`gssencmode: require`: tokio-postgres has no GSSAPI) refuses
//! the start naming the key, instead of connecting with less protection than the configuration asked for.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::settings::{Credentials, PgSettings};

/// Every key Patroni passes from `authentication.<role>` to libpq, besides `username` and `password`.
pub const KNOWN_OPTIONS: &[&str] = &[
    "sslmode",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "gssencmode",
    "channel_binding",
    "sslnegotiation",
];

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Option<SslMode> {
        Some(match v {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

/// One role's options, checked. `raw` keeps them as given, for libpq.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    /// `superuser`, `replication` or `rewind`: errors name `postgresql.authentication.<role>.<key>`.
    pub role: &'static str,
    /// `None`: not set (libpq's default, `prefer`).
    pub sslmode: Option<SslMode>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub sslpassword: Option<String>,
    pub sslrootcert: Option<PathBuf>,
    pub sslcrl: Option<PathBuf>,
    pub sslcrldir: Option<PathBuf>,
    /// `sslsni` (default on): send the host name in the TLS handshake.
    pub sslsni: bool,
    pub channel_binding: Option<ChannelBinding>,
    /// `sslnegotiation: direct` (PostgreSQL 17): TLS at once, without the SSLRequest round trip.
    pub direct_ssl: bool,
    raw: BTreeMap<String, String>,
}

impl ConnOptions {
    /// Checks `cred.options` for `role`, against what libpq of `libpq_version` (`server_version_num` of the
    /// binaries, whose libpq pg_basebackup, pg_rewind and the walreceiver use) knows.
    pub(crate) fn parse(
        role: &'static str,
        cred: &Credentials,
        libpq_version: u32,
    ) -> Result<ConnOptions> {
        let key = |k: &str| format!("postgresql.authentication.{role}.{k}");
        let refuse = |k: &str, reason: String| Error::ConnOption {
            key: key(k),
            reason,
        };
        let mut o = ConnOptions {
            role,
            sslmode: None,
            sslcert: None,
            sslkey: None,
            sslpassword: None,
            sslrootcert: None,
            sslcrl: None,
            sslcrldir: None,
            sslsni: true,
            channel_binding: None,
            direct_ssl: false,
            raw: cred.options.clone(),
        };
        let path = |k: &str, v: &str| -> Result<PathBuf> {
            let p = PathBuf::from(v);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(refuse(
                    k,
                    format!("{v:?} is not an absolute path (libpq would resolve it against the working directory of each binary)"),
                ))
            }
        };
        for (k, v) in &cred.options {
            let bad_value = |expected: &str| refuse(k, format!("{v:?} is not one of {expected}"));
            let needs = |major: u32| -> Result<()> {
                if libpq_version / 10000 < major {
                    Err(refuse(
                        k,
                        format!(
                            "libpq of PostgreSQL {} does not know this option (it came with PostgreSQL {major})",
                            libpq_version / 10000
                        ),
                    ))
                } else {
                    Ok(())
                }
            };
            match k.as_str() {
                "sslmode" => {
                    o.sslmode = Some(SslMode::parse(v).ok_or_else(|| {
                        bad_value("disable, allow, prefer, require, verify-ca, verify-full")
                    })?)
                }
                "sslcert" => o.sslcert = Some(path(k, v)?),
                "sslkey" => o.sslkey = Some(path(k, v)?),
                "sslpassword" => {
                    if v.contains(['\n', '\r']) {
                        return Err(refuse(k, "a line break cannot be passed to libpq".into()));
                    }
                    o.sslpassword = Some(v.clone())
                }
                "sslrootcert" => {
                    if v == "system" {
                        return Err(refuse(
                            k,
                            "`system` (the operating system's roots) is not supported by hactl's own connections to other members: name the CA file".into(),
                        ));
                    }
                    o.sslrootcert = Some(path(k, v)?)
                }
                "sslcrl" => o.sslcrl = Some(path(k, v)?),
                "sslcrldir" => {
                    needs(14)?;
                    o.sslcrldir = Some(path(k, v)?)
                }
                "sslsni" => {
                    needs(14)?;
                    o.sslsni = match v.as_str() {
                        "1" => true,
                        "0" => false,
                        _ => return Err(bad_value("0, 1")),
                    }
                }
                "gssencmode" => match v.as_str() {
                    "disable" | "prefer" => {}
                    "require" => {
                        return Err(refuse(
                            k,
                            "`require` cannot be honoured: hactl's own connections to other members (tokio-postgres) have no GSSAPI encryption; use TLS (sslmode) instead".into(),
                        ))
                    }
                    _ => return Err(bad_value("disable, prefer, require")),
                },
                "channel_binding" => {
                    o.channel_binding = Some(match v.as_str() {
                        "disable" => ChannelBinding::Disable,
                        "prefer" => ChannelBinding::Prefer,
                        "require" => ChannelBinding::Require,
                        _ => return Err(bad_value("disable, prefer, require")),
                    })
                }
                "sslnegotiation" => match v.as_str() {
                    "postgres" => {}
                    "direct" => {
                        needs(17)?;
                        o.direct_ssl = true;
                    }
                    _ => return Err(bad_value("postgres, direct")),
                },
                _ => {
                    return Err(refuse(
                        k,
                        format!(
                            "unknown connection option; known are username, password, {}",
                            KNOWN_OPTIONS.join(", ")
                        ),
                    ))
                }
            }
        }
        let mode = o.sslmode.unwrap_or(SslMode::Prefer);
        if mode >= SslMode::VerifyCa && o.sslrootcert.is_none() {
            return Err(refuse(
                "sslrootcert",
                format!("sslmode {} verifies the server against a CA file: set sslrootcert (hactl reads no default ~/.postgresql/root.crt)", o.raw["sslmode"]),
            ));
        }
        if o.direct_ssl && mode < SslMode::Require {
            return Err(refuse(
                "sslnegotiation",
                "`direct` needs sslmode require, verify-ca or verify-full (libpq refuses it with a weaker mode)".into(),
            ));
        }
        match (&o.sslcert, &o.sslkey) {
            (Some(_), None) => {
                return Err(refuse(
                    "sslkey",
                    "sslcert is set without sslkey (hactl reads no default ~/.postgresql/postgresql.key)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(refuse(
                    "sslcert",
                    "sslkey is set without sslcert (hactl reads no default ~/.postgresql/postgresql.crt)".into(),
                ))
            }
            _ => {}
        }
        Ok(o)
    }

    /// The file options that are set, with their keys.
    fn files(&self) -> Vec<(&'static str, &PathBuf)> {
        [
            ("sslcert", &self.sslcert),
            ("sslkey", &self.sslkey),
            ("sslrootcert", &self.sslrootcert),
            ("sslcrl", &self.sslcrl),
            ("sslcrldir", &self.sslcrldir),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_ref().map(|p| (k, p)))
        .collect()
    }

    /// The config key of option `k` of this role, for errors.
    pub(crate) fn key(&self, k: &str) -> String {
        format!("postgresql.authentication.{}.{k}", self.role)
    }

    /// The options as libpq conninfo pairs, `sslmode=prefer` when none is set. `sslpassword` only when
    /// `with_password` (a conninfo written into the 0600 postgresql.conf); command lines get it from the
    /// service file instead (see [`ConnOptions::service_name`]).
    pub(crate) fn libpq_pairs(&self, with_password: bool) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        if !self.raw.contains_key("sslmode") {
            out.push(("sslmode", "prefer"));
        }
        for (k, v) in &self.raw {
            if k == "sslpassword" && !with_password {
                continue;
            }
            // `postgres` is libpq 17's default and older libpq does not know the key.
            if k == "sslnegotiation" && v == "postgres" {
                continue;
            }
            out.push((k, v));
        }
        out
    }

    /// The section of the service file that holds this role's `sslpassword`, when it has one: the password of an
    /// encrypted client key stays off command lines as the role's password does.
    pub(crate) fn service_name(&self) -> Option<String> {
        self.sslpassword
            .as_ref()
            .map(|_| format!("hactl_{}", self.role))
    }
}

/// The checked options of the three roles.
#[derive(Debug, Clone)]
pub(crate) struct RoleOptions {
    pub superuser: ConnOptions,
    pub replication: ConnOptions,
    /// The rewind role's, or the superuser's when pg_rewind connects as the superuser.
    pub rewind: ConnOptions,
}

impl RoleOptions {
    /// Checks every role's options; the superuser's TLS client (our own connections) is built once so that a
    /// missing file, a key that does not fit its certificate or a wrong `sslpassword` refuses the start. The
    /// other roles' files are read by libpq (as the PostgreSQL user): they must at least exist.
    pub(crate) fn new(s: &PgSettings, libpq_version: u32) -> Result<RoleOptions> {
        let superuser = ConnOptions::parse("superuser", &s.superuser, libpq_version)?;
        let replication = ConnOptions::parse("replication", &s.replication, libpq_version)?;
        let rewind = match &s.rewind {
            Some(r) => ConnOptions::parse("rewind", r, libpq_version)?,
            None => superuser.clone(),
        };
        crate::tls::make_connect(&superuser)?;
        for o in [&replication, &rewind] {
            for (k, p) in o.files() {
                if !p.exists() {
                    return Err(Error::ConnOption {
                        key: o.key(k),
                        reason: format!("{} does not exist", p.display()),
                    });
                }
            }
        }
        Ok(RoleOptions {
            superuser,
            replication,
            rewind,
        })
    }
}

/// The service file: one section per role with an `sslpassword` (mode 0600, beside pgpass).
pub(crate) fn render_service_file(roles: &[&ConnOptions]) -> String {
    let mut out = String::new();
    for o in roles {
        if let (Some(name), Some(pw)) = (o.service_name(), &o.sslpassword) {
            out.push_str(&format!("[{name}]\nsslpassword={pw}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(opts: &[(&str, &str)]) -> Credentials {
        opts.iter()
            .fold(Credentials::new("u", None), |c, (k, v)| c.with_option(k, v))
    }

    fn refused(opts: &[(&str, &str)], version: u32) -> (String, String) {
        match ConnOptions::parse("replication", &cred(opts), version) {
            Err(Error::ConnOption { key, reason }) => (key, reason),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let (key, reason) = refused(&[("sslmdoe", "require")], 150000);
        assert_eq!(key, "postgresql.authentication.replication.sslmdoe");
        assert!(reason.contains("unknown"), "{reason}");
    }

    #[test]
    fn gssencmode_require_is_refused_prefer_and_disable_are_taken() {
        let (key, reason) = refused(&[("gssencmode", "require")], 150000);
        assert_eq!(key, "postgresql.authentication.replication.gssencmode");
        assert!(reason.contains("GSSAPI"), "{reason}");
        for v in ["prefer", "disable"] {
            ConnOptions::parse("replication", &cred(&[("gssencmode", v)]), 150000).unwrap();
        }
    }

    #[test]
    fn values_libpq_would_refuse_are_refused() {
        assert!(refused(&[("sslmode", "VERIFY-CA")], 150000)
            .0
            .ends_with(".sslmode"));
        assert!(refused(&[("sslsni", "yes")], 150000).0.ends_with(".sslsni"));
        assert!(refused(&[("channel_binding", "on")], 150000)
            .0
            .ends_with(".channel_binding"));
        assert!(refused(&[("sslcrldir", "/x")], 130000)
            .0
            .ends_with(".sslcrldir"));
        assert!(refused(
            &[("sslnegotiation", "direct"), ("sslmode", "require")],
            160000
        )
        .0
        .ends_with(".sslnegotiation"));
        assert!(refused(&[("sslnegotiation", "direct")], 170000)
            .0
            .ends_with(".sslnegotiation"));
        assert!(refused(&[("sslrootcert", "ca.crt")], 150000)
            .1
            .contains("absolute"));
        assert!(refused(&[("sslrootcert", "system")], 160000)
            .0
            .ends_with(".sslrootcert"));
    }

    #[test]
    fn verification_needs_a_root_and_a_cert_needs_its_key() {
        assert!(refused(&[("sslmode", "verify-ca")], 150000)
            .0
            .ends_with(".sslrootcert"));
        assert!(refused(&[("sslmode", "verify-full")], 150000)
            .0
            .ends_with(".sslrootcert"));
        assert!(refused(&[("sslcert", "/c.crt")], 150000)
            .0
            .ends_with(".sslkey"));
        assert!(refused(&[("sslkey", "/c.key")], 150000)
            .0
            .ends_with(".sslcert"));
    }

    #[test]
    fn libpq_pairs_default_to_prefer_and_keep_the_password_off_command_lines() {
        let none = ConnOptions::parse("replication", &cred(&[]), 150000).unwrap();
        assert_eq!(none.libpq_pairs(true), vec![("sslmode", "prefer")]);
        let o = ConnOptions::parse(
            "replication",
            &cred(&[
                ("sslmode", "verify-ca"),
                ("sslrootcert", "/etc/ca.crt"),
                ("sslcert", "/etc/c.crt"),
                ("sslkey", "/etc/c.key"),
                ("sslpassword", "k3y"),
                ("sslnegotiation", "postgres"),
            ]),
            150000,
        )
        .unwrap();
        assert_eq!(
            o.libpq_pairs(true),
            vec![
                ("sslcert", "/etc/c.crt"),
                ("sslkey", "/etc/c.key"),
                ("sslmode", "verify-ca"),
                ("sslpassword", "k3y"),
                ("sslrootcert", "/etc/ca.crt"),
            ]
        );
        assert!(!o
            .libpq_pairs(false)
            .iter()
            .any(|(k, _)| *k == "sslpassword"));
        assert_eq!(o.service_name().as_deref(), Some("hactl_replication"));
        assert_eq!(
            render_service_file(&[&o, &none]),
            "[hactl_replication]\nsslpassword=k3y\n"
        );
    }
}
