//! Connections and queries: tokio-postgres configs for the local server (unix socket, no TLS) and for other members
//! (TCP, with the superuser's TLS options: `tls`), one bounded connect-and-run helper, and what a failed attempt
//! means (timeout, "not accepting yet", or an error).
//!
//! Every query runs through [`PgCtl::with_client`], so the query timeout bounds the connect and the work together:
//! a hung server makes the call fail with a timeout, never hang.

use std::future::Future;
use std::time::Duration;

use tokio_postgres::NoTls;

use crate::conf::Endpoint;
use crate::conn_options::ConnOptions;
use crate::ctl::PgCtl;
use crate::error::{Error, Result};

/// Where a connection goes: its tokio-postgres config, and the TLS options it connects with (`None`: the local
/// unix socket, no TLS).
pub(crate) struct Target {
    config: tokio_postgres::Config,
    tls: Option<ConnOptions>,
}

impl From<tokio_postgres::Config> for Target {
    fn from(config: tokio_postgres::Config) -> Target {
        Target { config, tls: None }
    }
}

/// Why a connection attempt gave no answer.
#[derive(Debug)]
pub(crate) enum ConnError {
    Timeout,
    /// The server answered "starting up" / "shutting down" (SQLSTATE 57P03).
    NotAccepting(String),
    Other(String),
}

impl ConnError {
    pub(crate) fn into_error(self, operation: &str, timeout: Duration) -> Error {
        match self {
            ConnError::Timeout => Error::Timeout {
                operation: operation.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            },
            ConnError::NotAccepting(m) | ConnError::Other(m) => Error::query(operation, m),
        }
    }
}

fn classify(e: tokio_postgres::Error) -> ConnError {
    // A full listen queue (a postmaster that stopped accepting long ago) refuses a unix-socket connect with
    // EAGAIN at once: that is the same hang as a connect that never gets an answer.
    let io_kind = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .map(|io| io.kind());
    if io_kind == Some(std::io::ErrorKind::WouldBlock) {
        return ConnError::Timeout;
    }
    match e.code() {
        Some(c) if *c == tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW => {
            ConnError::NotAccepting(e.to_string())
        }
        _ => ConnError::Other(match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => with_causes(&e),
        }),
    }
}

/// An error and its causes: tokio-postgres says "error performing TLS handshake" and leaves the reason (an unknown
/// issuer, a name mismatch, ...) to its source.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// Aborts the spawned connection task when the query is done or abandoned: a connection to a hung server would
/// otherwise wait forever.
struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl AbortOnDrop {
    fn spawn<C>(connection: C) -> AbortOnDrop
    where
        C: Future + Send + 'static,
    {
        AbortOnDrop(tokio::spawn(async move {
            let _ = connection.await;
        }))
    }
}
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An SQL identifier (a role name) quoted for a statement: role DDL takes no bind parameters.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An SQL string literal (a password) quoted for a statement.
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl PgCtl {
    /// A tokio-postgres config for the local server over its unix socket, as the superuser.
    pub fn local_config(&self, dbname: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.s.socket_dir)
            .port(self.s.port)
            .user(&self.s.superuser.username)
            .dbname(dbname)
            .application_name("hactl")
            .connect_timeout(self.s.timeouts.query);
        if let Some(p) = &self.s.superuser.password {
            c.password(p);
        }
        c
    }

    /// A connection to another member, as the superuser, with the superuser's TLS options.
    pub(crate) fn remote_config(&self, ep: &Endpoint) -> Target {
        let mut c = tokio_postgres::Config::new();
        c.host(&ep.host)
            .port(ep.port)
            .user(&self.s.superuser.username)
            .dbname(&self.s.database)
            .application_name("hactl")
            .connect_timeout(self.s.timeouts.query);
        if let Some(p) = &self.s.superuser.password {
            c.password(p);
        }
        crate::tls::apply_modes(&self.conn.superuser, &mut c);
        Target {
            config: c,
            tls: Some(self.conn.superuser.clone()),
        }
    }

    /// Connects and runs `f`, the whole bounded by the query timeout.
    pub(crate) async fn with_client<T, F, Fut>(
        &self,
        target: impl Into<Target>,
        f: F,
    ) -> std::result::Result<T, ConnError>
    where
        F: FnOnce(tokio_postgres::Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    {
        let Target { config, tls } = target.into();
        // The TLS files are read at each connection, as libpq reads them: renewed certificates need no restart.
        let tls = match tls.as_ref().map(crate::tls::make_connect).transpose() {
            Ok(t) => t.flatten(),
            Err(e) => return Err(ConnError::Other(e.to_string())),
        };
        let work = async move {
            // The connection task is aborted when the work is done or abandoned (see [`AbortOnDrop`]).
            let (client, _guard) = match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await.map_err(classify)?;
                    (client, AbortOnDrop::spawn(connection))
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await.map_err(classify)?;
                    (client, AbortOnDrop::spawn(connection))
                }
            };
            f(client).await.map_err(classify)
        };
        match tokio::time::timeout(self.s.timeouts.query, work).await {
            Ok(r) => r,
            Err(_) => Err(ConnError::Timeout),
        }
    }

    /// Runs statements on the local server (as the superuser), each bounded by the query timeout.
    pub async fn execute_local(&self, sql: &str) -> Result<()> {
        let sql = sql.to_string();
        self.with_client(self.local_config(&self.s.database), |c| async move {
            c.batch_execute(&sql).await
        })
        .await
        .map_err(|e| e.into_error("query", self.s.timeouts.query))
    }
}
