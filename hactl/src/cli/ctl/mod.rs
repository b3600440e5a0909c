//! patronictl's commands over a [`DcsClient`] (lease-less: reads and compare-and-set writes, never the lock) and the
//! members' REST API (`api_url` from their member keys). Output goes to a writer and questions are read from a
//! reader, so each command is tested against a running simulated cluster.
//!
//! # Layout
//! This module is the shared context, [`Ctl`]: the DCS, the REST client, the writer and reader, the helpers every
//! command uses (confirm, prompt, member selection, a member request) and [`Ctl::execute`], which dispatches a
//! parsed [`Command`] to its file. One file per command, as mini-redis has one per Redis command: `list` (and
//! `topology`), `switchover` (and `failover`), `edit_config`, `show_config`, `restart`, `reload`, `reinit`, `pause`
//! (and `resume`), `history`, `remove`, `flush`, `version`. The command files are children of this module so they
//! reach the context's private helpers without widening them.

mod cluster_role;
mod dsn;
mod edit_config;
mod flush;
mod history;
mod list;
mod pause;
mod query;
mod reinit;
mod reload;
mod remove;
mod restart;
mod show_config;
mod switchover;
mod version;

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use ha_core::dcs::{DcsClient, DcsError};
use ha_core::model::{Cluster, Member};
use serde_json::Value;

use super::{Command, OutputFormat, Targets};
use crate::client::{self, Reply};
use crate::config::BasicAuth;

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
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Opens a lease-less client for another cluster than the configured one (`list A B`, `dsn other`), as
/// patronictl reaches any cluster of its DCS by name.
pub type Connector = Arc<dyn Fn(&str) -> Result<Arc<dyn DcsClient>, CliError> + Send + Sync>;

/// Everything a command needs: the DCS, an HTTP client for members' REST APIs, where to print and where to read
/// answers from.
pub struct Ctl<'a> {
    pub scope: String,
    pub dcs: Arc<dyn DcsClient>,
    pub http: reqwest::Client,
    pub auth: Option<BasicAuth>,
    pub format: OutputFormat,
    pub out: &'a mut dyn Write,
    pub input: &'a mut dyn BufRead,
    /// `$EDITOR` for edit-config.
    pub editor: Option<String>,
    /// How often `--wait` polls.
    pub poll_interval: Duration,
    /// Clients for other clusters by name; without it only `scope` is reachable.
    pub connect: Option<Connector>,
    /// The Citus group `--group` named (for titles; the clients already address its keys).
    pub group: Option<u32>,
    /// Whether `out` is a terminal (`-W` clears the screen between refreshes there, as patronictl).
    pub terminal: bool,
}

/// patronictl's timestamp.
fn timestamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
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

    /// Makes `cluster` (when named) the one the command works on: another cluster of the same DCS when a
    /// [`Connector`] is there, as patronictl.
    fn check_cluster(&mut self, cluster: &Option<String>) -> Result<(), CliError> {
        match (cluster, &self.connect) {
            (Some(c), _) if c == &self.scope => Ok(()),
            (Some(c), Some(connect)) => {
                self.dcs = connect(c)?;
                self.scope = c.clone();
                Ok(())
            }
            (Some(c), None) => Err(CliError::Usage(format!(
                "cluster {c} is not the configured one ({}); use -c with its config",
                self.scope
            ))),
            (None, _) => Ok(()),
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
            .filter(|m| role.is_none_or(|r| role_matches(cluster, m, r)))
            .cloned()
            .collect();
        out.sort_by_key(|m| (Some(m.name.as_str()) != leader, m.name.clone()));
        if out.is_empty() {
            return Err(CliError::Usage("No members selected".into()));
        }
        Ok(out)
    }

    /// Runs one command (not `run`/`validate`, which the binary handles).
    pub async fn execute(&mut self, cmd: &Command) -> Result<(), CliError> {
        match cmd {
            Command::List {
                clusters,
                extended,
                timestamp: ts,
                format,
                watch,
            } => {
                if let Some(f) = format.format {
                    self.format = f;
                }
                self.list(clusters, *extended, *ts, false, watch.interval())
                    .await
            }
            Command::Topology { clusters, watch } => {
                self.list(clusters, false, false, true, watch.interval())
                    .await
            }
            Command::Query {
                cluster,
                command,
                file,
                role,
                member,
                username,
                password,
                dbname,
                delimiter,
                format,
                watch,
            } => {
                self.check_cluster(cluster)?;
                self.format = *format;
                let sql = query::sql_text(command.as_deref(), file.as_deref())?;
                let target = query::Target {
                    role: role.clone(),
                    member: member.clone(),
                    username: username.clone(),
                    ask_password: *password,
                    dbname: dbname.clone(),
                };
                let delimiter = delimiter.replace("\\t", "\t");
                self.query(&sql, &target, &delimiter, watch.interval())
                    .await
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
                self.show_config().await
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
                from_leader,
            } => self.reinit(targets, *force, *wait, *from_leader).await,
            Command::Pause { cluster, wait } => {
                self.check_cluster(cluster)?;
                self.toggle_pause(true, *wait).await
            }
            Command::Resume { cluster, wait } => {
                self.check_cluster(cluster)?;
                self.toggle_pause(false, *wait).await
            }
            Command::History { cluster, format } => {
                self.check_cluster(cluster)?;
                if let Some(f) = format.format {
                    self.format = f;
                }
                self.history().await
            }
            Command::Remove { cluster, format } => {
                if let Some(f) = format.format {
                    self.format = f;
                }
                self.remove(cluster.as_deref()).await
            }
            Command::Flush {
                targets,
                role,
                force,
            } => self.flush(targets, role.as_deref(), *force).await,
            Command::Version { targets } => self.version(targets).await,
            Command::DemoteCluster {
                cluster,
                host,
                port,
                restore_command,
                primary_slot_name,
                force,
            } => {
                self.check_cluster(cluster)?;
                let source = cluster_role::StandbySource {
                    host: host.clone(),
                    port: *port,
                    restore_command: restore_command.clone(),
                    primary_slot_name: primary_slot_name.clone(),
                };
                self.change_cluster_role(Some(&source), *force).await
            }
            Command::PromoteCluster { cluster, force } => {
                self.check_cluster(cluster)?;
                self.change_cluster_role(None, *force).await
            }
            Command::Dsn {
                cluster,
                role,
                member,
            } => {
                self.dsn(cluster.as_deref(), role.as_deref(), member.as_deref())
                    .await
            }
            Command::Run { .. }
            | Command::Validate { .. }
            | Command::Fencer { .. }
            | Command::Template { .. } => Err(CliError::Usage(
                "run and validate are not ctl commands".into(),
            )),
        }
    }
}

/// patronictl's role filter (`get_all_members`): `leader` is the lock holder, `primary` a lock holder that is not
/// a standby leader, `standby-leader` one that is, `replica`/`standby` every other member, `any` all.
pub(crate) fn role_matches(cluster: &Cluster, m: &Member, role: &str) -> bool {
    let is_leader = cluster.leader_name() == Some(m.name.as_str());
    let standby_leader = m.data.role.as_deref() == Some("standby_leader");
    match role {
        "leader" => is_leader,
        "primary" => is_leader && !standby_leader,
        "standby-leader" => is_leader && standby_leader,
        "replica" | "standby" => !is_leader,
        _ => true,
    }
}

/// patronictl's `get_any_member`: the named member, else the first with `role` (the leader by default);
/// `--role` and `--member` together are refused.
pub(crate) fn any_member<'c>(
    cluster: &'c Cluster,
    role: Option<&str>,
    member: Option<&str>,
) -> Result<Option<&'c Member>, CliError> {
    if role.is_some() && member.is_some() {
        return Err(CliError::Usage(
            "--role and --member are mutually exclusive options".into(),
        ));
    }
    let role = role.unwrap_or(if member.is_some() { "any" } else { "leader" });
    let mut candidates: Vec<&Member> = cluster
        .members
        .iter()
        .filter(|m| role_matches(cluster, m, role))
        .filter(|m| member.is_none_or(|n| m.name == n))
        .collect();
    // A running member first, so `-r replica` does not pick one that is down.
    candidates.sort_by_key(|m| !m.is_running());
    Ok(candidates.first().copied())
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

/// The entry point of the `hactl` binary for ctl commands: loads the config, builds a lease-less DCS client and runs
/// `cmd`, printing to stdout and reading answers from stdin.
pub async fn run_ctl(
    config: &crate::config::Config,
    format: OutputFormat,
    group: Option<u32>,
    cmd: &Command,
) -> Result<(), CliError> {
    // A Citus group's keys live under `<scope>/<group>/`, as Patroni writes them.
    let base = config.clone();
    let connect: Connector = Arc::new(move |name: &str| {
        let mut c = base.clone();
        c.scope = match group {
            Some(g) => format!("{name}/{g}"),
            None => name.to_string(),
        };
        Ok(crate::dcs::connect_ctl(&c)?)
    });
    let dcs = connect(&config.scope)?;
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut ctl = Ctl {
        scope: config.scope.clone(),
        dcs,
        http: crate::client::http_client_with(&config.client_tls())?,
        auth: config.ctl_auth().cloned(),
        format,
        out: &mut out,
        input: &mut input,
        editor: std::env::var("EDITOR").ok().or_else(|| Some("vi".into())),
        poll_interval: Duration::from_secs(1),
        connect: Some(connect),
        group,
        terminal,
    };
    ctl.execute(cmd).await
}
