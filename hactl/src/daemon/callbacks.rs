//! Patroni's callbacks: `on_start`, `on_stop`, `on_restart`, `on_reload`, `on_role_change`, each run as
//! `<cmd> <action> <role> <scope>`, and `pre_promote`, whose non-zero exit cancels a promotion.
//!
//! A callback never blocks the HA loop: the role callbacks run in their own task, and every callback is killed after
//! its timeout (a hanging script must not pile up processes either).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use ha_core::decision::Action;
use ha_core::driver::{Hooks, Outcome};
use ha_core::model::Role;
use ha_core::sync::lock;
use tracing::{info, warn};

use crate::config::Callbacks;

/// How long a role callback may run before it is killed. Patroni lets them run; a script that takes longer than
/// this is stuck, and killing it keeps one loop's callbacks from overlapping the next ones.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Patroni's callbacks, each configured under `postgresql.callbacks` and run as `<cmd> <name> <role> <scope>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    OnStart,
    OnStop,
    OnRestart,
    OnReload,
    OnRoleChange,
}

impl Callback {
    /// The name: the key under `postgresql.callbacks` and the script's first argument.
    pub fn as_str(self) -> &'static str {
        match self {
            Callback::OnStart => "on_start",
            Callback::OnStop => "on_stop",
            Callback::OnRestart => "on_restart",
            Callback::OnReload => "on_reload",
            Callback::OnRoleChange => "on_role_change",
        }
    }
}

/// Splits a command line the way Python's `shlex.split` does for the common cases: whitespace, single and double
/// quotes, backslash escapes outside single quotes.
pub fn split_command(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (Some(_), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Runs `cmd args...` and waits at most `timeout`; the process is killed when it runs longer. `Ok(true)`: exit 0.
pub async fn run_with_timeout(cmd: &str, args: &[&str], timeout: Duration) -> Result<bool, String> {
    let mut argv = split_command(cmd);
    if argv.is_empty() {
        return Err("empty command".into());
    }
    let program = argv.remove(0);
    let mut child = tokio::process::Command::new(&program)
        .args(&argv)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ok(status.success()),
        Ok(Err(e)) => Err(format!("{program}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "{program} did not finish within {} s and was killed",
                timeout.as_secs()
            ))
        }
    }
}

/// The scripts a [`CallbackHooks`] runs.
struct Scripts {
    callbacks: Callbacks,
    pre_promote: Option<String>,
}

/// The daemon's [`Hooks`]: maps executed actions onto Patroni's callbacks.
pub struct CallbackHooks {
    /// The callback scripts and `pre_promote`: replaced when the configuration file is re-read.
    scripts: Mutex<Scripts>,
    pub pre_promote_timeout: Duration,
    pub callback_timeout: Duration,
    pub scope: String,
    /// The role PostgreSQL last had, to tell a start from a role change.
    role: Mutex<Option<Role>>,
}

impl CallbackHooks {
    pub fn new(
        callbacks: Callbacks,
        pre_promote: Option<String>,
        scope: String,
        pre_promote_timeout: Duration,
    ) -> Self {
        CallbackHooks {
            scripts: Mutex::new(Scripts {
                callbacks,
                pre_promote,
            }),
            pre_promote_timeout,
            callback_timeout: CALLBACK_TIMEOUT,
            scope,
            role: Mutex::new(None),
        }
    }

    /// Replaces the callback scripts and `pre_promote` (a re-read configuration file): the next callback runs the
    /// new script.
    pub fn set_scripts(&self, callbacks: Callbacks, pre_promote: Option<String>) {
        *lock(&self.scripts) = Scripts {
            callbacks,
            pre_promote,
        };
    }

    fn command(&self, callback: Callback) -> Option<String> {
        let scripts = lock(&self.scripts);
        let c = &scripts.callbacks;
        match callback {
            Callback::OnStart => c.on_start.clone(),
            Callback::OnStop => c.on_stop.clone(),
            Callback::OnRestart => c.on_restart.clone(),
            Callback::OnReload => c.on_reload.clone(),
            Callback::OnRoleChange => c.on_role_change.clone(),
        }
    }

    /// Starts `callback`'s script in the background (if one is configured).
    pub fn fire(&self, callback: Callback, role: Role) {
        let Some(cmd) = self.command(callback) else {
            return;
        };
        let action = callback.as_str();
        let (role, scope, timeout) = (role.as_str(), self.scope.clone(), self.callback_timeout);
        info!(callback = action, %role, "running callback");
        tokio::spawn(async move {
            match run_with_timeout(&cmd, &[action, role, &scope], timeout).await {
                Ok(true) => {}
                Ok(false) => warn!(callback = action, "callback exited with a non-zero status"),
                Err(e) => warn!(callback = action, error = %e, "callback failed"),
            }
        });
    }

    /// The callback for an action that completed, and the role PostgreSQL has after it.
    fn callback_for(&self, action: &Action) -> Option<(Callback, Role)> {
        let mut last = lock(&self.role);
        let (cb, role) = match action {
            Action::Bootstrap | Action::StartPrimary => {
                let cb = if *last == Some(Role::Replica) {
                    Callback::OnRoleChange
                } else {
                    Callback::OnStart
                };
                (cb, Role::Primary)
            }
            // A standby cluster's leader: it follows the source cluster.
            Action::StartReplica(Some(up)) | Action::CloneFrom(up) if up.remote.is_some() => {
                let cb = if matches!(*last, Some(Role::Primary | Role::Replica)) {
                    Callback::OnRoleChange
                } else {
                    Callback::OnStart
                };
                (cb, Role::StandbyLeader)
            }
            Action::Follow(up) if up.remote.is_some() && *last != Some(Role::StandbyLeader) => {
                (Callback::OnRoleChange, Role::StandbyLeader)
            }
            Action::Follow(up) if up.remote.is_none() && *last == Some(Role::StandbyLeader) => {
                (Callback::OnRoleChange, Role::Replica)
            }
            Action::StartReplica(_) | Action::CloneFrom(_) | Action::Reinitialize(_) => {
                let cb = if matches!(*last, Some(Role::Primary | Role::StandbyLeader)) {
                    Callback::OnRoleChange
                } else {
                    Callback::OnStart
                };
                (cb, Role::Replica)
            }
            Action::Promote => (Callback::OnRoleChange, Role::Primary),
            Action::Stop(_) | Action::StopOrKill { .. } | Action::Fence => {
                (Callback::OnStop, last.unwrap_or(Role::Replica))
            }
            Action::Restart => (Callback::OnRestart, last.unwrap_or(Role::Replica)),
            _ => return None,
        };
        if cb != Callback::OnStop {
            *last = Some(role);
        }
        Some((cb, role))
    }
}

#[async_trait]
impl Hooks for CallbackHooks {
    async fn pre_promote(&self) -> bool {
        let Some(cmd) = lock(&self.scripts).pre_promote.clone() else {
            return true;
        };
        match run_with_timeout(&cmd, &[], self.pre_promote_timeout).await {
            Ok(true) => true,
            Ok(false) => {
                warn!("pre_promote exited with a non-zero status: the promotion is cancelled");
                false
            }
            Err(e) => {
                warn!(error = %e, "pre_promote failed: the promotion is cancelled");
                false
            }
        }
    }

    async fn after_action(&self, action: &Action, outcome: &Outcome) {
        if *outcome != Outcome::Done {
            return;
        }
        if let Some((cb, role)) = self.callback_for(action) {
            self.fire(cb, role);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are Patroni's: scripts written for Patroni switch on their first argument.
    #[test]
    fn callback_names_are_patronis() {
        let names = [
            Callback::OnStart,
            Callback::OnStop,
            Callback::OnRestart,
            Callback::OnReload,
            Callback::OnRoleChange,
        ]
        .map(Callback::as_str);
        assert_eq!(
            names,
            [
                "on_start",
                "on_stop",
                "on_restart",
                "on_reload",
                "on_role_change"
            ]
        );
    }

    #[test]
    fn commands_split_like_shlex() {
        assert_eq!(
            split_command("/bin/cb --x 'a b' \"c d\" e\\ f"),
            vec!["/bin/cb", "--x", "a b", "c d", "e f"]
        );
        assert!(split_command("   ").is_empty());
    }

    #[test]
    fn a_demotion_is_a_role_change_and_a_first_start_is_a_start() {
        let h = CallbackHooks::new(
            Callbacks::default(),
            None,
            "batman".into(),
            Duration::from_secs(1),
        );
        assert_eq!(
            h.callback_for(&Action::StartReplica(None)),
            Some((Callback::OnStart, Role::Replica))
        );
        assert_eq!(
            h.callback_for(&Action::Promote),
            Some((Callback::OnRoleChange, Role::Primary))
        );
        assert_eq!(
            h.callback_for(&Action::Stop(ha_core::pg::StopMode::Fast)),
            Some((Callback::OnStop, Role::Primary))
        );
        assert_eq!(
            h.callback_for(&Action::StartReplica(None)),
            Some((Callback::OnRoleChange, Role::Replica))
        );
        assert_eq!(
            h.callback_for(&Action::Restart),
            Some((Callback::OnRestart, Role::Replica))
        );
        assert_eq!(h.callback_for(&Action::RenewLock), None);
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_and_exit_codes_count() {
        let t = std::time::Instant::now();
        let r = run_with_timeout("sleep 30", &[], Duration::from_millis(200)).await;
        assert!(r.unwrap_err().contains("was killed"));
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(
            run_with_timeout("true", &[], Duration::from_secs(5)).await,
            Ok(true)
        );
        assert_eq!(
            run_with_timeout("false", &[], Duration::from_secs(5)).await,
            Ok(false)
        );
    }

    #[tokio::test]
    async fn pre_promote_non_zero_exit_cancels() {
        let mut h = CallbackHooks::new(
            Callbacks::default(),
            Some("false".into()),
            "batman".into(),
            Duration::from_secs(5),
        );
        assert!(!h.pre_promote().await);
        h.set_scripts(Callbacks::default(), Some("true".into()));
        assert!(h.pre_promote().await);
        h.set_scripts(Callbacks::default(), Some("sleep 10".into()));
        h.pre_promote_timeout = Duration::from_millis(100);
        assert!(!h.pre_promote().await, "a hanging pre_promote cancels too");
    }

    #[tokio::test]
    async fn role_callbacks_get_action_role_and_scope() {
        let dir = std::env::temp_dir().join(format!("hactl-cb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("calls");
        let script = dir.join("cb.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$@\" >> {}\n", out.display()),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        let cbs = Callbacks {
            on_role_change: Some(script.display().to_string()),
            ..Default::default()
        };
        let h = CallbackHooks::new(cbs, None, "batman".into(), Duration::from_secs(1));
        h.after_action(&Action::Promote, &Outcome::Done).await;
        h.after_action(&Action::StartPrimary, &Outcome::Failed("x".into()))
            .await;
        for _ in 0..100 {
            if std::fs::read_to_string(&out).map_or(false, |s| !s.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "on_role_change primary batman\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
