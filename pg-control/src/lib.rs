//! `PgControl` over PostgreSQL's binaries: the real PostgreSQL under hactl's HA logic.
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo() -> Result<(), pg_control::Error> {
//! use pg_control::{Credentials, PgCtl, PgSettings};
//!
//! let mut s = PgSettings::new("node1", "/usr/lib/postgresql/15/bin", "/var/lib/hactl/node1", 5432);
//! s.os_user = Some("postgres".into()); // required when the daemon runs as root
//! s.replication = Credentials::new("replicator", Some("secret"));
//! let pg = PgCtl::new(s).await?;       // checks binaries, version, ownership, credentials; changes nothing
//! let sysid = pg.bootstrap().await?;   // initdb, managed config, start, roles
//! let obs = pg.observe().await;        // never hangs: a hung server shows as Unresponsive
//! # let _ = (sysid, obs); Ok(()) }
//! ```
//!
//! `PgCtl` implements [`ha_core::pg::PgControl`], so it plugs into [`ha_core::driver::Driver`]. Its inherent
//! methods of the same names return this crate's typed [`Error`]; the trait's map it to
//! [`ha_core::pg::PgError`]. Slots follow the decision's plan ([`PgCtl::apply_slots`]).
//!
//! # Layout
//!
//! - `settings`: [`PgSettings`], Patroni's `postgresql:` section (credentials, initdb options, timeouts).
//! - `ctl`: [`PgCtl`] itself (its fields, [`PgCtl::new`], the local configuration) and its `PgControl` impl.
//! - `checks`: what `PgCtl::new` refuses before anything changes (settings, binaries and their version,
//!   credentials), and the port check before a start.
//! - `lifecycle`: bootstrap, start as primary or replica, stop, restart, reload, promote, follow, parameters.
//! - `replicas`: clone (pg_basebackup), rewind (pg_rewind), reinitialize, replication slots.
//! - `fence`: SIGKILL of the postmaster and all its children.
//! - `observe`: what state the server is in, from postmaster.pid, /proc, pg_controldata and one bounded query.
//! - `connect`: connections to the local server and to other members, each bounded by the query timeout.
//! - `conn_options`: each role's libpq options (`sslmode`, `sslrootcert`, ...): checked at the start, written into
//!   every conninfo libpq reads.
//! - `tls`: those options honoured by our own connections to other members (rustls, no OpenSSL).
//! - `conf/`: the files we own (managed postgresql.conf including the user's postgresql.base.conf, pg_hba, pgpass),
//!   rendered by pure functions and written into the data directory for a role.
//! - `state`: the state file, what the node remembers across restarts (its upstream, the cluster-wide parameters).
//! - `datadir`: the data directory: does it hold a cluster, is it empty, is it ours and of the binaries' version.
//! - `pidfile`: postmaster.pid and the socket lock: is a postmaster alive, and clearing a dead one's files.
//! - `binaries`: running PostgreSQL's binaries as the PostgreSQL user: pg_controldata, `pg_ctl start`.
//! - `archive`: a demoted primary's shutdown checkpoint archived for a standby cluster to replay.
//! - `controldata`: parsing pg_controldata, timeline history files and LSNs.
//! - `os`: running binaries as the PostgreSQL user under a timeout, file ownership, /proc and signals.
//! - [`working_set`]: a long-running process's start-up pages unmapped once it idles (the daemon, the fencer).
//! - `error`: the typed [`Error`].
//!
//! # Rules it keeps
//!
//! - PostgreSQL never runs as root: as root, binaries are spawned as [`PgSettings::os_user`].
//! - Every call is bounded (see [`Timeouts`]): a hung server makes a call fail with a timeout, never hang.
//! - Passwords live in a 0600 pgpass file (a client key's `sslpassword` in a 0600 service file beside it), never on
//!   a command line.
//! - Connections to other members carry each role's TLS options; an option that cannot be honoured refuses the
//!   start, naming its key.
//! - Nothing is deleted on an error; a data directory of another cluster is never wiped.

#![warn(missing_docs)]

mod archive;
mod binaries;
mod bootstrap;
mod checks;
mod conf;
mod conn_options;
mod connect;
mod controldata;
mod ctl;
mod custom_bootstrap;
mod datadir;
mod error;
mod fence;
pub mod fencer;
mod lifecycle;
mod observe;
mod os;
mod parameters;
mod pidfile;
mod replica_methods;
mod replicas;
mod settings;
mod slots;
mod state;
mod tls;
pub mod working_set;

/// Server-certificate verifiers shared with hactl's REST client: a self-signed certificate listed in the trust
/// anchors is accepted as OpenSSL accepts it; `NoVerification` still checks the handshake's signatures.
pub use tls::{pinned_self_signed, NoVerification, PinnedOrWebPki};

pub use checks::SUPPORTED_MAJORS;
pub use conn_options::KNOWN_OPTIONS;
pub use ctl::PgCtl;
pub use error::Error;
pub use settings::{
    Credentials, CustomBootstrap, InitdbOption, PgSettings, ReplicaMethod, Timeouts,
};
