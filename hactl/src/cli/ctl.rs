//! patronictl's commands over the [`Dcs`] trait (a lease-less client: reads and compare-and-set writes) and the
//! members' REST API (`api_url` from their member keys). Output goes to a writer and questions are read from a
//! reader, so each command is tested against a running simulated cluster.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use ha_core::dcs::{Dcs, DcsError};
use ha_core::model::{Cluster, Failover, GlobalConfig, Member};
use serde_json::{json, Map, Value};

use super::table::{render, Cell};
use super::{Command, OutputFormat, Targets};
use crate::client::{self, Reply};
use crate::config::BasicAuth;
use crate::json::{cluster_json, merge_patch};

/// The client builder moved to [`crate::client`] (the daemon uses it too); this path is kept for embedders.
pub use crate::client::http_client;

/// Why a command failed: printed as one line, the process exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    DcsBuild(#[from] crate::dcs::DcsBuildError),
    #[error("DCS: {0}")]
    Dcs(#[from] DcsError),
    #[error("{0}")]
    Usage(String),
    #[error("Aborted")]
    Aborted,
    #[error("{0}")]
    Failed(String),
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a command needs: the DCS, an HTTP client for members' REST APIs, where to print and where to read
/// answers from.
pub struct Ctl<'a> {
    pub scope: String,
    pub dcs: Arc<dyn Dcs>,
    pub http: reqwest::Client,
    pub auth: Option<BasicAuth>,
    pub format: OutputFormat,
    pub out: &'a mut dyn Write,
    pub input: &'a mut dyn BufRead,
    /// `$EDITOR` for edit-config.
    pub editor: Option<String>,
    /// How often `--wait` polls.
    pub poll_interval: Duration,
}

/// patronictl's timestamp.
fn timestamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn role_name(role: &str) -> String {
    match role {
        "leader" => "Leader".into(),
        "replica" => "Replica".into(),
        "sync_standby" => "Sync Standby".into(),
        "quorum_standby" => "Quorum Standby".into(),
        "standby_leader" => "Standby Leader".into(),
        other => other.to_string(),
    }
}

fn lag_mb(v: &Value) -> Cell {
    match v.as_u64() {
        Some(b) => Cell::num((b as f64 / 1_048_576.0).round() as u64),
        None => Cell::text(v.as_str().unwrap_or("")),
    }
}

impl<'a> Ctl<'a> {
    fn say(&mut self, line: impl AsRef<str>) -> Result<(), CliError> {
        writeln!(self.out, "{}", line.as_ref())?;
        Ok(())
    }

    /// Asks a yes/no question; no answer (end of input) is a no.
    fn confirm(&mut self, question: &str) -> Result<(), CliError> {
        write!(self.out, "{question} [y/N]: ")?;
        self.out.flush()?;
        let mut line = String::new();
        self.input.read_line(&mut line)?;
        if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            Err(CliError::Aborted)
        }
    }

    fn prompt(&mut self, question: &str, default: &str) -> Result<String, CliError> {
        write!(self.out, "{question} [{default}]: ")?;
        self.out.flush()?;
        let mut line = String::new();
        self.input.read_line(&mut line)?;
        let t = line.trim();
        Ok(if t.is_empty() {
            default.to_string()
        } else {
            t.to_string()
        })
    }

    fn check_cluster(&self, cluster: &Option<String>) -> Result<(), CliError> {
        match cluster {
            Some(c) if c != &self.scope => Err(CliError::Usage(format!(
                "cluster {c} is not the configured one ({}); use -c with its config",
                self.scope
            ))),
            _ => Ok(()),
        }
    }

    /// Member names from `[CLUSTER] [MEMBER]...`.
    fn member_names(&self, t: &Targets) -> Vec<String> {
        let mut names = t.names.clone();
        if names.first() == Some(&self.scope) {
            names.remove(0);
        }
        names
    }

    async fn load(&self) -> Result<Cluster, CliError> {
        Ok(self.dcs.load().await?)
    }

    /// `method` on `path` of a member's REST API, with the ctl credentials.
    async fn request(
        &self,
        member: &Member,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        client::request(&self.http, self.auth.as_ref(), member, method, path, body).await
    }

    /// Runs one command (not `run`/`validate`, which the binary handles).
    pub async fn execute(&mut self, cmd: &Command) -> Result<(), CliError> {
        match cmd {
            Command::List {
                cluster,
                extended,
                timestamp: ts,
            } => {
                self.check_cluster(cluster)?;
                if *ts {
                    let t = timestamp();
                    self.say(t)?;
                }
                let c = self.load().await?;
                self.output_members(&c, *extended, false)
            }
            Command::Topology { cluster } => {
                self.check_cluster(cluster)?;
                let c = self.load().await?;
                self.output_members(&c, false, true)
            }
            Command::Switchover {
                cluster,
                leader,
                candidate,
                scheduled,
                force,
            } => {
                self.check_cluster(cluster)?;
                self.switchover(
                    leader.clone(),
                    candidate.clone(),
                    scheduled.clone(),
                    *force,
                    "switchover",
                )
                .await
            }
            Command::Failover {
                cluster,
                candidate,
                force,
            } => {
                self.check_cluster(cluster)?;
                self.switchover(None, candidate.clone(), None, *force, "failover")
                    .await
            }
            Command::EditConfig {
                cluster,
                set,
                pg,
                apply,
                replace,
                quiet,
                force,
            } => {
                self.check_cluster(cluster)?;
                self.edit_config(
                    set,
                    pg,
                    apply.as_deref(),
                    replace.as_deref(),
                    *quiet,
                    *force,
                )
                .await
            }
            Command::ShowConfig { cluster } => {
                self.check_cluster(cluster)?;
                let c = self.load().await?;
                let cfg = c.config.ok_or_else(|| {
                    CliError::Failed(format!(
                        "The config key does not exist in the cluster {}",
                        self.scope
                    ))
                })?;
                let v = serde_json::to_value(&cfg.value).unwrap_or(json!({}));
                let text = match self.format {
                    OutputFormat::Json => serde_json::to_string_pretty(&v).unwrap_or_default(),
                    _ => to_yaml(&v),
                };
                write!(self.out, "{text}")?;
                if !text.ends_with('\n') {
                    writeln!(self.out)?;
                }
                Ok(())
            }
            Command::Restart {
                targets,
                role,
                any,
                scheduled,
                pg_version,
                pending,
                timeout,
                force,
            } => {
                self.restart(
                    targets,
                    role.as_deref(),
                    *any,
                    scheduled.as_deref(),
                    pg_version.as_deref(),
                    *pending,
                    timeout.as_deref(),
                    *force,
                )
                .await
            }
            Command::Reload {
                targets,
                role,
                force,
            } => self.reload(targets, role.as_deref(), *force).await,
            Command::Reinit {
                targets,
                force,
                wait,
            } => self.reinit(targets, *force, *wait).await,
            Command::Pause { cluster, wait } => {
                self.check_cluster(cluster)?;
                self.toggle_pause(true, *wait).await
            }
            Command::Resume { cluster, wait } => {
                self.check_cluster(cluster)?;
                self.toggle_pause(false, *wait).await
            }
            Command::History { cluster } => {
                self.check_cluster(cluster)?;
                self.history().await
            }
            Command::Remove { cluster } => self.remove(cluster.as_deref()).await,
            Command::Flush { targets, force } => self.flush(targets, *force).await,
            Command::Version { targets } => self.version(targets).await,
            Command::Run { .. } | Command::Validate { .. } | Command::Fencer { .. } => Err(
                CliError::Usage("run and validate are not ctl commands".into()),
            ),
        }
    }

    /// `list` / `topology`.
    fn output_members(
        &mut self,
        c: &Cluster,
        extended: bool,
        topology: bool,
    ) -> Result<(), CliError> {
        let cj = cluster_json(c);
        let mut members: Vec<Value> = cj["members"].as_array().cloned().unwrap_or_default();
        if topology {
            members = topology_order(members, c.leader_name());
        }
        let any_pending = members.iter().any(|m| m.get("pending_restart").is_some());
        let any_scheduled = members.iter().any(|m| m.get("scheduled_restart").is_some());
        let mut headers = vec![
            "Member",
            "Host",
            "Role",
            "State",
            "TL",
            "Receive LSN",
            "Lag",
            "Replay LSN",
            "Lag",
        ];
        let show_pending = extended || any_pending;
        if show_pending {
            headers.push("Pending restart");
        }
        if extended || any_scheduled {
            headers.push("Scheduled restart");
        }
        if extended {
            headers.push("Tags");
        }
        let mut rows = Vec::new();
        let mut json_rows = Vec::new();
        for m in &members {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            let host = match (m["host"].as_str(), m["port"].as_u64()) {
                (Some(h), Some(p)) if p != 5432 => format!("{h}:{p}"),
                (Some(h), _) => h.to_string(),
                _ => String::new(),
            };
            let role = role_name(m["role"].as_str().unwrap_or_default());
            let state = m["state"].as_str().unwrap_or_default().to_string();
            let tl = m["timeline"].as_u64();
            let is_leader = m["role"] == "leader" || m["role"] == "standby_leader";
            let shown_name = if topology && !is_leader {
                format!(
                    "{}+ {name}",
                    "  ".repeat(m["_depth"].as_u64().unwrap_or(1).saturating_sub(1) as usize)
                )
            } else {
                name.clone()
            };
            let mut row = vec![
                Cell::text(shown_name),
                Cell::text(host.clone()),
                Cell::text(role.clone()),
                Cell::text(state.clone()),
                tl.map(Cell::num).unwrap_or_else(Cell::empty),
            ];
            let mut jr = Map::new();
            jr.insert("Cluster".into(), json!(self.scope));
            jr.insert("Member".into(), json!(name));
            jr.insert("Host".into(), json!(host));
            jr.insert("Role".into(), json!(role));
            jr.insert("State".into(), json!(state));
            jr.insert("TL".into(), json!(tl));
            if is_leader {
                row.extend([Cell::empty(), Cell::empty(), Cell::empty(), Cell::empty()]);
            } else {
                row.push(Cell::num(m["receive_lsn"].as_str().unwrap_or_default()));
                row.push(lag_mb(&m["receive_lag"]));
                row.push(Cell::num(m["replay_lsn"].as_str().unwrap_or_default()));
                row.push(lag_mb(&m["replay_lag"]));
                jr.insert("Receive LSN".into(), m["receive_lsn"].clone());
                jr.insert("Receive Lag".into(), m["receive_lag"].clone());
                jr.insert("Replay LSN".into(), m["replay_lsn"].clone());
                jr.insert("Replay Lag".into(), m["replay_lag"].clone());
            }
            let pending = m.get("pending_restart").is_some();
            if show_pending {
                row.push(Cell::text(if pending { "*" } else { "" }));
            }
            if pending {
                jr.insert("Pending restart".into(), json!("*"));
            }
            if extended || any_scheduled {
                let s = m["scheduled_restart"]["schedule"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                row.push(Cell::text(s.clone()));
                if !s.is_empty() {
                    jr.insert("Scheduled restart".into(), json!(s));
                }
            }
            if extended {
                let tags = m
                    .get("tags")
                    .map(|t| to_yaml(t).trim_end().to_string())
                    .unwrap_or_default();
                row.push(Cell::text(tags));
                if let Some(t) = m.get("tags") {
                    jr.insert("Tags".into(), t.clone());
                }
            }
            rows.push(row);
            json_rows.push(Value::Object(jr));
        }
        match self.format {
            OutputFormat::Json => {
                let s = serde_json::to_string(&json_rows).unwrap_or_default();
                self.say(s)?;
            }
            OutputFormat::Yaml => {
                let s = to_yaml(&Value::Array(json_rows));
                write!(self.out, "{s}")?;
            }
            OutputFormat::Pretty => {
                let sysid = c.initialize.clone().unwrap_or_default();
                let title = format!("Cluster: {} ({sysid})", self.scope);
                let t = render(Some(&title), &headers, &rows);
                write!(self.out, "{t}")?;
                if cj.get("pause").is_some() {
                    self.say(" Maintenance mode: on")?;
                }
                if let Some(s) = cj.get("scheduled_switchover") {
                    let mut line = format!(
                        " Switchover scheduled at: {}",
                        s["at"].as_str().unwrap_or("")
                    );
                    if let Some(f) = s["from"].as_str() {
                        line.push_str(&format!("\n                    from: {f}"));
                    }
                    if let Some(t) = s["to"].as_str() {
                        line.push_str(&format!("\n                      to: {t}"));
                    }
                    self.say(line)?;
                }
            }
        }
        Ok(())
    }

    async fn switchover(
        &mut self,
        leader: Option<String>,
        candidate: Option<String>,
        scheduled: Option<String>,
        force: bool,
        action: &str,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let current = cluster.leader_name().map(str::to_string);
        let leader = if action == "switchover" {
            let current = current
                .clone()
                .ok_or_else(|| CliError::Failed(format!("This cluster has no leader")))?;
            match leader {
                Some(l) if l != current => {
                    return Err(CliError::Failed(format!(
                        "Member {l} is not the leader of cluster {}",
                        self.scope
                    )))
                }
                _ => Some(current),
            }
        } else {
            None
        };
        let others: Vec<String> = cluster
            .members
            .iter()
            .filter(|m| Some(m.name.as_str()) != current.as_deref())
            .map(|m| m.name.clone())
            .collect();
        let candidate = match candidate {
            Some(c) => Some(c),
            None if force => None,
            None => {
                let answer = self.prompt(&format!("Candidate {others:?}"), "")?;
                (!answer.is_empty()).then_some(answer)
            }
        };
        if action == "failover" && candidate.is_none() {
            return Err(CliError::Failed(
                "Failover could be performed only to a specific candidate".into(),
            ));
        }
        if let Some(c) = &candidate {
            if !others.contains(c) {
                if Some(c) == current.as_ref() {
                    return Err(CliError::Failed(format!(
                        "Member {c} is already the leader of cluster {}",
                        self.scope
                    )));
                }
                return Err(CliError::Failed(format!(
                    "Member {c} does not exist in cluster {} or is tagged as nofailover",
                    self.scope
                )));
            }
        }
        let scheduled_at = match scheduled.as_deref() {
            None | Some("now") => None,
            Some(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|_| CliError::Usage(format!("Unable to parse scheduled timestamp ({s}). It should be in ISO 8601 format with a time zone")))?
                    .to_rfc3339(),
            ),
        };
        if !force {
            let q = match &current {
                Some(l) => format!(
                    "Are you sure you want to {action} cluster {}, demoting current leader {l}?",
                    self.scope
                ),
                None => format!("Are you sure you want to {action} cluster {}?", self.scope),
            };
            self.confirm(&q)?;
        }
        let mut body = Map::new();
        if let Some(l) = &leader {
            body.insert("leader".into(), json!(l));
        }
        if let Some(c) = &candidate {
            body.insert("candidate".into(), json!(c));
        }
        if let Some(s) = &scheduled_at {
            body.insert("scheduled_at".into(), json!(s));
        }
        // The leader runs a switchover; with no leader the candidate takes the request.
        let target_name = current
            .clone()
            .or_else(|| candidate.clone())
            .unwrap_or_default();
        let target = cluster.member(&target_name).cloned();
        let reply = match &target {
            Some(m) => {
                self.request(m, reqwest::Method::POST, action, Some(&Value::Object(body)))
                    .await
            }
            None => Err(format!("member {target_name} is not in the DCS")),
        };
        match reply {
            Ok(r) if r.status / 100 == 2 => {
                let line = format!("{} {}", timestamp(), r.body);
                self.say(line)?;
            }
            Ok(r) => {
                return Err(CliError::Failed(format!(
                    "{} failed, details: {}, {}",
                    title_case(action),
                    r.status,
                    r.body
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "REST request failed");
                let line = format!(
                    "{} Could not {action} using Patroni api, falling back to DCS",
                    timestamp()
                );
                self.say(line)?;
                let f = Failover {
                    leader,
                    member: candidate,
                    scheduled_at,
                    ..Default::default()
                };
                self.dcs.set_failover(&f, None).await?;
            }
        }
        let c = self.load().await?;
        self.output_members(&c, false, false)
    }

    async fn edit_config(
        &mut self,
        set: &[String],
        pg: &[String],
        apply: Option<&std::path::Path>,
        replace: Option<&std::path::Path>,
        quiet: bool,
        force: bool,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let cfg = cluster.config.ok_or_else(|| {
            CliError::Failed(format!(
                "The config key does not exist in the cluster {}",
                self.scope
            ))
        })?;
        let before = serde_json::to_value(&cfg.value).unwrap_or(json!({}));
        let before_yaml = to_yaml(&before);
        let mut after = before.clone();
        let read_yaml = |p: &std::path::Path, input: &mut dyn BufRead| -> Result<Value, CliError> {
            let text = if p == std::path::Path::new("-") {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut ReadAdapter(input), &mut s)?;
                s
            } else {
                std::fs::read_to_string(p)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))?
            };
            parse_yaml_value(&text).map_err(CliError::Usage)
        };
        if let Some(p) = replace {
            after = read_yaml(p, self.input)?;
        }
        if let Some(p) = apply {
            let patch = read_yaml(p, self.input)?;
            if let Value::Object(m) = patch {
                merge_patch(&mut after, &m);
            }
        }
        for kv in set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--set {kv}: expected key=value")))?;
            let path: Vec<&str> = k.split('.').collect();
            set_path(
                &mut after,
                &path,
                parse_yaml_value(v).unwrap_or(Value::String(v.into())),
            );
        }
        for kv in pg {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--pg {kv}: expected name=value")))?;
            set_path(
                &mut after,
                &["postgresql", "parameters", k],
                parse_yaml_value(v).unwrap_or(Value::String(v.into())),
            );
        }
        if set.is_empty() && pg.is_empty() && apply.is_none() && replace.is_none() {
            after = self.run_editor(&before_yaml)?;
        }
        let after_yaml = to_yaml(&after);
        if after_yaml == before_yaml {
            return self.say("Not changed");
        }
        if !quiet {
            let diff = similar::TextDiff::from_lines(&before_yaml, &after_yaml);
            let text = diff.unified_diff().header("", "").to_string();
            write!(self.out, "{text}")?;
            self.say("")?;
        }
        if !force {
            self.confirm("Apply these changes?")?;
        }
        let new_cfg: GlobalConfig = serde_json::from_value(after)
            .map_err(|e| CliError::Failed(format!("invalid configuration: {e}")))?;
        new_cfg
            .timing()
            .map_err(|e| CliError::Failed(format!("invalid configuration: {e}")))?;
        match self.dcs.set_config(&new_cfg, Some(cfg.version)).await {
            Ok(()) => self.say("Configuration changed"),
            Err(DcsError::Conflict(_)) => Err(CliError::Failed(
                "The config key has been modified since the editing started".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    fn run_editor(&mut self, yaml: &str) -> Result<Value, CliError> {
        let editor = self.editor.clone().ok_or_else(|| {
            CliError::Usage("no $EDITOR set: use --set, --pg, --apply or --replace".into())
        })?;
        let path =
            std::env::temp_dir().join(format!("hactl-edit-config-{}.yaml", std::process::id()));
        std::fs::write(&path, yaml)?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
            .map_err(|e| CliError::Failed(format!("cannot run the editor {editor}: {e}")))?;
        let text = std::fs::read_to_string(&path)?;
        let _ = std::fs::remove_file(&path);
        if !status.success() {
            return Err(CliError::Failed(format!(
                "the editor {editor} exited with {status}"
            )));
        }
        parse_yaml_value(&text).map_err(CliError::Usage)
    }

    /// Members selected by names and role, leader first.
    fn select_members(
        &self,
        cluster: &Cluster,
        t: &Targets,
        role: Option<&str>,
    ) -> Result<Vec<Member>, CliError> {
        let names = self.member_names(t);
        for n in &names {
            if cluster.member(n).is_none() {
                return Err(CliError::Usage(format!(
                    "{n} is not a member of cluster {}",
                    self.scope
                )));
            }
        }
        let leader = cluster.leader_name();
        let mut out: Vec<Member> = cluster
            .members
            .iter()
            .filter(|m| names.is_empty() || names.contains(&m.name))
            .filter(|m| match role {
                Some("leader" | "primary") => Some(m.name.as_str()) == leader,
                Some("replica") => Some(m.name.as_str()) != leader,
                _ => true,
            })
            .cloned()
            .collect();
        out.sort_by_key(|m| (Some(m.name.as_str()) != leader, m.name.clone()));
        if out.is_empty() {
            return Err(CliError::Usage("No members selected".into()));
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn restart(
        &mut self,
        t: &Targets,
        role: Option<&str>,
        any: bool,
        scheduled: Option<&str>,
        pg_version: Option<&str>,
        pending: bool,
        timeout: Option<&str>,
        force: bool,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let mut members = self.select_members(&cluster, t, role)?;
        if pending {
            members.retain(|m| m.data.pending_restart == Some(true));
            if members.is_empty() {
                return self.say("No members with a pending restart");
            }
        }
        if any {
            members.truncate(1);
        }
        let mut body = Map::new();
        if let Some(s) = scheduled.filter(|s| *s != "now") {
            body.insert("schedule".into(), json!(s));
        }
        if let Some(v) = pg_version {
            body.insert("postgres_version".into(), json!(v));
        }
        if pending {
            body.insert("restart_pending".into(), json!(true));
        }
        if let Some(t) = timeout {
            body.insert("timeout".into(), json!(t));
        }
        if !force {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            self.confirm(&format!(
                "Are you sure you want to restart members {}?",
                names.join(", ")
            ))?;
        }
        let mut failed = 0;
        for m in &members {
            let reply = self
                .request(
                    m,
                    reqwest::Method::POST,
                    "restart",
                    Some(&Value::Object(body.clone())),
                )
                .await;
            let line = match reply {
                Ok(r) if r.status == 200 => format!("Success: restart on member {}", m.name),
                Ok(r) if r.status == 202 => {
                    format!("Success: restart scheduled on member {}", m.name)
                }
                Ok(r) if r.status == 409 => {
                    failed += 1;
                    format!(
                        "Failed: another restart is already scheduled on member {}",
                        m.name
                    )
                }
                Ok(r) => {
                    failed += 1;
                    format!(
                        "Failed: restart for member {}, status code={}, ({})",
                        m.name, r.status, r.body
                    )
                }
                Err(e) => {
                    failed += 1;
                    format!("Failed: restart for member {}, ({e})", m.name)
                }
            };
            self.say(line)?;
        }
        if failed > 0 {
            return Err(CliError::Failed(format!(
                "restart failed on {failed} member(s)"
            )));
        }
        Ok(())
    }

    async fn reload(
        &mut self,
        t: &Targets,
        role: Option<&str>,
        force: bool,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let members = self.select_members(&cluster, t, role)?;
        if !force {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            self.confirm(&format!(
                "Are you sure you want to reload members {}?",
                names.join(", ")
            ))?;
        }
        let loop_wait = cluster
            .global_config()
            .timing()
            .map(|t| t.loop_wait_ms / 1000)
            .unwrap_or(10);
        let mut failed = 0;
        for m in &members {
            let line = match self.request(m, reqwest::Method::POST, "reload", None).await {
                Ok(r) if r.status == 200 => format!("No changes to apply on member {}", m.name),
                Ok(r) if r.status == 202 => format!(
                    "Reload request received for member {} and will be processed within {loop_wait} seconds",
                    m.name
                ),
                Ok(r) => {
                    failed += 1;
                    format!("Failed: reload for member {}, status code={}, ({})", m.name, r.status, r.body)
                }
                Err(e) => {
                    failed += 1;
                    format!("Failed: reload for member {}, ({e})", m.name)
                }
            };
            self.say(line)?;
        }
        if failed > 0 {
            return Err(CliError::Failed(format!(
                "reload failed on {failed} member(s)"
            )));
        }
        Ok(())
    }

    async fn reinit(&mut self, t: &Targets, force: bool, wait: bool) -> Result<(), CliError> {
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
            let body = json!({ "force": force });
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

    async fn toggle_pause(&mut self, pause: bool, wait: bool) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let paused = cluster.global_config().is_paused();
        if pause && paused {
            return Err(CliError::Failed("Cluster is already paused".into()));
        }
        if !pause && !paused {
            return Err(CliError::Failed("Cluster is not paused".into()));
        }
        let leader = cluster.leader_name();
        let mut members: Vec<&Member> = cluster
            .members
            .iter()
            .filter(|m| m.data.api_url.is_some())
            .collect();
        members.sort_by_key(|m| (Some(m.name.as_str()) != leader, m.name.clone()));
        let body = json!({ "pause": if pause { json!(true) } else { Value::Null } });
        let word = if pause { "paused" } else { "resumed" };
        for m in members {
            match self
                .request(m, reqwest::Method::PATCH, "config", Some(&body))
                .await
            {
                Ok(r) if r.status == 200 => {
                    if wait {
                        self.say(format!(
                            "'{}' request sent, waiting until it is recognized by all nodes",
                            if pause { "pause" } else { "resume" }
                        ))?;
                        for _ in 0..600 {
                            tokio::time::sleep(self.poll_interval).await;
                            let c = self.load().await?;
                            if c.members
                                .iter()
                                .all(|m| (m.data.pause == Some(true)) == pause)
                            {
                                break;
                            }
                        }
                    }
                    return self.say(format!("Success: cluster management is {word}"));
                }
                Ok(r) => {
                    return Err(CliError::Failed(format!(
                        "Failed: {} on member {}, status code={}, ({})",
                        if pause { "pause" } else { "resume" },
                        m.name,
                        r.status,
                        r.body
                    )))
                }
                Err(e) => {
                    tracing::warn!(member = %m.name, error = %e, "member not reachable; trying the next")
                }
            }
        }
        Err(CliError::Failed(
            "Can not find accessible cluster member".into(),
        ))
    }

    async fn history(&mut self) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let lines = cluster.history.map(|h| h.value).unwrap_or_default();
        match self.format {
            OutputFormat::Json | OutputFormat::Yaml => {
                let rows: Vec<Value> = lines
                    .iter()
                    .map(|e| {
                        json!({
                            "TL": e.0.first(), "LSN": e.0.get(1), "Reason": e.0.get(2),
                            "Timestamp": e.0.get(3), "New Leader": e.0.get(4),
                        })
                    })
                    .collect();
                let s = if self.format == OutputFormat::Json {
                    serde_json::to_string(&rows).unwrap_or_default() + "\n"
                } else {
                    to_yaml(&Value::Array(rows))
                };
                write!(self.out, "{s}")?;
            }
            OutputFormat::Pretty => {
                let rows: Vec<Vec<Cell>> = lines
                    .iter()
                    .map(|e| {
                        let s =
                            |i: usize| e.0.get(i).and_then(Value::as_str).unwrap_or("").to_string();
                        vec![
                            Cell::num(e.0.first().map(|v| v.to_string()).unwrap_or_default()),
                            Cell::num(e.0.get(1).map(|v| v.to_string()).unwrap_or_default()),
                            Cell::text(s(2)),
                            Cell::text(s(3)),
                            Cell::text(s(4)),
                        ]
                    })
                    .collect();
                let t = render(
                    None,
                    &["TL", "LSN", "Reason", "Timestamp", "New Leader"],
                    &rows,
                );
                write!(self.out, "{t}")?;
            }
        }
        Ok(())
    }

    async fn remove(&mut self, cluster_arg: Option<&str>) -> Result<(), CliError> {
        let cluster = self.load().await?;
        self.output_members(&cluster, false, false)?;
        let name = self.prompt("Please confirm the cluster name to remove", "")?;
        if name != self.scope || cluster_arg.map_or(false, |c| c != self.scope) {
            return Err(CliError::Failed(
                "Cluster names specified do not match".into(),
            ));
        }
        let answer = self.prompt(
            &format!(
                "You are about to remove all information in DCS for {}, please type: \"Yes I am aware\"",
                self.scope
            ),
            "",
        )?;
        if answer != "Yes I am aware" {
            return Err(CliError::Failed(
                "You did not exactly type \"Yes I am aware\"".into(),
            ));
        }
        if let Some(l) = cluster.leader_name() {
            let m = cluster.member(l);
            if m.map_or(false, Member::is_running) {
                let given = self.prompt(
                    "This cluster currently is healthy. Please specify the leader name to continue",
                    "",
                )?;
                if given != l {
                    return Err(CliError::Failed(
                        "You did not specify the current leader of the cluster".into(),
                    ));
                }
            }
        }
        self.dcs.delete_cluster().await?;
        Ok(())
    }

    async fn flush(&mut self, t: &Targets, force: bool) -> Result<(), CliError> {
        let mut names = self.member_names(t);
        let target = names.pop().unwrap_or_default();
        let cluster = self.load().await?;
        match target.as_str() {
            "restart" => {
                let members = self.select_members(&cluster, &Targets { names }, None)?;
                if !force {
                    self.confirm("Are you sure you want to flush scheduled restarts?")?;
                }
                for m in &members {
                    let line = match self
                        .request(m, reqwest::Method::DELETE, "restart", None)
                        .await
                    {
                        Ok(r) if r.status == 200 => {
                            format!("Success: flush scheduled restart for member {}", m.name)
                        }
                        Ok(r) if r.status == 404 => {
                            format!("Success: no scheduled restarts for member {}", m.name)
                        }
                        Ok(r) => format!(
                            "Failed: flush scheduled restart for member {}, status code={}, ({})",
                            m.name, r.status, r.body
                        ),
                        Err(e) => format!(
                            "Failed: flush scheduled restart for member {}, ({e})",
                            m.name
                        ),
                    };
                    self.say(line)?;
                }
                Ok(())
            }
            "switchover" => {
                let Some(f) = cluster
                    .pending_failover()
                    .filter(|f| f.value.scheduled_at.is_some())
                else {
                    return self.say("No pending scheduled switchover");
                };
                let version = f.version;
                let via_rest = match cluster.leader_member() {
                    Some(m) => self
                        .request(m, reqwest::Method::DELETE, "switchover", None)
                        .await
                        .ok(),
                    None => None,
                };
                match via_rest {
                    Some(r) if r.status == 200 || r.status == 404 => {
                        self.say(format!("Success: {}", r.body))
                    }
                    _ => {
                        self.dcs
                            .set_failover(&Failover::default(), Some(version))
                            .await?;
                        self.say("Success: scheduled switchover deleted")
                    }
                }
            }
            other => Err(CliError::Usage(format!(
                "flush takes `restart` or `switchover`, not {other:?}"
            ))),
        }
    }

    async fn version(&mut self, t: &Targets) -> Result<(), CliError> {
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

/// Leader first, then each member under the one it replicates from (`replicatefrom` tag), with its depth.
fn topology_order(members: Vec<Value>, leader: Option<&str>) -> Vec<Value> {
    let upstream =
        |m: &Value| -> Option<String> { m["tags"]["replicatefrom"].as_str().map(str::to_string) };
    let mut out = Vec::new();
    let mut placed = std::collections::BTreeSet::new();
    fn place(
        name: &str,
        depth: u64,
        members: &[Value],
        upstream: &dyn Fn(&Value) -> Option<String>,
        leader: Option<&str>,
        out: &mut Vec<Value>,
        placed: &mut std::collections::BTreeSet<String>,
    ) {
        for m in members {
            let n = m["name"].as_str().unwrap_or_default();
            if placed.contains(n) || Some(n) == leader {
                continue;
            }
            let up = upstream(m).unwrap_or_else(|| leader.unwrap_or("").to_string());
            if up == name {
                placed.insert(n.to_string());
                let mut v = m.clone();
                v["_depth"] = json!(depth);
                out.push(v);
                place(n, depth + 1, members, upstream, leader, out, placed);
            }
        }
    }
    if let Some(l) = leader {
        if let Some(m) = members.iter().find(|m| m["name"] == l) {
            out.push(m.clone());
            placed.insert(l.to_string());
        }
        place(l, 1, &members, &upstream, leader, &mut out, &mut placed);
    }
    for m in &members {
        if !placed.contains(m["name"].as_str().unwrap_or_default()) {
            let mut v = m.clone();
            v["_depth"] = json!(1);
            out.push(v);
        }
    }
    out
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `150018` → `15.18`, `90624` → `9.6.24`.
fn format_pg_version(v: u64) -> String {
    if v >= 100_000 {
        format!("{}.{}", v / 10000, v % 10000)
    } else {
        format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
    }
}

fn set_path(root: &mut Value, path: &[&str], value: Value) {
    if !root.is_object() {
        *root = json!({});
    }
    let obj = root.as_object_mut().expect("object");
    match path {
        [] => {}
        [last] => {
            if value.is_null() {
                obj.remove(*last);
            } else {
                obj.insert(last.to_string(), value);
            }
        }
        [first, rest @ ..] => {
            let child = obj.entry(first.to_string()).or_insert_with(|| json!({}));
            set_path(child, rest, value);
        }
    }
}

/// A YAML document (or scalar) as JSON.
pub fn parse_yaml_value(text: &str) -> Result<Value, String> {
    let y: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    Ok(crate::config::value::yaml_to_json(y))
}

/// JSON as block YAML, keys in their order, as `show-config` prints it.
pub fn to_yaml(v: &Value) -> String {
    serde_norway::to_string(v).unwrap_or_default()
}

/// `Read` over a `BufRead` trait object.
struct ReadAdapter<'a>(&'a mut dyn BufRead);
impl std::io::Read for ReadAdapter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

/// The entry point of the `hactl` binary for ctl commands: loads the config, builds a lease-less DCS client and runs
/// `cmd`, printing to stdout and reading answers from stdin.
pub async fn run_ctl(
    config: &crate::config::Config,
    format: OutputFormat,
    cmd: &Command,
) -> Result<(), CliError> {
    let dcs = crate::dcs::connect(config, crate::dcs::DcsMode::Ctl)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut ctl = Ctl {
        scope: config.scope.clone(),
        dcs,
        http: http_client(),
        auth: config.ctl_auth().cloned(),
        format,
        out: &mut out,
        input: &mut input,
        editor: std::env::var("EDITOR").ok().or_else(|| Some("vi".into())),
        poll_interval: Duration::from_secs(1),
    };
    ctl.execute(cmd).await
}
