//! `reinit`: wipe and re-clone the named replicas (`POST /reinitialize`), and with `--wait` poll each until it runs
//! again.

use serde_json::{json, Value};

use super::{CliError, Ctl};
use crate::cli::Targets;

impl Ctl<'_> {
    pub(super) async fn reinit(
        &mut self,
        t: &Targets,
        force: bool,
        wait: bool,
        from_leader: bool,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        if self.member_names(t).is_empty() {
            return Err(CliError::Usage(
                "reinit needs the members to reinitialize".into(),
            ));
        }
        let members = self.select_members(&cluster, t, None)?;
        if !force {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            self.confirm(&format!(
                "Are you sure you want to reinitialize members {}?",
                names.join(", ")
            ))?;
        }
        let mut failed = 0;
        let mut started = Vec::new();
        for m in &members {
            let mut body = json!({ "force": force });
            if from_leader {
                body["from_leader"] = json!(true);
            }
            let line = match self
                .request(m, reqwest::Method::POST, "reinitialize", Some(&body))
                .await
            {
                Ok(r) if r.status == 200 => {
                    started.push(m.clone());
                    format!("Success: reinitialize for member {}", m.name)
                }
                Ok(r) => {
                    failed += 1;
                    format!(
                        "Failed: reinitialize for member {}, status code={}, ({})",
                        m.name, r.status, r.body
                    )
                }
                Err(e) => {
                    failed += 1;
                    format!("Failed: reinitialize for member {}, ({e})", m.name)
                }
            };
            self.say(line)?;
        }
        if wait {
            for m in &started {
                self.say(format!(
                    "Waiting for reinitialize to complete on: {}",
                    m.name
                ))?;
                for _ in 0..600 {
                    tokio::time::sleep(self.poll_interval).await;
                    if let Ok(r) = self.request(m, reqwest::Method::GET, "patroni", None).await {
                        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
                        if v["state"] == "running" {
                            break;
                        }
                    }
                }
                self.say(format!("Reinitialize is completed on: {}", m.name))?;
            }
        }
        if failed > 0 {
            return Err(CliError::Failed(format!(
                "reinitialize failed on {failed} member(s)"
            )));
        }
        Ok(())
    }
}
