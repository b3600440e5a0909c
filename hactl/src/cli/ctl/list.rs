//! `list` and `topology`: the members and their state as patronictl prints them (a table, JSON or YAML), built
//! from the same [`cluster_json`] the REST API's `/cluster` serves; `topology` indents each replica under the member
//! it replicates from.

use ha_core::model::Cluster;
use serde_json::{json, Map, Value};

use super::{timestamp, to_yaml, CliError, Ctl};
use crate::cli::table::{render, Cell};
use crate::cli::OutputFormat;
use crate::json::cluster_json;

impl Ctl<'_> {
    /// `list`: the members, with a timestamp first when asked.
    pub(super) async fn list(&mut self, extended: bool, ts: bool) -> Result<(), CliError> {
        if ts {
            let t = timestamp();
            self.say(t)?;
        }
        let c = self.load().await?;
        self.output_members(&c, extended, false)
    }

    /// `topology`: `list`, indented by replication topology.
    pub(super) async fn topology(&mut self) -> Result<(), CliError> {
        let c = self.load().await?;
        self.output_members(&c, false, true)
    }

    /// `list` / `topology`.
    pub(super) fn output_members(
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
