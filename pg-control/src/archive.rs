//! Archiving a demoted primary's shutdown checkpoint (Patroni's `archive_shutdown_checkpoint_wal`).
//!
//! When `standby_cluster` is added to a primary cluster (`demote-cluster`), its primary stops and comes back as the
//! standby leader of another cluster. Its shutdown checkpoint record sits in a WAL segment that is not full, so
//! PostgreSQL never archives it; a cluster that replays this one's archive stops short of it, and once that
//! cluster is promoted its new timeline forks *before* the checkpoint: the demoted node, already past the fork,
//! cannot follow ("requested timeline is not a child of this server's history"). Archiving that segment after the
//! stop, as Patroni does, lets the other side replay the checkpoint before it forks.

use std::path::Path;

use tracing::{info, warn};

use crate::conf::parse_simple_conf;
use crate::{os, PgCtl};

/// `archive_command` with `%p` (the path, relative to the data directory), `%f` (the file name) and `%%`
/// replaced, as PostgreSQL's archiver does.
pub(crate) fn archive_command_for(template: &str, wal_file: &str) -> String {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('p') => out.push_str(&format!("pg_wal/{wal_file}")),
            Some('f') => out.push_str(wal_file),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

impl PgCtl {
    /// The archive settings the stopped server was configured with: the managed postgresql.conf, then the user's
    /// postgresql.base.conf (or `custom_conf`).
    fn archive_settings(&self) -> Option<String> {
        let read = |name: &str| {
            std::fs::read_to_string(self.s.conf_dir().join(name))
                .map(|t| parse_simple_conf(&t))
                .unwrap_or_default()
        };
        let base = std::fs::read_to_string(self.s.base_conf())
            .map(|t| parse_simple_conf(&t))
            .unwrap_or_default();
        let main = read("postgresql.conf");
        let get = |k: &str| main.get(k).or_else(|| base.get(k)).cloned();
        let mode = get("archive_mode").unwrap_or_default();
        let command = get("archive_command").unwrap_or_default();
        (matches!(mode.as_str(), "on" | "always") && !command.is_empty()).then_some(command)
    }

    /// Archives the segment of a cleanly stopped primary's shutdown checkpoint (see the module head). Does
    /// nothing for a standby's data directory, a running server or without archiving; a failure is logged (the
    /// node still starts: the other cluster may have the segment some other way).
    pub(crate) async fn archive_shutdown_checkpoint(&self) {
        if !self.initialized() || self.live_postmaster().is_some() {
            return;
        }
        let Some(template) = self.archive_settings() else {
            info!("not archiving the shutdown checkpoint's WAL file: archiving is not configured");
            return;
        };
        let cd = match self.controldata().await {
            Ok(cd) => cd,
            Err(e) => {
                warn!(error = %e, "cannot read pg_controldata to archive the shutdown checkpoint");
                return;
            }
        };
        // Only a primary's clean stop: a standby's ("shut down in recovery") has nothing of its own to archive.
        let Some(file) = cd.redo_wal_file.filter(|_| cd.state == "shut down") else {
            return;
        };
        let command = archive_command_for(&template, &file);
        info!(wal_file = %file, %command, "archiving the shutdown checkpoint's WAL file");
        let r = os::run_in(
            &self.run_as,
            Path::new("/bin/sh"),
            &["-c".to_string(), command],
            &[],
            self.s
                .timeouts
                .query
                .max(std::time::Duration::from_secs(60)),
            &self.s.data_dir,
        )
        .await;
        if let Err(e) = r {
            warn!(error = %e, "failed to archive the WAL file with the shutdown checkpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_as_the_archiver_does() {
        assert_eq!(
            archive_command_for(
                "test ! -f /arch/%f && cp %p /arch/%f # 100%% %x",
                "000000010000000000000003"
            ),
            "test ! -f /arch/000000010000000000000003 && cp pg_wal/000000010000000000000003 \
             /arch/000000010000000000000003 # 100% %x"
        );
    }
}
