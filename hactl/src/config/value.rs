//! Reading a YAML tree with the key path at hand: every accessor names the full key (`postgresql.listen`) in its
//! error, and each section lists the keys it knows so that the others are reported as warnings, not silently dropped.

use serde_json::{Map, Value};

use super::ConfigError;

/// YAML → JSON value. Non-string mapping keys (`5432: x`) become their text, tags are dropped: Patroni's loader
/// (PyYAML) would hand them over the same way to its validator.
pub fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    Value::Null => "null".to_string(),
                    other => other.to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Deep merge of `patch` into `base` (Patroni's `patch_config`): mappings merge key by key, anything else replaces.
pub fn deep_merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// `a.b` or `b` at the top.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// One mapping of the config, with its path.
pub struct Section<'a> {
    pub path: String,
    pub map: Option<&'a Map<String, Value>>,
}

impl<'a> Section<'a> {
    pub fn root(v: &'a Value) -> Result<Section<'a>, ConfigError> {
        match v {
            Value::Object(m) => Ok(Section {
                path: String::new(),
                map: Some(m),
            }),
            Value::Null => Ok(Section {
                path: String::new(),
                map: None,
            }),
            other => Err(ConfigError::invalid("(top level)", "a mapping", other)),
        }
    }

    pub fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A sub-mapping (absent or null: an empty section).
    pub fn section(&self, key: &str) -> Result<Section<'a>, ConfigError> {
        let path = self.key(key);
        match self.get(key) {
            None => Ok(Section { path, map: None }),
            Some(Value::Object(m)) => Ok(Section { path, map: Some(m) }),
            Some(other) => Err(ConfigError::invalid(&path, "a mapping", other)),
        }
    }

    /// Warns about every key not in `known` (`*` in `known` accepts everything).
    pub fn warn_unknown(&self, known: &[&str], warnings: &mut Vec<String>) {
        if let Some(m) = self.map {
            for k in m.keys() {
                if !known.contains(&k.as_str()) {
                    warnings.push(format!("unknown key `{}` ignored", self.key(k)));
                }
            }
        }
    }

    /// A string; numbers and booleans are taken as their text (YAML `port: 5432` where a string is expected).
    /// Names each of `keys` present that hactl reads but does not act on, with why: never dropped silently.
    pub fn warn_not_acted_on(&self, keys: &[(&str, &str)], warnings: &mut Vec<String>) {
        for (key, why) in keys {
            if self.has(key) {
                warnings.push(format!(
                    "`{}` is not acted on by hactl: {why}",
                    self.key(key)
                ));
            }
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => Err(ConfigError::invalid(&self.key(key), "a string", other)),
        }
    }

    pub fn required_string(&self, key: &str) -> Result<String, ConfigError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ConfigError::Missing { key: self.key(key) }),
        }
    }

    /// Booleans as Patroni's `parse_bool`: true/false, on/off, yes/no, 1/0, any case.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_bool(v)
                .map(Some)
                .ok_or_else(|| ConfigError::invalid(&self.key(key), "a boolean", v)),
        }
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                n.map(Some).ok_or_else(|| {
                    ConfigError::invalid(&self.key(key), "a non-negative integer", v)
                })
            }
        }
    }

    pub fn f64(&self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                n.filter(|f| f.is_finite() && *f >= 0.0)
                    .map(Some)
                    .ok_or_else(|| ConfigError::invalid(&self.key(key), "a number of seconds", v))
            }
        }
    }

    /// A list of strings; a single string is split on commas (`hosts: a:2379,b:2379`, as Patroni accepts).
    pub fn string_list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
            )),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(n) => out.push(n.to_string()),
                        other => {
                            return Err(ConfigError::invalid(
                                &format!("{}[{i}]", self.key(key)),
                                "a string",
                                other,
                            ))
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(ConfigError::invalid(
                &self.key(key),
                "a list of strings",
                other,
            )),
        }
    }

    /// The mapping at `key` as settings text (`recovery_conf`): strings as written, numbers and booleans as their
    /// YAML text; a nested value is an error naming its key.
    pub fn scalar_map(
        &self,
        key: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
        self.section(key)?
            .scalars_except(&[])
            .map(|v| v.into_iter().collect())
    }

    /// This section's entries other than `skip`, as settings text (a method's own `--key=value` parameters), in the
    /// order written; a nested value is an error naming its key.
    pub fn scalars_except(&self, skip: &[&str]) -> Result<Vec<(String, String)>, ConfigError> {
        self.map
            .into_iter()
            .flatten()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, v)| match v {
                Value::String(t) => Ok((k.clone(), t.clone())),
                Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                other => Err(ConfigError::invalid(&self.key(k), "a scalar", other)),
            })
            .collect()
    }

    /// The raw mapping at `key`, cloned (parameters, tags: values are kept as written).
    pub fn raw_map(&self, key: &str) -> Result<Map<String, Value>, ConfigError> {
        Ok(self.section(key)?.map.cloned().unwrap_or_default())
    }
}

pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" | "y" => Some(true),
            "false" | "off" | "no" | "0" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl ConfigError {
    pub fn invalid(key: &str, expected: &str, got: &Value) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            expected: expected.to_string(),
            got: describe(got),
        }
    }
}
