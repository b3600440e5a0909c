//! The keys a template sees: the cluster's DCS keys as confd's `-prefix=/<namespace>/<scope>` shows them
//! (`/leader`, `/members/node1`, `/config`, ...), limited to the resource's `keys`.

use std::collections::BTreeMap;

use glob::{MatchOptions, Pattern, PatternError};
use ha_core::model::Cluster;

/// Key → value, keys absolute under the cluster prefix (`/members/node1`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    keys: BTreeMap<String, String>,
}

/// Go's `path.Match`: `*` and `?` never cross a `/`.
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Store {
    /// The keys of `cluster` under any of `prefixes` (confd's `keys`; `/` is every key).
    pub fn from_cluster(cluster: &Cluster, prefixes: &[String]) -> Store {
        let prefixes: Vec<String> = prefixes.iter().map(|p| Store::normalize(p)).collect();
        let keys = cluster
            .to_entries()
            .into_iter()
            .map(|(k, v)| (format!("/{k}"), v))
            .filter(|(k, _)| {
                prefixes
                    .iter()
                    .any(|p| p == "/" || k == p || k.starts_with(&format!("{p}/")))
            })
            .collect();
        Store { keys }
    }

    /// A key as stored: one leading slash, no trailing one.
    pub fn normalize(key: &str) -> String {
        let k = key.trim_matches('/');
        format!("/{k}")
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys.get(&Store::normalize(key)).map(String::as_str)
    }

    /// The keys matching `pattern` (Go's `path.Match`), sorted, as confd's `gets`.
    pub fn matching(&self, pattern: &str) -> Result<Vec<(&str, &str)>, PatternError> {
        let p = Pattern::new(&Store::normalize(pattern))?;
        Ok(self
            .keys
            .iter()
            .filter(|(k, _)| p.matches_with(k, MATCH))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect())
    }

    /// The names directly under `dir`, sorted and once each (confd's `ls`); with `only_dirs`, those that have keys
    /// below them (`lsdir`).
    pub fn children(&self, dir: &str, only_dirs: bool) -> Vec<String> {
        let d = Store::normalize(dir);
        let prefix = if d == "/" { d } else { format!("{d}/") };
        let mut names: Vec<String> = self
            .keys
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter_map(|rest| match rest.split_once('/') {
                Some((name, _)) => Some(name.to_string()),
                None if !only_dirs => Some(rest.to_string()),
                None => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// How many keys the template sees.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No key at all (a cluster not bootstrapped, or `keys` that match nothing).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
