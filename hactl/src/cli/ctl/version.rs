//! `version`: hactl's version, and with a cluster each member's Patroni-compatible and PostgreSQL versions from its
//! `GET /patroni`.

use serde_json::Value;

use super::{CliError, Ctl};
use crate::cli::Targets;

impl Ctl<'_> {
    pub(super) async fn version(&mut self, t: &Targets) -> Result<(), CliError> {
        self.say(format!("hactl version {}", crate::VERSION))?;
        if t.names.is_empty() {
            return Ok(());
        }
        let cluster = self.load().await?;
        let members = self.select_members(&cluster, t, None)?;
        for m in &members {
            let line = match self.request(m, reqwest::Method::GET, "patroni", None).await {
                Ok(r) => {
                    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
                    let pg = v["server_version"]
                        .as_u64()
                        .map(format_pg_version)
                        .unwrap_or_default();
                    format!(
                        "{}: Patroni {} PostgreSQL {pg}",
                        m.name,
                        v["patroni"]["version"].as_str().unwrap_or("?")
                    )
                }
                Err(e) => format!("{}: failed to get version: {e}", m.name),
            };
            self.say(line)?;
        }
        Ok(())
    }
}

/// `150018` → `15.18`, `90624` → `9.6.24`.
fn format_pg_version(v: u64) -> String {
    if v >= 100_000 {
        format!("{}.{}", v / 10000, v % 10000)
    } else {
        format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
    }
}
