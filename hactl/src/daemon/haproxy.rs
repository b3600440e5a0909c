//! Tells HAProxy at once when this node becomes or stops being the primary, through HAProxy's runtime API
//! (`haproxy.runtime_api`), instead of leaving it to the next health check.
//!
//! On a promotion, the moment `pg_promote` returned: `set server <primary>/<me> health up` (writes go here now)
//! and `health down` in the replica backend. Right before a primary stops PostgreSQL (a switchover's demotion, a
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

/// The [`Hooks`] that notify HAProxy; a no-op without `haproxy.runtime_api`.
pub struct HaproxyHooks {
    tx: Option<mpsc::UnboundedSender<(String, Option<oneshot::Sender<()>>)>>,
    primary_backend: String,
    replica_backend: String,
    server: String,
}

impl HaproxyHooks {
    /// Starts the sender task (on the current runtime) when `cfg` names a runtime API; `member` is the default server
    /// name.
    pub fn new(cfg: &HaproxyConfig, member: &str) -> HaproxyHooks {
        let tx = (!cfg.runtime_api.is_empty()).then(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(sender(cfg.runtime_api.clone(), rx));
            tx
        });
        HaproxyHooks {
            tx,
            primary_backend: cfg.primary_backend.clone(),
            replica_backend: cfg.replica_backend.clone(),
            server: cfg.server.clone().unwrap_or_else(|| member.to_string()),
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

    fn send(&self, primary: bool) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((self.commands(primary), None));
        }
    }

    /// Like `send`, and waits (at most [`BEFORE_STOP_WAIT`]) until every runtime API was told.
    async fn send_and_wait(&self, primary: bool) {
        if let Some(tx) = &self.tx {
            let (done, told) = oneshot::channel();
            if tx.send((self.commands(primary), Some(done))).is_ok() {
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
            self.send_and_wait(false).await;
        }
    }

    async fn after_action(&self, action: &Action, outcome: &Outcome) {
        if matches!(action, Action::Promote) && *outcome == Outcome::Done {
            self.send(true);
        }
    }

    async fn on_role_change(&self, old: NodeRole, new: NodeRole) {
        match (old, new) {
            (NodeRole::Primary, _) => self.send(false),
            // A start as primary (bootstrap, a restart): a promotion already told HAProxy in `after_action`.
            (NodeRole::Stopped, NodeRole::Primary) => self.send(true),
            _ => {}
        }
    }
}

async fn sender(
    apis: Vec<RuntimeApi>,
    mut rx: mpsc::UnboundedReceiver<(String, Option<oneshot::Sender<()>>)>,
) {
    while let Some((cmds, done)) = rx.recv().await {
        for api in &apis {
            match tokio::time::timeout(SEND_TIMEOUT, send_to(api, &cmds)).await {
                Ok(Ok(answer)) if answer.trim().is_empty() => {
                    debug!(api = ?api, commands = cmds.trim(), "HAProxy told")
                }
                Ok(Ok(answer)) => {
                    warn!(api = ?api, commands = cmds.trim(), answer = answer.trim(), "HAProxy refused a command")
                }
                Ok(Err(e)) => warn!(api = ?api, error = %e, "HAProxy's runtime API is unreachable"),
                Err(_) => warn!(api = ?api, "HAProxy's runtime API did not answer in time"),
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
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
    fn a_former_primary_is_put_down_and_its_sessions_cut() {
        assert_eq!(
            hooks().commands(false),
            "set server primary/node2 health down; shutdown sessions server primary/node2\n"
        );
    }
}
