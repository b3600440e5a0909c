//! `demote-cluster` and `promote-cluster` (Patroni 4): turn the whole cluster into a standby cluster of another
//! (`standby_cluster` written through the leader's `PATCH /config`), or back into a primary cluster, then watch
//! until the leader reports the new role.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::{CliError, Ctl};

/// The source of a demoted cluster, as `demote-cluster`'s options give it.
#[derive(Debug, Clone, Default)]
pub struct StandbySource {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub restore_command: Option<String>,
    pub primary_slot_name: Option<String>,
}

impl Ctl<'_> {
    /// `demote-cluster` with `Some(source)`, `promote-cluster` with `None`.
    pub(super) async fn change_cluster_role(
        &mut self,
        source: Option<&StandbySource>,
        force: bool,
    ) -> Result<(), CliError> {
        let standby = match source {
            Some(s) => {
                if s.host.is_none() && s.port.is_none() && s.restore_command.is_none() {
                    return Err(CliError::Usage(
                        "At least --host, --port or --restore-command should be specified".into(),
                    ));
                }
                let mut m = Map::new();
                for (k, v) in [
                    ("host", s.host.clone().map(Value::from)),
                    ("port", s.port.map(Value::from)),
                    (
                        "primary_slot_name",
                        s.primary_slot_name.clone().map(Value::from),
                    ),
                    (
                        "restore_command",
                        s.restore_command.clone().map(Value::from),
                    ),
                ] {
                    if let Some(v) = v {
                        m.insert(k.into(), v);
                    }
                }
                Value::Object(m)
            }
            None => Value::Null,
        };
        let demote = source.is_some();
        let (action, target) = if demote {
            ("demot", "standby_leader")
        } else {
            ("promot", "primary")
        };
        let cluster = self.load().await?;
        let Some(leader) = cluster.leader_member().cloned() else {
            return Err(CliError::Failed(format!(
                "Cluster has no leader, {action}ion is not possible"
            )));
        };
        if leader.data.role.as_deref() == Some(target) {
            return Err(CliError::Failed(
                "Cluster is already in the required state".into(),
            ));
        }
        if !force {
            let scope = self.scope.clone();
            self.confirm(&format!(
                "Are you sure you want to {action}e {scope} cluster?"
            ))?;
        }
        let body = json!({ "standby_cluster": standby });
        match self
            .request(&leader, reqwest::Method::PATCH, "config", Some(&body))
            .await
        {
            Ok(r) if r.status == 200 => {}
            Ok(r) => {
                return Err(CliError::Failed(format!(
                    "Failed to {action}e {} cluster: /config PATCH status code={}, ({})",
                    self.scope, r.status, r.body
                )))
            }
            Err(e) => {
                return Err(CliError::Failed(format!(
                    "Failed to {action}e {} cluster: {e}",
                    self.scope
                )))
            }
        }
        // The leader's next loop changes the role: a demotion restarts PostgreSQL as a standby.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(300) {
            let c = self.load().await?;
            let l = c.leader_member();
            if l.and_then(|m| m.data.role.as_deref()) == Some(target)
                && l.and_then(|m| m.data.state.as_deref()) == Some("running")
            {
                return self.say(format!("cluster is successfully {action}ed"));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
        Err(CliError::Failed(format!(
            "the leader did not report the role {target} within 300 s"
        )))
    }
}
