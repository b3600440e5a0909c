//! What a re-read configuration file changes in a running daemon (SIGHUP, `POST /reload`), as Patroni's
//! `reload_config` does: the tags, the node's own PostgreSQL parameters and pg_hba, the callback scripts and the
//! REST API's certificate files take effect at once. The keys that make up the node's identity and its
//! connections (name, scope, addresses, the DCS, the data directory, the REST API's access rules) take effect at
//! the next start of hactl: each one changed is named in a warning, never dropped silently. An invalid new file
//! changes nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ha_core::driver::RequestBox;
use ha_core::model::Role;
use ha_core::sync::lock;
use tracing::{error, info, warn};

use super::callbacks::{Callback, CallbackHooks};
use crate::config::Config;
use crate::tls::server::ServerTls;

/// Everything a reload touches, and the configuration in force.
pub struct Reloader {
    path: Option<PathBuf>,
    running: Mutex<Config>,
    pg: Arc<pg_control::PgCtl>,
    hooks: Arc<CallbackHooks>,
    requests: Arc<RequestBox>,
    tls: Option<Arc<ServerTls>>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        running: Config,
        pg: Arc<pg_control::PgCtl>,
        hooks: Arc<CallbackHooks>,
        requests: Arc<RequestBox>,
        tls: Option<Arc<ServerTls>>,
    ) -> Reloader {
        Reloader {
            path,
            running: Mutex::new(running),
            pg,
            hooks,
            requests,
            tls,
        }
    }

    /// Re-reads the file (if the daemon was started from one), applies what can change at run time, reloads
    /// PostgreSQL and runs `on_reload` with the role PostgreSQL has now.
    pub async fn reload(&self, role: Role) {
        if let Some(path) = &self.path {
            match Config::load(Some(path), &crate::config::process_env()) {
                Ok(new) => {
                    for w in &new.warnings {
                        warn!(warning = %w, "config");
                    }
                    if !self.apply(new) {
                        return;
                    }
                    info!(file = %path.display(), "configuration file re-read");
                }
                Err(e) => {
                    error!(error = %e, "the new configuration is invalid; keeping the running one");
                    return;
                }
            }
        }
        if let Some(tls) = &self.tls {
            match tls.reload() {
                Ok(()) => info!("REST API certificate files re-read"),
                Err(e) => {
                    error!(error = %e, "REST API certificates could not be re-read; serving the previous ones")
                }
            }
        }
        match ha_core::pg::PgControl::reload(&*self.pg).await {
            Ok(()) => self.hooks.fire(Callback::OnReload, role),
            Err(e) => warn!(error = %e, "PostgreSQL reload failed"),
        }
    }

    /// Applies `new` where it can change at run time; `false` (and nothing applied) when PostgreSQL refuses the
    /// new local settings.
    fn apply(&self, new: Config) -> bool {
        let mut running = lock(&self.running);
        for key in restart_only_changes(&running, &new) {
            warn!(
                key,
                "`{key}` changed in the configuration file: it takes effect when hactl is restarted"
            );
        }
        if new.postgresql != running.postgresql {
            match super::pg_settings(&new) {
                Ok(s) => {
                    if let Err(e) = self.pg.set_local_config(s.parameters, s.pg_hba) {
                        error!(error = %e, "the new postgresql section is refused; keeping the running configuration");
                        return false;
                    }
                }
                Err(e) => {
                    error!(error = %e, "the new postgresql section is refused; keeping the running configuration");
                    return false;
                }
            }
        }
        if new.postgresql.callbacks != running.postgresql.callbacks
            || new.postgresql.pre_promote != running.postgresql.pre_promote
        {
            info!("callback scripts changed");
            self.hooks.set_scripts(
                new.postgresql.callbacks.clone(),
                new.postgresql.pre_promote.clone(),
            );
        }
        if new.tags != running.tags {
            self.requests.set_tags(new.tags.clone());
        }
        *running = new;
        true
    }
}

/// The keys changed between `old` and `new` that only a restart of hactl applies, by Patroni's names.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (old, new);
    let (op, np) = (&o.postgresql, &n.postgresql);
    let checks: [(&'static str, bool); 26] = [
        ("name", o.name != n.name),
        ("scope", o.scope != n.scope),
        ("namespace", o.namespace != n.namespace),
        ("restapi.listen", o.restapi.listen != n.restapi.listen),
        (
            "restapi.connect_address",
            o.restapi.connect_address != n.restapi.connect_address,
        ),
        (
            "restapi.authentication",
            o.restapi.authentication != n.restapi.authentication,
        ),
        ("restapi.certfile", o.restapi.tls != n.restapi.tls),
        (
            "restapi.allowlist",
            o.restapi.allowlist != n.restapi.allowlist,
        ),
        (
            "restapi.allowlist_include_members",
            o.restapi.allowlist_include_members != n.restapi.allowlist_include_members,
        ),
        (
            "restapi.http_extra_headers",
            o.restapi.extra_headers != n.restapi.extra_headers,
        ),
        ("ctl", o.ctl != n.ctl),
        ("dcs", o.dcs != n.dcs),
        ("log", o.log != n.log),
        ("postgresql.listen", op.listen != np.listen),
        (
            "postgresql.connect_address",
            op.connect_address != np.connect_address,
        ),
        ("postgresql.data_dir", op.data_dir != np.data_dir),
        (
            "postgresql.bin_dir",
            op.bin_dir != np.bin_dir || op.bin_name != np.bin_name,
        ),
        ("postgresql.config_dir", op.config_dir != np.config_dir),
        (
            "postgresql.authentication",
            op.authentication != np.authentication,
        ),
        ("postgresql.pgpass", op.pgpass != np.pgpass),
        // pg-control's settings are made once, at the start.
        (
            "postgresql.recovery_conf",
            op.recovery_conf != np.recovery_conf,
        ),
        (
            "postgresql.create_replica_methods",
            op.replica_methods != np.replica_methods
                || op.other_replica_methods != np.other_replica_methods,
        ),
        ("postgresql.basebackup", op.basebackup != np.basebackup),
        ("postgresql.pg_ident", op.pg_ident != np.pg_ident),
        ("postgresql.before_stop", op.before_stop != np.before_stop),
        (
            "postgresql.pg_ctl_timeout",
            op.pg_ctl_timeout != np.pg_ctl_timeout,
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml).expect("a valid config")
    }

    const BASE: &str = "
scope: batman
name: node1
restapi: {listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}
etcd3: {hosts: 127.0.0.1:2379}
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /tmp/data
  parameters: {work_mem: 4MB}
tags: {nofailover: false}
";

    #[test]
    fn tags_and_local_parameters_need_no_restart() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace("nofailover: false", "nofailover: true")
                .replace("4MB", "8MB"),
        );
        assert_ne!(old.tags, new.tags);
        assert!(restart_only_changes(&old, &new).is_empty());
    }

    #[test]
    fn a_changed_address_or_dcs_is_named_as_needing_a_restart() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace("listen: 127.0.0.1:8008", "listen: 127.0.0.1:8009")
                .replace("127.0.0.1:2379", "127.0.0.1:2381")
                .replace("/tmp/data", "/tmp/other"),
        );
        assert_eq!(
            restart_only_changes(&old, &new),
            vec!["restapi.listen", "dcs", "postgresql.data_dir"]
        );
    }
}
