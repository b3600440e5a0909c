//! `query`: run SQL on a member (the leader by default, or one chosen by `--role` / `--member`) and print the
//! rows, as patronictl's `query`: tab-separated by default, a header row first; an error is printed as a row
//! (`timestamp`, `ERROR, SQLSTATE: ...`) and the command goes on, so `-W` keeps watching through a failover.
//!
//! The connection is the member's `conn_url` with libpq's defaults where the command line is silent: the user is
//! `-U`, else `PGUSER`, else the operating-system user; the database `-d`, else `PGDATABASE`, else the user's name;
//! the password is asked with `--password`, else `PGPASSWORD`. Plain TCP (no TLS), as the member's `conn_url`
//! gives no TLS settings.

use std::time::Duration;

use ha_core::model::Member;
use serde_json::{json, Map, Value};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::list::{python_str, tsv};
use super::{timestamp, to_yaml, CliError, Ctl};
use crate::cli::table::{render, Cell};
use crate::cli::OutputFormat;

/// Whom to ask and as whom.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub role: Option<String>,
    pub member: Option<String>,
    pub username: Option<String>,
    pub ask_password: bool,
    pub dbname: Option<String>,
}

/// The SQL of `-c` or of `--file` (one of the two, as patronictl requires).
pub(super) fn sql_text(
    command: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<String, CliError> {
    match (command, file) {
        (Some(_), Some(_)) => Err(CliError::Usage(
            "--file and --command are mutually exclusive options".into(),
        )),
        (Some(c), None) => Ok(c.to_string()),
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", f.display()))),
        (None, None) => Err(CliError::Usage(
            "You need to specify either --command or --file".into(),
        )),
    }
}

/// One result: its column names (none when the SQL returned no rows description, e.g. an error) and rows.
struct Answer {
    columns: Option<Vec<String>>,
    rows: Vec<Vec<Value>>,
}

/// The libpq-default credentials the module head describes.
struct Credentials {
    user: String,
    password: Option<String>,
    dbname: String,
}

impl Ctl<'_> {
    pub(super) async fn query(
        &mut self,
        sql: &str,
        target: &Target,
        delimiter: &str,
        watch: Option<Duration>,
    ) -> Result<(), CliError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let user = target
            .username
            .clone()
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        let password = if target.ask_password {
            Some(self.prompt("Password", "")?)
        } else {
            env("PGPASSWORD")
        };
        let dbname = target
            .dbname
            .clone()
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let creds = Credentials {
            user,
            password,
            dbname,
        };
        // patronictl reads the cluster once and keeps its connection between refreshes; a failed one is made
        // again on the next refresh.
        let cluster = self.load().await?;
        let mut client: Option<tokio_postgres::Client> = None;
        loop {
            let answer = match query_member(&cluster, &mut client, target, &creds, sql).await {
                Ok(a) => a,
                Err(message) => {
                    client = None;
                    Answer {
                        columns: None,
                        rows: vec![vec![json!(timestamp_seconds()), json!(message)]],
                    }
                }
            };
            self.print_answer(&answer, delimiter)?;
            let Some(every) = watch else {
                return Ok(());
            };
            self.out.flush()?;
            tokio::time::sleep(every).await;
        }
    }

    fn print_answer(&mut self, a: &Answer, delimiter: &str) -> Result<(), CliError> {
        let columns: Vec<&str> = a.columns.iter().flatten().map(String::as_str).collect();
        match self.format {
            OutputFormat::Tsv => {
                let text = if columns.is_empty() {
                    let rows: Vec<String> = a
                        .rows
                        .iter()
                        .map(|r| r.iter().map(python_str).collect::<Vec<_>>().join(delimiter))
                        .collect();
                    rows.iter().map(|r| format!("{r}\n")).collect()
                } else {
                    tsv(&columns, &a.rows, delimiter)
                };
                write!(self.out, "{text}")?;
            }
            OutputFormat::Json | OutputFormat::Yaml => {
                let objects: Vec<Value> = a
                    .rows
                    .iter()
                    .map(|r| {
                        let o: Map<String, Value> = columns
                            .iter()
                            .zip(r)
                            .map(|(c, v)| (c.to_string(), v.clone()))
                            .collect();
                        Value::Object(o)
                    })
                    .collect();
                let text = if self.format == OutputFormat::Json {
                    serde_json::to_string(&objects).unwrap_or_default() + "\n"
                } else {
                    to_yaml(&Value::Array(objects))
                };
                write!(self.out, "{text}")?;
            }
            OutputFormat::Pretty => {
                let rows: Vec<Vec<Cell>> = a
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|v| Cell::text(python_str(v))).collect())
                    .collect();
                let width = rows.first().map_or(0, Vec::len);
                let fallback: Vec<String> = (0..width).map(|i| format!("col{i}")).collect();
                let headers: Vec<&str> = if columns.is_empty() {
                    fallback.iter().map(String::as_str).collect()
                } else {
                    columns.clone()
                };
                write!(self.out, "{}", render(None, &headers, &rows))?;
            }
        }
        Ok(())
    }
}

/// patronictl's `timestamp(0)`: to the second.
fn timestamp_seconds() -> String {
    timestamp()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Runs `sql` on the member `target` picks (connecting first when there is no connection), checking the server's
/// role as patronictl does for roles other than leader/any. The error is the row patronictl prints.
async fn query_member(
    cluster: &ha_core::model::Cluster,
    client: &mut Option<tokio_postgres::Client>,
    target: &Target,
    creds: &Credentials,
    sql: &str,
) -> Result<Answer, String> {
    if client.is_none() {
        let member = super::any_member(cluster, target.role.as_deref(), target.member.as_deref())
            .map_err(|e| e.to_string())?;
        *client = match member {
            Some(m) => connect(m, creds, target.role.as_deref()).await?,
            None => None,
        };
    }
    let Some(c) = client.as_ref() else {
        return Err(match (&target.member, &target.role) {
            (Some(m), _) => format!("No connection to member {m} is available"),
            (None, Some(r)) => format!("No connection to role '{r}' is available"),
            _ => "No connection is available".into(),
        });
    };
    let messages = c.simple_query(sql).await.map_err(|e| sql_error(&e))?;
    // The last statement's result, as a cursor holds after `execute` of several statements.
    let mut answer = Answer {
        columns: None,
        rows: Vec::new(),
    };
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                answer = Answer {
                    columns: Some(cols.iter().map(|c| c.name().to_string()).collect()),
                    rows: Vec::new(),
                };
            }
            SimpleQueryMessage::Row(row) => {
                let values = (0..row.len())
                    .map(|i| row.get(i).map(|s| json!(s)).unwrap_or(Value::Null))
                    .collect();
                answer.rows.push(values);
            }
            _ => {}
        }
    }
    Ok(answer)
}

/// patronictl's error row: the SQLSTATE when the server sent one, else the error on one line.
fn sql_error(e: &tokio_postgres::Error) -> String {
    let code = e
        .as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| e.to_string().replace('\n', " "));
    format!("ERROR, SQLSTATE: {code}")
}

/// A connection to `m`, or `None` when the server's role is not the one asked for.
async fn connect(
    m: &Member,
    creds: &Credentials,
    role: Option<&str>,
) -> Result<Option<tokio_postgres::Client>, String> {
    let url = m
        .data
        .conn_url
        .as_deref()
        .ok_or_else(|| format!("member {} has no conn_url", m.name))?;
    let (host, port) = crate::json::host_port_of(url);
    let mut config = tokio_postgres::Config::new();
    config
        .host(host.as_deref().unwrap_or("localhost"))
        .port(port.unwrap_or(5432))
        .user(&creds.user)
        .dbname(&creds.dbname)
        .application_name("Patroni ctl")
        .connect_timeout(Duration::from_secs(5));
    if let Some(p) = &creds.password {
        config.password(p);
    }
    let (client, connection) = config.connect(NoTls).await.map_err(|e| sql_error(&e))?;
    tokio::spawn(connection);
    let check = matches!(
        role,
        Some("primary" | "replica" | "standby" | "standby-leader")
    );
    if !check {
        return Ok(Some(client));
    }
    let in_recovery = client
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(true);
    let wanted = if in_recovery {
        matches!(role, Some("replica" | "standby" | "standby-leader"))
    } else {
        role == Some("primary")
    };
    Ok(wanted.then_some(client))
}
