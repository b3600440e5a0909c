//! `postgresql`: addresses, directories, binaries, the roles in `authentication`, local parameters, pg_hba and the
//! callbacks.

use std::collections::BTreeMap;

use super::value::Section;
use super::{
    opt_host_port, opt_path, Callbacks, ConfigError, PgAuthentication, PgUser, PostgresqlConfig,
};

fn parse_user(s: &Section, key: &str) -> Result<Option<PgUser>, ConfigError> {
    let u = s.section(key)?;
    let Some(m) = u.map else {
        return Ok(None);
    };
    let mut options = BTreeMap::new();
    for (k, v) in m {
        if k != "username" && k != "password" {
            if let Some(s) = v.as_str() {
                options.insert(k.clone(), s.to_string());
            }
        }
    }
    Ok(Some(PgUser {
        username: u.required_string("username")?,
        password: u.string("password")?,
        options,
    }))
}

pub(super) fn parse_postgresql(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<PostgresqlConfig, ConfigError> {
    s.warn_unknown(
        &[
            "listen",
            "connect_address",
            "proxy_address",
            "data_dir",
            "config_dir",
            "bin_dir",
            "bin_name",
            "pgpass",
            "authentication",
            "parameters",
            "pg_hba",
            "pg_ident",
            "use_pg_rewind",
            "callbacks",
            "pre_promote",
            "before_stop",
            "create_replica_methods",
            "basebackup",
            "remove_data_directory_on_rewind_failure",
            "remove_data_directory_on_diverged_timelines",
            "recovery_conf",
            "custom_conf",
            "use_unix_socket",
            "use_unix_socket_repl",
            "pg_ctl_timeout",
            "database",
            "replica_method",
        ],
        warnings,
    );
    let auth = s.section("authentication")?;
    auth.warn_unknown(&["superuser", "replication", "rewind"], warnings);
    let cb = s.section("callbacks")?;
    cb.warn_unknown(
        &[
            "on_start",
            "on_stop",
            "on_restart",
            "on_reload",
            "on_role_change",
        ],
        warnings,
    );
    let mut bin_name = BTreeMap::new();
    let bn = s.section("bin_name")?;
    if let Some(m) = bn.map {
        for (k, v) in m {
            match v.as_str() {
                Some(x) => {
                    bin_name.insert(k.clone(), x.to_string());
                }
                None => return Err(ConfigError::invalid(&bn.key(k), "a program name", v)),
            }
        }
    }
    let parameters = s.raw_map("parameters")?;
    for (k, v) in &parameters {
        if v.is_object() || v.is_array() {
            return Err(ConfigError::invalid(
                &format!("{}.{k}", s.key("parameters")),
                "a scalar parameter value",
                v,
            ));
        }
    }
    Ok(PostgresqlConfig {
        listen: opt_host_port(s, "listen")?,
        connect_address: opt_host_port(s, "connect_address")?,
        data_dir: opt_path(s, "data_dir")?,
        config_dir: opt_path(s, "config_dir")?,
        bin_dir: opt_path(s, "bin_dir")?,
        bin_name,
        pgpass: opt_path(s, "pgpass")?,
        authentication: PgAuthentication {
            superuser: parse_user(&auth, "superuser")?,
            replication: parse_user(&auth, "replication")?,
            rewind: parse_user(&auth, "rewind")?,
        },
        parameters,
        pg_hba: s.string_list("pg_hba")?.unwrap_or_default(),
        use_pg_rewind: s.bool("use_pg_rewind")?,
        callbacks: Callbacks {
            on_start: cb.string("on_start")?,
            on_stop: cb.string("on_stop")?,
            on_restart: cb.string("on_restart")?,
            on_reload: cb.string("on_reload")?,
            on_role_change: cb.string("on_role_change")?,
        },
        pre_promote: s.string("pre_promote")?,
    })
}
