//! `bootstrap`: the dynamic configuration a new cluster starts with (`bootstrap.dcs`, checked for timing here so
//! that a broken `ttl`/`loop_wait`/`retry_timeout` is refused at load), initdb's options and the initial pg_hba.

use ha_core::model::GlobalConfig;
use serde_json::Value;

use super::value::Section;
use super::{BootstrapConfig, ConfigError, InitdbOption};

pub(super) fn parse_bootstrap(
    s: &Section,
    warnings: &mut Vec<String>,
) -> Result<BootstrapConfig, ConfigError> {
    s.warn_unknown(
        &[
            "dcs",
            "initdb",
            "pg_hba",
            "method",
            "post_bootstrap",
            "post_init",
            "users",
        ],
        warnings,
    );
    for k in ["method", "post_bootstrap", "post_init", "users"] {
        if s.has(k) {
            warnings.push(format!(
                "`{}` is not supported by hactl and is ignored",
                s.key(k)
            ));
        }
    }
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
    })
}
