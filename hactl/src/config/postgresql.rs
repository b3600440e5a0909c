//! `postgresql`: addresses, directories, binaries, the roles in `authentication`, local parameters, pg_hba and the
//! callbacks.

use std::collections::BTreeMap;

use super::schema::ReplicaMethodConfig;
use super::value::Section;
use super::{
    opt_host_port, opt_path, Callbacks, ConfigError, PgAuthentication, PgUser, PostgresqlConfig,
};

/// One role of `postgresql.authentication`: `username`, `password` and the libpq connection options Patroni passes
/// on (`sslmode`, `sslrootcert`, ...). An unknown key is refused, naming it: a misspelt `sslmode` would otherwise
/// connect with less protection than the operator asked for. The values are checked by pg-control.
fn parse_user(s: &Section, key: &str) -> Result<Option<PgUser>, ConfigError> {
    let u = s.section(key)?;
    let Some(m) = u.map else {
        return Ok(None);
    };
    let mut options = BTreeMap::new();
    for (k, v) in m {
        if k == "username" || k == "password" || v.is_null() {
            continue;
        }
        if !pg_control::KNOWN_OPTIONS.contains(&k.as_str()) {
            return Err(ConfigError::Invalid {
                key: u.key(k),
                expected: format!(
                    "a connection option Patroni knows (username, password, {})",
                    pg_control::KNOWN_OPTIONS.join(", ")
                ),
                got: "an unknown key".into(),
            });
        }
        let value = match v {
            // YAML `sslsni: true`: libpq spells it 1.
            serde_json::Value::Bool(b) if k == "sslsni" => (if *b { "1" } else { "0" }).to_string(),
            _ => u.string(k)?.unwrap_or_default(),
        };
        options.insert(k.clone(), value);
    }
    Ok(Some(PgUser {
        username: u.required_string("username")?,
        password: u.string("password")?,
        options,
    }))
}

/// `create_replica_methods` and each method's section (`basebackup` is pg_basebackup; any other name needs
/// `postgresql.<name>.command`), then the other sections with a `command` that the list does not name: a standby
/// cluster's `standby_cluster.create_replica_methods` (in the DCS, so known only at run time) may name them.
fn parse_replica_methods(
    s: &Section,
) -> Result<(Vec<ReplicaMethodConfig>, Vec<ReplicaMethodConfig>), ConfigError> {
    let names = s.string_list("create_replica_methods")?.unwrap_or_default();
    let mut listed = Vec::new();
    for name in &names {
        if name == "basebackup" {
            listed.push(ReplicaMethodConfig {
                name: name.clone(),
                ..Default::default()
            });
            continue;
        }
        listed.push(parse_replica_method(s, name)?);
    }
    let mut others = Vec::new();
    for (k, v) in s.map.into_iter().flatten() {
        let is_method = v.as_object().is_some_and(|o| o.contains_key("command"));
        if is_method && !names.contains(k) && !POSTGRESQL_KEYS.contains(&k.as_str()) {
            others.push(parse_replica_method(s, k)?);
        }
    }
    Ok((listed, others))
}

/// One `postgresql.<name>` replica method section: `command`, `no_leader`, `keep_data`, `no_params`, and every
/// other key passed as `--key=value`.
fn parse_replica_method(s: &Section, name: &str) -> Result<ReplicaMethodConfig, ConfigError> {
    let m = s.section(name)?;
    let mut method = ReplicaMethodConfig {
        name: name.to_string(),
        command: Some(m.required_string("command")?),
        // `no_master` is the name Patroni had before `no_leader`.
        no_leader: m
            .bool("no_leader")?
            .or(m.bool("no_master")?)
            .unwrap_or(false),
        keep_data: m.bool("keep_data")?.unwrap_or(false),
        no_params: m.bool("no_params")?.unwrap_or(false),
        ..Default::default()
    };
    method.params = m.scalars_except(&[
        "command",
        "no_leader",
        "keep_data",
        "no_params",
        "no_master",
    ])?;
    Ok(method)
}

/// `bin_name`: a binary's name in `bin_dir` where it is not the usual one, keyed by the usual name as Patroni keys
/// it (`pg_ctl`, `initdb`, `pg_controldata`, `pg_basebackup`, `postgres`, `pg_isready`, `pg_rewind`); another key
/// is warned about and dropped.
fn parse_bin_name(
    bn: &Section,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (k, v) in bn.map.into_iter().flatten() {
        let Some(name) = v.as_str().filter(|n| !n.trim().is_empty()) else {
            return Err(ConfigError::invalid(&bn.key(k), "a program name", v));
        };
        match k.as_str() {
            "pg_ctl" | "initdb" | "pg_controldata" | "pg_basebackup" | "postgres" | "pg_rewind" => {
                out.insert(k.clone(), name.to_string());
            }
            // hactl never runs pg_isready (it asks the server itself): there is nothing to rename.
            "pg_isready" => {}
            _ => warnings.push(format!(
                "`{}` is not a PostgreSQL binary Patroni renames and is ignored",
                bn.key(k)
            )),
        }
    }
    Ok(out)
}

/// `basebackup`: pg_basebackup options as Patroni takes them, a mapping (`max-rate: 100M`) or a list of flags and
/// one-key mappings (`- verbose`, `- waldir: /wal`), as `--name[=value]`. The options hactl must decide (`pgdata`,
/// `wal-method`, `dbname`, `format`) are dropped with a warning naming them, as Patroni drops them with an error
/// line.
fn parse_basebackup(s: &Section, warnings: &mut Vec<String>) -> Result<Vec<String>, ConfigError> {
    const OURS: &[&str] = &[
        "pgdata",
        "D",
        "wal-method",
        "X",
        "dbname",
        "d",
        "format",
        "F",
    ];
    let key = s.key("basebackup");
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    let scalar = |k: &str, v: &serde_json::Value| match v {
        serde_json::Value::String(t) => Ok(t.clone()),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Ok(v.to_string()),
        other => Err(ConfigError::invalid(
            &format!("{key}.{k}"),
            "a scalar",
            other,
        )),
    };
    match s.get("basebackup") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(m)) => {
            for (k, v) in m {
                pairs.push((k.clone(), Some(scalar(k, v)?)));
            }
        }
        Some(serde_json::Value::Array(items)) => {
            for item in items {
                match item {
                    serde_json::Value::String(flag) => pairs.push((flag.clone(), None)),
                    serde_json::Value::Object(m) if m.len() == 1 => {
                        for (k, v) in m {
                            pairs.push((k.clone(), Some(scalar(k, v)?)));
                        }
                    }
                    other => {
                        return Err(ConfigError::invalid(
                            &key,
                            "options or one-key mappings",
                            other,
                        ))
                    }
                }
            }
        }
        Some(other) => return Err(ConfigError::invalid(&key, "a mapping or a list", other)),
    }
    let mut out = Vec::new();
    for (k, v) in pairs {
        if OURS.contains(&k.as_str()) {
            warnings.push(format!("`{key}.{k}` is decided by hactl and is ignored"));
            continue;
        }
        out.push(match v {
            Some(v) => format!("--{k}={v}"),
            None => format!("--{k}"),
        });
    }
    Ok(out)
}

/// The `postgresql` section's own keys (everything else is a replica method's section or unknown).
const POSTGRESQL_KEYS: &[&str] = &[
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
];

pub(super) fn parse_postgresql(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<PostgresqlConfig, ConfigError> {
    let (replica_methods, other_replica_methods) = parse_replica_methods(s)?;
    let method_sections: Vec<&str> = replica_methods
        .iter()
        .chain(&other_replica_methods)
        .filter(|m| m.command.is_some())
        .map(|m| m.name.as_str())
        .collect();
    s.warn_unknown(
        &[method_sections.as_slice(), POSTGRESQL_KEYS].concat(),
        warnings,
    );
    // Keys Patroni knows that hactl reads but does not act on: each is named, never dropped silently.
    s.warn_not_acted_on(
        &[
            (
                "use_unix_socket",
                "hactl always reaches its own server over the unix socket",
            ),
            (
                "use_unix_socket_repl",
                "replication connections use the members' conn_url",
            ),
            ("replica_method", "use create_replica_methods"),
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
    let bin_name = parse_bin_name(&s.section("bin_name")?, warnings)?;
    let basebackup = parse_basebackup(s, warnings)?;
    let pg_ctl_timeout = s.f64("pg_ctl_timeout")?.filter(|t| *t > 0.0);
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
        proxy_address: opt_host_port(s, "proxy_address")?,
        database: s
            .string("database")?
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "postgres".to_string()),
        data_dir: opt_path(s, "data_dir")?,
        config_dir: opt_path(s, "config_dir")?,
        custom_conf: opt_path(s, "custom_conf")?,
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
        pg_ident: s.string_list("pg_ident")?.unwrap_or_default(),
        before_stop: s.string("before_stop")?,
        basebackup,
        pg_ctl_timeout,
        recovery_conf: s.scalar_map("recovery_conf")?,
        use_pg_rewind: s.bool("use_pg_rewind")?,
        remove_data_directory_on_rewind_failure: s
            .bool("remove_data_directory_on_rewind_failure")?
            .unwrap_or(false),
        remove_data_directory_on_diverged_timelines: s
            .bool("remove_data_directory_on_diverged_timelines")?
            .unwrap_or(false),
        callbacks: Callbacks {
            on_start: cb.string("on_start")?,
            on_stop: cb.string("on_stop")?,
            on_restart: cb.string("on_restart")?,
            on_reload: cb.string("on_reload")?,
            on_role_change: cb.string("on_role_change")?,
        },
        pre_promote: s.string("pre_promote")?,
        replica_methods,
        other_replica_methods,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::{env, value, Config, ConfigError};

    const BASE: &str = r#"
scope: batman
name: node1
restapi: {listen: 0.0.0.0:8008, connect_address: 10.0.0.1:8008}
etcd3: {hosts: [10.0.0.1:2379]}
postgresql:
  listen: 0.0.0.0:5432
  connect_address: 10.0.0.1:5432
  data_dir: /data
  bin_dir: /usr/lib/postgresql/15/bin
  authentication:
    superuser: {username: postgres, password: patroni}
    replication:
      username: replicator
      password: rep-pass
"#;

    /// A node's configuration: a minimal one with `extra` appended, and `vars` as its environment.
    pub(crate) fn load(extra: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let yaml = format!("{BASE}{extra}");
        let mut tree = value::yaml_to_json(serde_norway::from_str(&yaml).unwrap());
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        value::deep_merge(&mut tree, env::environment_configuration(&vars)?);
        Config::from_tree(tree)
    }

    #[test]
    fn a_yaml_boolean_sslsni_is_libpq_s_digit() {
        let c = load("      sslsni: false\n", &[]).unwrap();
        let rep = c.postgresql.authentication.replication.unwrap();
        assert_eq!(rep.options["sslsni"], "0");
    }

    #[test]
    fn an_unknown_connection_option_is_refused_naming_the_key() {
        let e = load("      sslmdoe: require\n", &[]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("`postgresql.authentication.replication.sslmdoe`"),
            "{text}"
        );
        assert!(text.contains("sslmode"), "{text}");
    }
}
