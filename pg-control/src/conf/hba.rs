//! pg_hba.conf: written whole from the node's `pg_hba` lines, and read for whether it asks clients for passwords
//! (then every role we connect as needs one).

use super::MANAGED_MARKER;

pub fn render_hba(lines: &[String]) -> String {
    let mut out = String::from(MANAGED_MARKER);
    out.push('\n');
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Whether an hba method asks the client for a password.
pub fn hba_needs_password(lines: &[String]) -> bool {
    lines.iter().any(|l| {
        let l = l.split('#').next().unwrap_or("");
        l.split_whitespace()
            .any(|w| matches!(w, "md5" | "scram-sha-256" | "password"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_methods_are_seen_outside_comments() {
        assert!(hba_needs_password(&[
            "host all all 0.0.0.0/0 scram-sha-256".into()
        ]));
        assert!(!hba_needs_password(&[
            "local all all trust # md5 later".into()
        ]));
    }
}
