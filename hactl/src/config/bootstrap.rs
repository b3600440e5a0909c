//! `bootstrap`: the dynamic configuration a new cluster starts with (`bootstrap.dcs`, checked for timing here so
//! that a broken `ttl`/`loop_wait`/`retry_timeout` is refused at load), initdb's options and the initial pg_hba.

use ha_core::model::GlobalConfig;
use serde_json::Value;

use super::schema::BootstrapMethod;
use super::value::Section;
use super::{BootstrapConfig, ConfigError, InitdbOption};

pub(super) fn parse_bootstrap(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<BootstrapConfig, ConfigError> {
    // The method's own section (`bootstrap.<method>`) is known too.
    let method_name = s.string("method")?.unwrap_or_default();
    s.warn_unknown(
        &[
            "dcs",
            "initdb",
            "pg_hba",
            "method",
            "post_bootstrap",
            "post_init",
            "users",
            method_name.as_str(),
        ],
        warnings,
    );
    if s.has("users") {
        // Patroni 4 dropped it too: users are created by a post_bootstrap script.
        warnings.push(format!(
            "`{}` is not supported (as in Patroni 4): create users in a `bootstrap.post_bootstrap` script",
            s.key("users")
        ));
    }
    let method = parse_method(s)?;
    let post_bootstrap = match s.string("post_bootstrap")? {
        Some(c) => Some(c),
        None => s.string("post_init")?,
    };
    let dcs_tree = s.section("dcs")?;
    let dcs: GlobalConfig = match dcs_tree.map {
        None => GlobalConfig::default(),
        Some(m) => {
            serde_json::from_value(Value::Object(m.clone())).map_err(|e| ConfigError::Invalid {
                key: dcs_tree.path.clone(),
                expected: "Patroni's dynamic configuration".into(),
                got: e.to_string(),
            })?
        }
    };
    warnings.extend(
        dcs.timing_adjustments()
            .into_iter()
            .map(|w| format!("`{}`: {w}", dcs_tree.path)),
    );
    let mut initdb = Vec::new();
    if let Some(v) = s.get("initdb") {
        let items = v
            .as_array()
            .ok_or_else(|| ConfigError::invalid(&s.key("initdb"), "a list of options", v))?;
        for (i, item) in items.iter().enumerate() {
            let key = format!("{}[{i}]", s.key("initdb"));
            match item {
                Value::String(f) => initdb.push(InitdbOption::Flag(f.clone())),
                Value::Object(m) if m.len() == 1 => {
                    let (k, v) = m.iter().next().expect("one entry");
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        other => {
                            return Err(ConfigError::invalid(
                                &format!("{key}.{k}"),
                                "a scalar",
                                other,
                            ))
                        }
                    };
                    initdb.push(InitdbOption::Value(k.clone(), v));
                }
                other => {
                    return Err(ConfigError::invalid(
                        &key,
                        "an option name or a one-key mapping like {encoding: UTF8}",
                        other,
                    ))
                }
            }
        }
    }
    Ok(BootstrapConfig {
        dcs,
        initdb,
        pg_hba: s.string_list("pg_hba")?.unwrap_or_default(),
        method,
        post_bootstrap,
    })
}

/// `method` and its section: `initdb` (or none) is the default; another name needs `bootstrap.<name>.command`.
fn parse_method(s: &Section) -> Result<Option<BootstrapMethod>, ConfigError> {
    let name = match s.string("method")? {
        None => return Ok(None),
        Some(n) if n == "initdb" => return Ok(None),
        Some(n) => n,
    };
    let m = s.section(&name)?;
    let command = m.required_string("command")?;
    let mut method = BootstrapMethod {
        name: name.clone(),
        command,
        no_params: m.bool("no_params")?.unwrap_or(false),
        keep_existing_recovery_conf: m.bool("keep_existing_recovery_conf")?.unwrap_or(false),
        ..Default::default()
    };
    method.recovery_conf = m.scalar_map("recovery_conf")?;
    method.params = m.scalars_except(&[
        "command",
        "no_params",
        "keep_existing_recovery_conf",
        "recovery_conf",
        "scope",
        "datadir",
    ])?;
    Ok(Some(method))
}
