//! `list` and `topology`: the members and their state as patronictl prints them (a table, JSON or YAML), built
//! from the same [`cluster_json`] the REST API's `/cluster` serves; `topology` indents each replica under the member
//! it replicates from.

use std::time::Duration;

use ha_core::model::Cluster;
use serde_json::{json, Map, Value};

use super::{timestamp, to_yaml, CliError, Ctl};
use crate::cli::table::{render, Cell};
use crate::cli::OutputFormat;
use crate::json::cluster_json;

/// patronictl's `list` columns (`tsv` prints them all; the table leaves out the cluster and titles the lags `Lag`),
/// before the optional ones.
const COLUMNS: [&str; 10] = [
    "Cluster",
    "Member",
    "Host",
    "Role",
    "State",
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
];

impl Ctl<'_> {
    /// `list` and `topology`: the members of each cluster named (the configured one by default), a timestamp first
    /// when asked, again every `watch` until interrupted.
    pub(super) async fn list(
        &mut self,
        clusters: &[String],
        extended: bool,
        ts: bool,
        topology: bool,
        watch: Option<Duration>,
    ) -> Result<(), CliError> {
        let names = if clusters.is_empty() {
            vec![self.scope.clone()]
        } else {
            clusters.to_vec()
        };
        let home = (self.scope.clone(), self.dcs.clone());
        loop {
            if watch.is_some() && self.terminal {
                // patronictl clears the screen between refreshes (only on a terminal, as click does).
                write!(self.out, "\x1b[H\x1b[2J")?;
            }
            if ts {
                let t = timestamp();
                self.say(t)?;
            }
            for name in &names {
                self.check_cluster(&Some(name.clone()))?;
                let c = self.load().await;
                (self.scope, self.dcs) = home.clone();
                self.output_members_named(name, &c?, extended, topology)?;
            }
            let Some(every) = watch else {
                return Ok(());
            };
            self.out.flush()?;
            tokio::time::sleep(every).await;
        }
    }

    fn output_members_named(
        &mut self,
        name: &str,
        c: &Cluster,
        extended: bool,
        topology: bool,
    ) -> Result<(), CliError> {
        let scope = std::mem::replace(&mut self.scope, name.to_string());
        let r = self.output_members(c, extended, topology);
        self.scope = scope;
        r
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
        // patronictl shows every host with its port once one member runs on another port than 5432 or two share
        // a host.
        let hosts: Vec<&str> = members.iter().filter_map(|m| m["host"].as_str()).collect();
        let unique: std::collections::BTreeSet<&str> = hosts.iter().copied().collect();
        let append_port = unique.len() < hosts.len()
            || members
                .iter()
                .any(|m| m["port"].as_u64().is_some_and(|p| p != 5432));
        let any_scheduled = members.iter().any(|m| m.get("scheduled_restart").is_some());
        // The table's headers: patronictl's columns without the cluster, both lags titled `Lag`.
        let mut headers: Vec<&str> = COLUMNS[1..]
            .iter()
            .map(|c| if c.ends_with(" Lag") { "Lag" } else { *c })
            .collect();
        let any_reason = members.iter().any(|m| {
            m["pending_restart_reason"]
                .as_object()
                .is_some_and(|o| !o.is_empty())
        });
        let show_pending = extended || any_pending;
        if show_pending {
            headers.push("Pending restart");
        }
        let show_reason = extended || any_reason;
        if show_reason {
            headers.push("Pending restart reason");
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
                (Some(h), Some(p)) if append_port => format!("{h}:{p}"),
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
            jr.insert("TL".into(), tl.map(|t| json!(t)).unwrap_or(json!("")));
            if is_leader {
                row.extend([Cell::empty(), Cell::empty(), Cell::empty(), Cell::empty()]);
            } else {
                row.push(Cell::num(m["receive_lsn"].as_str().unwrap_or_default()));
                row.push(lag_mb(&m["receive_lag"]));
                row.push(Cell::num(m["replay_lsn"].as_str().unwrap_or_default()));
                row.push(lag_mb(&m["replay_lag"]));
                jr.insert("Receive LSN".into(), m["receive_lsn"].clone());
                jr.insert("Receive Lag".into(), lag_value(&m["receive_lag"]));
                jr.insert("Replay LSN".into(), m["replay_lsn"].clone());
                jr.insert("Replay Lag".into(), lag_value(&m["replay_lag"]));
            }
            let pending = m.get("pending_restart").is_some();
            if show_pending {
                row.push(Cell::text(if pending { "*" } else { "" }));
            }
            if pending {
                jr.insert("Pending restart".into(), json!("*"));
            }
            if show_reason {
                let shorten = self.format == OutputFormat::Pretty;
                let reason = restart_reason(&m["pending_restart_reason"], shorten);
                row.push(Cell::text(reason.clone()));
                if !reason.is_empty() {
                    jr.insert("Pending restart reason".into(), json!(reason));
                }
            }
            if extended || any_scheduled {
                let sr = &m["scheduled_restart"];
                let mut s = sr["schedule"].as_str().unwrap_or("").to_string();
                if let Some(v) = sr.get("postgres_version").filter(|v| !v.is_null()) {
                    s.push_str(&format!(
                        " if version < {}",
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string())
                    ));
                }
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
            OutputFormat::Tsv => {
                let mut columns = COLUMNS.to_vec();
                columns.extend(headers.iter().skip(COLUMNS.len() - 1).copied());
                let rows: Vec<Vec<Value>> = json_rows
                    .iter()
                    .map(|r| {
                        columns
                            .iter()
                            .map(|c| r.get(*c).cloned().unwrap_or(json!("")))
                            .collect()
                    })
                    .collect();
                let text = tsv(&columns, &rows, "\t");
                write!(self.out, "{text}")?;
            }
            OutputFormat::Json => {
                let s = serde_json::to_string(&without_empty(json_rows)).unwrap_or_default();
                self.say(s)?;
            }
            OutputFormat::Yaml => {
                let json_rows = without_empty(json_rows);
                let s = to_yaml(&Value::Array(json_rows));
                write!(self.out, "{s}")?;
            }
            OutputFormat::Pretty => {
                let sysid = match c.initialize.as_deref() {
                    None => "uninitialized",
                    Some("") => "initializing",
                    Some(s) => s,
                };
                let title = match self.group {
                    Some(g) => format!("Citus cluster: {} (group: {g}, {sysid})", self.scope),
                    None => format!("Cluster: {} ({sysid})", self.scope),
                };
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

/// patronictl's `Pending restart reason`: `param: old->new` per line; in a table, a line over 50 characters is
/// hidden.
fn restart_reason(reasons: &Value, shorten: bool) -> String {
    let Some(o) = reasons.as_object() else {
        return String::new();
    };
    o.iter()
        .map(|(k, v)| {
            let text = |x: &Value| {
                x.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| x.to_string())
            };
            if v.get("old_value").is_none() {
                return k.clone();
            }
            let full = format!("{k}: {}->{}", text(&v["old_value"]), text(&v["new_value"]));
            if shorten && full.chars().count() > 50 {
                format!("{k}: [hidden - too long]")
            } else {
                full
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// patronictl leaves empty values out of its machine formats (JSON, YAML).
fn without_empty(mut rows: Vec<Value>) -> Vec<Value> {
    for r in &mut rows {
        if let Value::Object(o) = r {
            o.retain(|_, v| v != "");
        }
    }
    rows
}

/// A lag as patronictl's machine formats carry it: whole MiB, or empty when unknown.
fn lag_value(v: &Value) -> Value {
    match v.as_u64() {
        Some(b) => json!((b as f64 / 1_048_576.0).round() as u64),
        None => json!(""),
    }
}

/// patronictl's `tsv`: a header row, then each row, values joined by `delimiter` (`None` for a null, as Python
/// prints it).
pub(super) fn tsv(columns: &[&str], rows: &[Vec<Value>], delimiter: &str) -> String {
    let mut out = columns.join(delimiter);
    out.push('\n');
    for r in rows {
        let cells: Vec<String> = r.iter().map(python_str).collect();
        out.push_str(&cells.join(delimiter));
        out.push('\n');
    }
    out
}

/// A value as Python's `str()` prints it, which is what patronictl's tsv shows.
pub(super) fn python_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn lag_mb(v: &Value) -> Cell {
    match v.as_u64() {
        Some(b) => Cell::num((b as f64 / 1_048_576.0).round() as u64),
        None => Cell::text(v.as_str().unwrap_or("")),
    }
}
