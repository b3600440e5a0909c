//! What can go wrong, typed: each variant names the thing to fix. The trait boundary ([`ha_core::pg::PgControl`])
//! speaks [`PgError`]; `From<Error> for PgError` keeps the class (setup, refusal, timeout, failure) and the text.

use std::path::PathBuf;

use ha_core::pg::PgError;

/// An error of this crate. None of them leaves a data directory half-deleted: every check that can fail runs
/// before anything is removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// PostgreSQL refuses to run as root, and so do we: say which OS user should own the server.
    #[error("running as root with no OS user configured: set PgSettings::os_user (e.g. \"postgres\") so PostgreSQL runs unprivileged")]
    RunningAsRoot,
    /// The configured OS user does not exist, or we cannot switch to it.
    #[error("OS user {user:?}: {reason}")]
    OsUser {
        /// The user name, as [`PgSettings::os_user`](crate::PgSettings::os_user) gives it.
        user: String,
        /// Why it cannot be used: no such user, it is root, or this process is not root and cannot switch to it.
        reason: String,
    },
    /// `bin_dir` lacks a PostgreSQL binary.
    #[error("bin_dir {bin_dir:?} has no executable {binary:?}: point bin_dir at PostgreSQL's bin directory (e.g. /usr/lib/postgresql/15/bin)")]
    BinDir {
        /// The configured `postgresql.bin_dir`.
        bin_dir: PathBuf,
        /// The binary missing from it or not executable, e.g. `pg_rewind`.
        binary: String,
    },
    /// The binaries (or the data directory) are of an unsupported or mismatching major version.
    #[error("PostgreSQL version mismatch: {detail}")]
    WrongVersion {
        /// The version found, where, and what was expected.
        detail: String,
    },
    /// The data directory belongs to another OS user: PostgreSQL would refuse it, and we will not chown a stranger's data.
    #[error("data directory {path:?} is owned by uid {owner_uid}, not by uid {expected_uid} that runs PostgreSQL: fix the ownership or the data_dir setting")]
    DataDirOwner {
        /// The data directory (`postgresql.data_dir`).
        path: PathBuf,
        /// The uid that owns it.
        owner_uid: u32,
        /// The uid PostgreSQL runs as: `os_user`'s, or this process's when it does not switch users.
        expected_uid: u32,
    },
    /// The operation needs an empty data directory and this one holds data.
    #[error("data directory {path:?} is not empty: {operation} needs an empty one (nothing was deleted)")]
    DataDirNotEmpty {
        /// The data directory.
        path: PathBuf,
        /// What needed it empty, e.g. `bootstrap`, `clone` or `create replica`.
        operation: String,
    },
    /// The data directory holds another cluster than the one we would copy from or rewind to.
    #[error("data directory {path:?} holds cluster {local_system_id}, but {source_name} is cluster {source_system_id}: refusing {operation}, nothing was deleted")]
    ForeignCluster {
        /// The data directory.
        path: PathBuf,
        /// What was refused: `rewind` or `reinitialize`.
        operation: String,
        /// The database system identifier in the local control file (pg_controldata).
        local_system_id: String,
        /// The member we would copy from or rewind to.
        source_name: String,
        /// That member's database system identifier.
        source_system_id: String,
    },
    /// The data directory has no cluster yet.
    #[error("data directory {path:?} holds no PostgreSQL cluster: bootstrap or clone first")]
    NotInitialized {
        /// The data directory.
        path: PathBuf,
    },
    /// Another process listens on the port PostgreSQL needs.
    #[error("port {port} on {host} is already in use by another process: choose another port or stop that process")]
    PortInUse {
        /// The listen address found taken (`*` is checked as `0.0.0.0`, `localhost` as `127.0.0.1`).
        host: String,
        /// The configured port (`postgresql.listen`).
        port: u16,
    },
    /// Credentials are needed and not configured.
    #[error("missing credentials: {0}")]
    MissingCredentials(String),
    /// A setting is malformed.
    #[error("bad setting: {0}")]
    BadSetting(String),
    /// A connection option (`authentication.<role>.sslmode` & co.) is unknown, malformed, or one hactl cannot
    /// honour: refused rather than connecting with less protection than asked for.
    #[error("`{key}`: {reason}")]
    ConnOption {
        /// The whole key, e.g. `postgresql.authentication.replication.sslmode`.
        key: String,
        /// Why it is refused, e.g. the file it names does not exist.
        reason: String,
    },
    /// The operation needs PostgreSQL in another state (stopped for rewind, running for promote...).
    #[error("refusing {operation}: {reason}")]
    WrongState {
        /// The refused operation, e.g. `start` or `rewind`.
        operation: String,
        /// The state that forbids it, e.g. `PostgreSQL is already running`.
        reason: String,
    },
    /// A bound was hit: the server (or a command) did not answer in time.
    #[error("{operation} did not finish within {timeout_ms} ms")]
    Timeout {
        /// What did not finish: a binary's name or an operation, e.g. `stop (fast)`.
        operation: String,
        /// The bound that ran out, in ms.
        timeout_ms: u64,
    },
    /// A PostgreSQL binary exited with an error.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The binary's file name, or what was run, e.g. `replica method pgbackrest`.
        command: String,
        /// How it ended: its exit status, or `not started`, `wait failed`, `no command`, `unparsable output`.
        status: String,
        /// What it printed on stderr (stdout when stderr is empty), trimmed; after a failed start, also the tail of
        /// the server log.
        stderr: String,
    },
    /// A query failed.
    #[error("{operation}: query failed: {reason}")]
    Query {
        /// What the query was for, e.g. `promote`.
        operation: String,
        /// The server's or the connection's error.
        reason: String,
    },
    /// A file operation failed.
    #[error("{path:?}: {reason}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            reason: e.to_string(),
        }
    }
    pub(crate) fn query(operation: &str, e: impl std::fmt::Display) -> Error {
        Error::Query {
            operation: operation.to_string(),
            reason: e.to_string(),
        }
    }
    pub(crate) fn wrong_state(operation: &str, reason: impl Into<String>) -> Error {
        Error::WrongState {
            operation: operation.to_string(),
            reason: reason.into(),
        }
    }
    /// Whether this is a problem of the setup (settings, binaries, ownership) rather than of one operation.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            Error::RunningAsRoot
                | Error::OsUser { .. }
                | Error::BinDir { .. }
                | Error::WrongVersion { .. }
                | Error::DataDirOwner { .. }
                | Error::PortInUse { .. }
                | Error::MissingCredentials(_)
                | Error::BadSetting(_)
                | Error::ConnOption { .. }
        )
    }
}

impl From<Error> for PgError {
    fn from(e: Error) -> PgError {
        match &e {
            _ if e.is_setup() => PgError::Setup(e.to_string()),
            Error::Timeout {
                operation,
                timeout_ms,
            } => PgError::Timeout {
                operation: operation.clone(),
                timeout_ms: *timeout_ms,
            },
            Error::DataDirNotEmpty { operation, .. } | Error::ForeignCluster { operation, .. } => {
                PgError::Refused {
                    operation: operation.clone(),
                    reason: e.to_string(),
                }
            }
            Error::WrongState { operation, reason } => PgError::Refused {
                operation: operation.clone(),
                reason: reason.clone(),
            },
            Error::Command { command, .. } => PgError::failed(command, e.to_string()),
            Error::Query { operation, .. } => PgError::failed(operation, e.to_string()),
            _ => PgError::failed("postgresql", e.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
