//! Tells HAProxy at once when this node becomes or stops being the primary, through HAProxy's runtime API
//! (`haproxy.runtime_api`), instead of leaving it to the next health check.
//!
//! On a promotion, the moment `pg_promote` returned: `set server <primary>/<me> health up` (writes go here now)
//! and `health down` in the replica backend; then every other server of the primary backend `health down` with its
//! sessions shut (`show servers state` names them): this node holds the leader lock, so no other can be the
//! primary, and a client still connected to a former primary that cannot answer (cut off by a partition, its
//! commits waiting for a standby it lost) is disconnected at once and reconnects here, instead of waiting for
//! HAProxy's checks to time out on the unreachable server. Right before a primary stops PostgreSQL (a switchover's demotion, a
//! restart, a shutdown), and again when the loop sees it left the primary role (a crash): `health down` in the
//! primary backend and `shutdown sessions` there, so no new connection reaches a node that is stopping or
//! restarts as a read-only replica. HAProxy's checks stay on and correct anything
//! this got wrong at their next run: a forced state lasts only until a check disagrees.
//!
//! The commands go to a task of their own, in order, each socket bounded by [`SEND_TIMEOUT`]: the HA loop never
//! waits for HAProxy, and an HAProxy that is down costs a warning, not a loop.

use std::time::Duration;

use async_trait::async_trait;
use ha_core::decision::Action;
use ha_core::driver::{Hooks, NodeRole, Outcome};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::config::haproxy::{HaproxyConfig, RuntimeApi};

/// How long one runtime API may take to accept, take and answer the commands.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a primary about to stop waits for HAProxy to have taken it out, before stopping anyway.
pub const BEFORE_STOP_WAIT: Duration = Duration::from_millis(200);

/// One message to the sender task.
struct Note {
    /// Sent as they are.
    commands: String,
    /// Then every other server of the primary backend taken down, its sessions shut (a promotion).
    others_down: bool,
    /// Told once every runtime API was.
    done: Option<oneshot::Sender<()>>,
}

/// The [`Hooks`] that notify HAProxy; a no-op without `haproxy.runtime_api`.
pub struct HaproxyHooks {
    tx: Option<mpsc::UnboundedSender<Note>>,
    primary_backend: String,
    replica_backend: String,
    server: String,
}

impl HaproxyHooks {
    /// Starts the sender task (on the current runtime) when `cfg` names a runtime API; `member` is the default server
    /// name.
    pub fn new(cfg: &HaproxyConfig, member: &str) -> HaproxyHooks {
        let server = cfg.server.clone().unwrap_or_else(|| member.to_string());
        let tx = (!cfg.runtime_api.is_empty()).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let me = (cfg.primary_backend.clone(), server.clone());
            tokio::spawn(sender(cfg.runtime_api.clone(), me, rx));
            tx
        });
        HaproxyHooks {
            tx,
            primary_backend: cfg.primary_backend.clone(),
            replica_backend: cfg.replica_backend.clone(),
            server,
        }
    }

    /// The commands for a change to `primary` (true) or away from it.
    pub fn commands(&self, primary: bool) -> String {
        let (p, r, s) = (&self.primary_backend, &self.replica_backend, &self.server);
        if primary {
            format!("set server {p}/{s} health up; set server {r}/{s} health down\n")
        } else {
            format!("set server {p}/{s} health down; shutdown sessions server {p}/{s}\n")
        }
    }

    fn send(&self, primary: bool, others_down: bool) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Note {
                commands: self.commands(primary),
                others_down,
                done: None,
            });
        }
    }

    /// Like `send` (away from the primary role), and waits (at most [`BEFORE_STOP_WAIT`]) until every runtime API
    /// was told.
    async fn send_and_wait(&self) {
        if let Some(tx) = &self.tx {
            let (done, told) = oneshot::channel();
            let note = Note {
                commands: self.commands(false),
                others_down: false,
                done: Some(done),
            };
            if tx.send(note).is_ok() {
                let _ = tokio::time::timeout(BEFORE_STOP_WAIT, told).await;
            }
        }
    }
}

#[async_trait]
impl Hooks for HaproxyHooks {
    /// A primary about to stop (a switchover's demotion, a restart, a fence, a shutdown) leaves the primary backend
    /// first: HAProxy then has no server for new connections and closes them at once (clients retry), instead of
    /// sending them to a port that refuses them and waiting `timeout connect` before redispatching.
    async fn before_action(&self, action: &Action, serving: NodeRole) {
        let stops = matches!(
            action,
            Action::Stop(_) | Action::StopOrKill { .. } | Action::Fence | Action::Restart
        );
        if stops && serving == NodeRole::Primary {
            self.send_and_wait().await;
        }
    }

    async fn after_action(&self, action: &Action, outcome: &Outcome) {
        if matches!(action, Action::Promote) && *outcome == Outcome::Done {
            self.send(true, true);
        }
    }

    async fn on_role_change(&self, old: NodeRole, new: NodeRole) {
        match (old, new) {
            (NodeRole::Primary, _) => self.send(false, false),
            // A start as primary (bootstrap, a restart): a promotion already told HAProxy in `after_action`.
            (NodeRole::Stopped, NodeRole::Primary) => self.send(true, true),
            _ => {}
        }
    }
}

/// Tells every runtime API each note, in order; `me` is (primary backend, this node's server).
async fn sender(
    apis: Vec<RuntimeApi>,
    me: (String, String),
    mut rx: mpsc::UnboundedReceiver<Note>,
) {
    let (primary_backend, server) = me;
    while let Some(note) = rx.recv().await {
        for api in &apis {
            tell(api, &note.commands).await;
            if note.others_down {
                let state = format!("show servers state {primary_backend}\n");
                let Some(state) = tell(api, &state).await else {
                    continue;
                };
                let others = servers_in(&state, &primary_backend);
                if let Some(cmds) = take_down(&primary_backend, &server, &others) {
                    tell(api, &cmds).await;
                }
            }
        }
        if let Some(done) = note.done {
            let _ = done.send(());
        }
    }
}

/// Sends `cmds` to `api` within [`SEND_TIMEOUT`]: its answer, or a warning and `None`.
async fn tell(api: &RuntimeApi, cmds: &str) -> Option<String> {
    match tokio::time::timeout(SEND_TIMEOUT, send_to(api, cmds)).await {
        Ok(Ok(answer)) => {
            // A command HAProxy refuses answers with its reason; a `show` answers with data.
            if answer.trim().is_empty() || cmds.starts_with("show ") {
                debug!(api = ?api, commands = cmds.trim(), "HAProxy told");
            } else {
                warn!(api = ?api, commands = cmds.trim(), answer = answer.trim(), "HAProxy refused a command");
            }
            Some(answer)
        }
        Ok(Err(e)) => {
            warn!(api = ?api, error = %e, "HAProxy's runtime API is unreachable");
            None
        }
        Err(_) => {
            warn!(api = ?api, "HAProxy's runtime API did not answer in time");
            None
        }
    }
}

/// The servers of `backend` in the answer to `show servers state <backend>`: after a version line and a `#` header,
/// one line a server, `be_id be_name srv_id srv_name ...`.
pub fn servers_in(state: &str, backend: &str) -> Vec<String> {
    state
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.len() > 3 && fields[1] == backend).then(|| fields[3].to_string())
        })
        .collect()
}

/// The commands that take every server of `backend` but `me` down and shut their sessions, if there is one.
pub fn take_down(backend: &str, me: &str, servers: &[String]) -> Option<String> {
    let cmds: Vec<String> = servers
        .iter()
        .filter(|s| *s != me)
        .map(|s| {
            format!("set server {backend}/{s} health down; shutdown sessions server {backend}/{s}")
        })
        .collect();
    (!cmds.is_empty()).then(|| cmds.join("; ") + "\n")
}

/// Sends `cmds` (one line, `;`-separated) and reads the answer until HAProxy closes the connection.
pub async fn send_to(api: &RuntimeApi, cmds: &str) -> std::io::Result<String> {
    match api {
        RuntimeApi::Unix(path) => {
            exchange(tokio::net::UnixStream::connect(path).await?, cmds).await
        }
        RuntimeApi::Tcp(addr) => exchange(tokio::net::TcpStream::connect(addr).await?, cmds).await,
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    cmds: &str,
) -> std::io::Result<String> {
    s.write_all(cmds.as_bytes()).await?;
    s.flush().await?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks() -> HaproxyHooks {
        HaproxyHooks::new(&HaproxyConfig::default(), "node2")
    }

    #[test]
    fn a_new_primary_is_put_up_for_writes_and_down_for_reads() {
        assert_eq!(
            hooks().commands(true),
            "set server primary/node2 health up; set server replicas/node2 health down\n"
        );
    }

    #[test]
    fn a_new_primary_takes_every_other_server_of_the_primary_backend_down() {
        let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n\
                     3 primary 1 node1 127.0.0.1 2 0 1 1\n3 primary 2 node2 127.0.0.1 2 0 1 1\n\
                     3 primary 3 node3 127.0.0.1 0 0 1 1\n";
        let servers = servers_in(state, "primary");
        assert_eq!(servers, ["node1", "node2", "node3"]);
        assert_eq!(
            take_down("primary", "node2", &servers).unwrap(),
            "set server primary/node1 health down; shutdown sessions server primary/node1; \
             set server primary/node3 health down; shutdown sessions server primary/node3\n"
        );
        assert_eq!(take_down("primary", "node1", &servers[..1]), None);
        assert!(servers_in("No such backend.\n", "primary").is_empty());
    }

    #[test]
    fn a_former_primary_is_put_down_and_its_sessions_cut() {
        assert_eq!(
            hooks().commands(false),
            "set server primary/node2 health down; shutdown sessions server primary/node2\n"
        );
    }
}
