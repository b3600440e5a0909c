//! The pgpass file: where every password we connect with lives, so that none is ever on a command line; and beside
//! it the service file, which holds a client key's `sslpassword` for the same reason.

use std::path::PathBuf;

use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;

/// The pgpass file: one line per role, any host (the file is ours alone, mode 0600).
pub fn render_pgpass(entries: &[(&str, &str)]) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for (user, password) in entries {
        if seen.insert(*user) {
            out.push_str(&format!("*:*:*:{}:{}\n", esc(user), esc(password)));
        }
    }
    out
}

impl PgCtl {
    pub(crate) fn write_pgpass(&self) -> Result<()> {
        let mut entries: Vec<(&str, &str)> = Vec::new();
        for c in [
            Some(&self.s.replication),
            Some(&self.s.superuser),
            self.s.rewind.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(p) = &c.password {
                entries.push((&c.username, p));
            }
        }
        if let Some(parent) = self.s.pgpass.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        os::write_file(
            &self.run_as,
            &self.s.pgpass,
            &render_pgpass(&entries),
            0o600,
        )?;
        let c = &self.conn;
        os::write_file(
            &self.run_as,
            &self.service_file(),
            &crate::conn_options::render_service_file(&[&c.replication, &c.rewind]),
            0o600,
        )
    }

    /// The libpq service file (`PGSERVICEFILE` of the binaries we run): `<pgpass>.service`.
    pub(crate) fn service_file(&self) -> PathBuf {
        let mut s = self.s.pgpass.clone().into_os_string();
        s.push(".service");
        PathBuf::from(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_role_escaped() {
        assert_eq!(
            render_pgpass(&[("u", "p:w"), ("u", "other")]),
            "*:*:*:u:p\\:w\n"
        );
    }
}
