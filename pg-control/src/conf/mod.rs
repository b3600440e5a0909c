//! The configuration files hactl owns: rendered by pure functions (the submodules), written into the data
//! directory by the [`PgCtl`] methods of this file.
//!
//! As Patroni does it: initdb's `postgresql.conf` is renamed `postgresql.base.conf` and left to the user; the
//! `postgresql.conf` PostgreSQL reads is ours, regenerated whole every time (after a clone or a pg_rewind too, since
//! both copy the source's files). It `include`s the base file first, so every setting of ours wins over it:
//!
//! 1. hactl's defaults for replication (`wal_level`, `hot_standby`, `wal_log_hints`...),
//! 2. the cluster-wide `postgresql.parameters` from the DCS,
//! 3. the node's local parameters,
//! 4. what only this node can decide: `port`, `listen_addresses`, the socket directory and, on a standby, the
//!    recovery settings.
//!
//! # Layout
//!
//! - `postgresql`: the managed postgresql.conf ([`ManagedConf`]), its layers and the recovery-sensitive parameters.
//! - `conninfo`: members' conn_urls ([`Endpoint`]) and the libpq conninfo strings we connect with.
//! - `hba`: pg_hba.conf, and whether it asks for passwords.
//! - `pgpass`: the pgpass file that holds every password.
//! - this file: the [`PgCtl`] methods that write them all into the data directory for a [`Role`].

mod conninfo;
mod hba;
mod pgpass;
mod postgresql;

use std::collections::BTreeMap;

use ha_core::pg::Upstream;
use tracing::warn;

use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;
use crate::settings::PgSettings;

pub use conninfo::{parse_conn_url, Endpoint};
pub use hba::{hba_needs_password, render_hba};
pub use postgresql::{parse_simple_conf, ManagedConf, Recovery, ServerParameters};

/// First line of every file we generate: a file without it is the user's.
pub const MANAGED_MARKER: &str = "# Managed by hactl (pg-control): regenerated on every role change; edit postgresql.base.conf or the hactl configuration instead.";

/// The role a (re)generated configuration is for.
#[derive(Debug, Clone)]
pub(crate) enum Role<'a> {
    Primary,
    Standby(Option<&'a Upstream>),
}

impl PgCtl {
    /// Regenerates every file we own in the data directory for `role`: postgresql.conf (moving a user's file to
    /// postgresql.base.conf first), standby.signal, pg_hba.conf, and the pgpass file beside it.
    ///
    /// On a standby, the recovery-sensitive parameters are raised to the control file's settings (see
    /// [`ManagedConf::parameters`]); [`PgCtl::observe`] still reports them pending a restart while the server runs
    /// with other values than configured.
    pub(crate) async fn write_config(&self, role: Role<'_>) -> Result<()> {
        // A primary that first recovers (a custom bootstrap restoring a backup: recovery.signal) needs them too.
        let recovering = ["recovery.signal", "backup_label"]
            .iter()
            .any(|f| self.s.data_dir.join(f).exists());
        let recovery_minimums = match &role {
            Role::Primary if !recovering => BTreeMap::new(),
            _ => match self.controldata().await {
                Ok(cd) => cd.recovery_minimums,
                Err(e) => {
                    warn!(error = %e, "pg_controldata failed: the standby's settings are not raised to the control file's");
                    BTreeMap::new()
                }
            },
        };
        self.write_config_with(role, &recovery_minimums)
    }

    fn write_config_with(
        &self,
        role: Role<'_>,
        recovery_minimums: &BTreeMap<String, u64>,
    ) -> Result<()> {
        let dd = &self.s.data_dir;
        let cd = self.s.conf_dir().to_path_buf();
        if self.s.config_dir.is_some() {
            self.prepare_config_dir()?;
        }
        let conf_path = cd.join("postgresql.conf");
        let base_path = self.s.base_conf();
        let default_base = cd.join("postgresql.base.conf");
        let current = std::fs::read_to_string(&conf_path).unwrap_or_default();
        if !current.is_empty() && !current.starts_with(MANAGED_MARKER) {
            // The user's own file is kept: as postgresql.base.conf when that is free and no custom_conf replaces
            // it (Patroni's rename), else beside it.
            let target = if default_base.exists() || self.s.custom_conf.is_some() {
                cd.join("postgresql.conf.before-hactl")
            } else {
                default_base.clone()
            };
            std::fs::rename(&conf_path, &target).map_err(|e| Error::io(&conf_path, e))?;
        }
        // A custom_conf is the user's to provide (PostgreSQL refuses to start without it, naming it).
        if self.s.custom_conf.is_none() && !base_path.exists() {
            os::write_file(&self.run_as, &base_path, "", 0o600)?;
        }
        let include = match &self.s.custom_conf {
            Some(c) => c.to_string_lossy().into_owned(),
            None => "postgresql.base.conf".to_string(),
        };
        let st = self.node_state();
        let recovery_conf = if self.s.recovery_conf.is_empty() {
            &st.cluster_recovery_conf
        } else {
            &self.s.recovery_conf
        };
        let recovery = match &role {
            Role::Primary => None,
            Role::Standby(up) => Some(match up.and_then(|u| u.remote.as_ref().map(|r| (u, r))) {
                // A standby cluster's leader: streams from its source (if it names one) through the source's
                // slot, and restores with the source's archive settings, which replace recovery_conf's.
                Some((u, r)) => Recovery {
                    primary_conninfo: (!u.conn_url.is_empty())
                        .then(|| self.primary_conninfo(u))
                        .transpose()?,
                    primary_slot_name: r
                        .primary_slot_name
                        .clone()
                        .filter(|_| !u.conn_url.is_empty()),
                    overrides: postgresql::recovery_overrides(
                        recovery_conf,
                        [
                            ("restore_command", &r.restore_command),
                            ("archive_cleanup_command", &r.archive_cleanup_command),
                            ("recovery_min_apply_delay", &r.recovery_min_apply_delay),
                        ]
                        .into_iter()
                        .filter_map(|(k, v)| v.clone().map(|v| (k.to_string(), v))),
                    ),
                },
                None => Recovery {
                    primary_conninfo: up.map(|u| self.primary_conninfo(u)).transpose()?,
                    primary_slot_name: up.map(|_| PgSettings::slot_name(&self.s.name)),
                    overrides: postgresql::recovery_overrides(recovery_conf, std::iter::empty()),
                },
            }),
        };
        let local = self.local_conf();
        let base = parse_simple_conf(&std::fs::read_to_string(&base_path).unwrap_or_default());
        // With a config_dir, pg_hba.conf and pg_ident.conf are read from there (PostgreSQL's default is the data
        // directory), unless the node's parameters name other files.
        let mut local_parameters = local.parameters.clone();
        if self.s.config_dir.is_some() {
            for (param, file) in [("hba_file", "pg_hba.conf"), ("ident_file", "pg_ident.conf")] {
                local_parameters
                    .entry(param.to_string())
                    .or_insert_with(|| cd.join(file).to_string_lossy().into_owned());
            }
        }
        let managed = ManagedConf {
            cluster: &st.cluster_parameters,
            local: &local_parameters,
            port: self.s.port,
            listen_host: &self.s.listen_host,
            socket_dir: &self.s.socket_dir,
            cluster_name: None,
            recovery: recovery.as_ref(),
            recovery_minimums,
            base: &base,
            include: &include,
            server: self.server_params.as_ref(),
            synchronous_standby_names: st.synchronous_standby_names.as_deref(),
        };
        // Said once per change of the configuration, not at every rewrite of the file.
        let notes = managed.adaptations();
        let mut said = ha_core::sync::lock(&self.adaptations_said);
        if *said != notes {
            for note in &notes {
                warn!(%note, "a configured parameter does not fit this PostgreSQL");
            }
            *said = notes;
        }
        drop(said);
        os::write_file(&self.run_as, &conf_path, &managed.render(), 0o600)?;
        let signal = dd.join("standby.signal");
        match role {
            Role::Primary => {
                if signal.exists() {
                    std::fs::remove_file(&signal).map_err(|e| Error::io(&signal, e))?;
                }
            }
            Role::Standby(_) => os::write_file(&self.run_as, &signal, "", 0o600)?,
        }
        if !local.pg_hba.is_empty() {
            os::write_file(
                &self.run_as,
                &cd.join("pg_hba.conf"),
                &render_hba(&local.pg_hba),
                0o600,
            )?;
        }
        if !self.s.pg_ident.is_empty() {
            let mut text = self.s.pg_ident.join("\n");
            text.push('\n');
            os::write_file(&self.run_as, &cd.join("pg_ident.conf"), &text, 0o600)?;
        }
        self.write_pgpass()
    }

    /// A `config_dir` exists (made 0700 for the PostgreSQL user when missing) and holds the files PostgreSQL reads
    /// from it: initdb's (or a copied) postgresql.conf moves there as the base configuration, and its pg_hba.conf
    /// and pg_ident.conf are copied there when the node configures none of its own.
    fn prepare_config_dir(&self) -> Result<()> {
        let (dd, cd) = (&self.s.data_dir, self.s.conf_dir());
        os::ensure_dir(&self.run_as, cd, 0o700)?;
        let initdb_conf = dd.join("postgresql.conf");
        let text = std::fs::read_to_string(&initdb_conf).unwrap_or_default();
        if !text.is_empty() && !text.starts_with(MANAGED_MARKER) {
            let base = cd.join("postgresql.base.conf");
            if self.s.custom_conf.is_none() && !base.exists() {
                os::write_file(&self.run_as, &base, &text, 0o600)?;
            }
            std::fs::remove_file(&initdb_conf).map_err(|e| Error::io(&initdb_conf, e))?;
        }
        for file in ["pg_hba.conf", "pg_ident.conf"] {
            let (from, to) = (dd.join(file), cd.join(file));
            if !to.exists() {
                if let Ok(text) = std::fs::read_to_string(&from) {
                    os::write_file(&self.run_as, &to, &text, 0o600)?;
                }
            }
        }
        Ok(())
    }

    /// The role the data directory is configured for now (standby.signal), with the remembered upstream.
    pub(crate) fn current_role_upstream(&self) -> Option<Upstream> {
        self.node_state().upstream.map(|u| u.to_upstream())
    }

    pub(crate) fn is_standby_configured(&self) -> bool {
        self.s.data_dir.join("standby.signal").exists()
    }

    pub(crate) async fn rewrite_current_config(&self) -> Result<()> {
        if self.is_standby_configured() {
            let up = self.current_role_upstream();
            self.write_config(Role::Standby(up.as_ref())).await
        } else {
            self.write_config(Role::Primary).await
        }
    }

    /// The recovery-sensitive parameters whose running value (`running`: "name=setting" from pg_settings) is not
    /// the configured one: a standby raised them to the control file's settings, and only a restart (once the
    /// primary runs with the configured values too) brings them where they are configured.
    pub(crate) fn recovery_sensitive_pending(&self, running: &[String]) -> Vec<String> {
        let st = self.node_state();
        let local = self.local_conf();
        let base =
            parse_simple_conf(&std::fs::read_to_string(self.s.base_conf()).unwrap_or_default());
        let none = BTreeMap::new();
        let managed = ManagedConf {
            cluster: &st.cluster_parameters,
            local: &local.parameters,
            port: self.s.port,
            listen_host: &self.s.listen_host,
            socket_dir: &self.s.socket_dir,
            cluster_name: None,
            recovery: None,
            recovery_minimums: &none,
            base: &base,
            include: "",
            server: self.server_params.as_ref(),
            synchronous_standby_names: st.synchronous_standby_names.as_deref(),
        };
        let wanted = managed.configured_recovery_values();
        running
            .iter()
            .filter_map(|r| {
                let (name, value) = r.split_once('=')?;
                let w = wanted.get(name)?;
                match (w.trim().parse::<u64>(), value.trim().parse::<u64>()) {
                    (Ok(w), Ok(v)) if w != v => Some(name.to_string()),
                    _ => None,
                }
            })
            .collect()
    }
}
