//! `tags`: read as ha-core's [`Tags`], with a warning when `nofailover` and `failover_priority` disagree.

use ha_core::model::Tags;
use serde_json::Value;

use super::value::Section;
use super::ConfigError;

pub(super) fn parse_tags(root: &Section, warnings: &mut Vec<String>) -> Result<Tags, ConfigError> {
    let s = root.section("tags")?;
    let Some(m) = s.map else {
        return Ok(Tags::default());
    };
    let tags: Tags = serde_json::from_value(Value::Object(m.clone())).map_err(|e| {
        ConfigError::Invalid {
            key: "tags".into(),
            expected: "tags (nofailover, failover_priority, noloadbalance, clonefrom, nosync, nostream: booleans; replicatefrom: a member name)".into(),
            got: e.to_string(),
        }
    })?;
    if let (Some(b), Some(p)) = (tags.nofailover, tags.failover_priority) {
        if b == (p > 0) {
            warnings.push(format!(
                "tags: nofailover: {b} conflicts with failover_priority: {p}; nofailover wins"
            ));
        }
    }
    if let (Some(nosync), true) = (tags.nosync, tags.extra.contains_key("sync_priority")) {
        let p = tags.sync_priority();
        if nosync == (p > 0) {
            let py = |b: bool| if b { "True" } else { "False" };
            warnings.push(format!(
                "Conflicting configuration between nosync: {} and sync_priority: {p}. Defaulting to nosync: {}",
                py(nosync),
                py(nosync)
            ));
        }
    }
    Ok(tags)
}
