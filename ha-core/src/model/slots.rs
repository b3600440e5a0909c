//! Replication slots as the cluster-wide configuration names them: Patroni's permanent `slots`, `ignore_slots`,
//! `member_slots_ttl` and `use_slots`, read leniently (a bad entry is reported by name and skipped, never fatal).

use serde_json::Value;

use super::config::GlobalConfig;
use super::lenient;

/// Patroni's default `member_slots_ttl`: a departed member's slot is kept 30 minutes.
pub const DEFAULT_MEMBER_SLOTS_TTL_S: u64 = 1800;

/// The replication slot name for a member, as Patroni derives it (`slot_name_from_member_name`): lower case, `-` and
/// `.` become `_`, any other character outside `[a-z0-9_]` becomes `u` and its code point in at least four decimal
/// digits (`é` → `u0233`), at most 63 characters. Names must match Patroni's exactly: a Patroni node and a hactl
/// node of one cluster look for each other's slots by these names.
pub fn slot_name(member: &str) -> String {
    let mut s = String::with_capacity(member.len());
    for c in member.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => s.push(c),
            '-' | '.' => s.push('_'),
            other => s.push_str(&format!("u{:04}", other as u32)),
        }
    }
    s.truncate(63);
    s
}

/// A valid slot name as PostgreSQL takes it (`^[a-z0-9_]{1,63}$`).
pub fn valid_slot_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// What kind of slot: physical, or logical with its database and output plugin.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlotKind {
    /// A physical slot: streaming replication or a base backup tool.
    Physical,
    /// A logical slot: decoding changes of one database through an output plugin.
    Logical {
        /// The database whose changes it decodes.
        database: String,
        /// The output plugin, e.g. `pgoutput`.
        plugin: String,
    },
}

/// One entry of `slots`: a slot that exists on every node that may become the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermanentSlot {
    /// The slot name (a valid PostgreSQL slot name; see [`valid_slot_name`]).
    pub name: String,
    /// Physical, or logical with its database and plugin.
    pub kind: SlotKind,
}

/// One entry of `ignore_slots`: every attribute given must match; the ones left out match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreSlot {
    /// Matches the slot of this name.
    pub name: Option<String>,
    /// `physical` or `logical`.
    pub slot_type: Option<String>,
    /// Matches logical slots of this database.
    pub database: Option<String>,
    /// Matches logical slots of this output plugin, e.g. `pgoutput`.
    pub plugin: Option<String>,
}

impl IgnoreSlot {
    /// Whether a slot with these attributes is one hactl must leave alone.
    pub fn matches(&self, name: &str, kind: &SlotKind) -> bool {
        let (t, db, plugin) = match kind {
            SlotKind::Physical => ("physical", None, None),
            SlotKind::Logical { database, plugin } => {
                ("logical", Some(database.as_str()), Some(plugin.as_str()))
            }
        };
        self.name.as_deref().map_or(true, |n| n == name)
            && self.slot_type.as_deref().map_or(true, |x| x == t)
            && self.database.as_deref().map_or(true, |x| Some(x) == db)
            && self.plugin.as_deref().map_or(true, |x| Some(x) == plugin)
    }
}

fn str_field(v: &serde_json::Map<String, Value>, k: &str) -> Option<String> {
    match v.get(k) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

impl GlobalConfig {
    /// `postgresql.use_slots` (default on).
    pub fn use_slots(&self) -> bool {
        self.postgresql
            .as_ref()
            .and_then(|p| p.use_slots)
            .unwrap_or(true)
    }

    /// The permanent slots of `slots`, and one line per entry that was skipped (bad name or value), to log. As in
    /// Patroni, an entry without attributes (`null`, `0`, `{}`) is physical; one with `database` and `plugin` is
    /// logical unless its `type` says otherwise.
    pub fn permanent_slots(&self) -> (Vec<PermanentSlot>, Vec<String>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let Some(Value::Object(map)) = self.extra.get("slots") else {
            return (out, errors);
        };
        for (name, v) in map {
            if !valid_slot_name(name) {
                errors.push(format!(
                    "invalid permanent replication slot name '{name}': only lower case letters, digits and '_'"
                ));
                continue;
            }
            let kind = match v {
                Value::Object(o) => {
                    let db = str_field(o, "database");
                    let plugin = str_field(o, "plugin");
                    let ty = str_field(o, "type");
                    match (ty.as_deref(), db, plugin) {
                        (Some("physical"), _, _) | (None, None, _) | (None, _, None) => {
                            SlotKind::Physical
                        }
                        (Some("logical") | None, Some(database), Some(plugin)) => {
                            SlotKind::Logical { database, plugin }
                        }
                        _ => {
                            errors.push(format!("bad value for slot '{name}' in slots: {v}"));
                            continue;
                        }
                    }
                }
                Value::Null | Value::Bool(false) => SlotKind::Physical,
                Value::Number(n) if n.as_f64() == Some(0.0) => SlotKind::Physical,
                Value::String(s) if s.is_empty() => SlotKind::Physical,
                _ => {
                    errors.push(format!("bad value for slot '{name}' in slots: {v}"));
                    continue;
                }
            };
            out.push(PermanentSlot {
                name: name.clone(),
                kind,
            });
        }
        (out, errors)
    }

    /// `ignore_slots`: entries that are not objects are skipped.
    pub fn ignore_slots(&self) -> Vec<IgnoreSlot> {
        let Some(Value::Array(list)) = self.extra.get("ignore_slots") else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|v| v.as_object())
            .map(|o| IgnoreSlot {
                name: str_field(o, "name"),
                slot_type: str_field(o, "type"),
                database: str_field(o, "database"),
                plugin: str_field(o, "plugin"),
            })
            .collect()
    }

    /// `member_slots_ttl` in ms (Patroni: 30 min; 0 turns retention off). Takes seconds or a value with a unit
    /// (`30min`, `1h`, `90s`, `500ms`).
    pub fn member_slots_ttl_ms(&self) -> u64 {
        let s = DEFAULT_MEMBER_SLOTS_TTL_S * 1000;
        match self.extra.get("member_slots_ttl") {
            None | Some(Value::Null) => s,
            Some(Value::String(t)) => parse_duration_ms(t).unwrap_or(s),
            Some(v) => lenient::value_i64(v).map_or(s, |n| n.max(0) as u64 * 1000),
        }
    }
}

/// `"30min"` → 1 800 000: a number with PostgreSQL's time units (`ms`, `s`, `min`, `h`, `d`; none: seconds).
pub fn parse_duration_ms(t: &str) -> Option<u64> {
    let t = t.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1000.0,
        "ms" => 1.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((n * factor).max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> GlobalConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn permanent_slots_read_as_patroni_reads_them() {
        let c = cfg(
            r#"{"slots":{"test_physical":0,"postgres_3":null,"p2":{},"p3":{"type":"physical"},
                "test_logical":{"type":"logical","database":"postgres","plugin":"test_decoding"},
                "implicit":{"database":"db","plugin":"pgoutput"},
                "Bad-Name":0,"half":{"type":"logical","database":"x"}}}"#,
        );
        let (slots, errors) = c.permanent_slots();
        let mut kinds: Vec<(&str, bool)> = slots
            .iter()
            .map(|s| (s.name.as_str(), s.kind == SlotKind::Physical))
            .collect();
        kinds.sort();
        assert_eq!(
            kinds,
            vec![
                ("implicit", false),
                ("p2", true),
                ("p3", true),
                ("postgres_3", true),
                ("test_logical", false),
                ("test_physical", true)
            ]
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("Bad-Name")));
        assert!(errors.iter().any(|e| e.contains("half")));
    }

    #[test]
    fn ignore_slots_match_on_the_attributes_given() {
        let c = cfg(
            r#"{"ignore_slots":[{"name":"a","type":"logical","plugin":"test_decoding"},{"database":"db"},{"name":"p"}]}"#,
        );
        let rules = c.ignore_slots();
        let logical = |db: &str, p: &str| SlotKind::Logical {
            database: db.into(),
            plugin: p.into(),
        };
        assert!(rules[0].matches("a", &logical("x", "test_decoding")));
        assert!(!rules[0].matches("a", &logical("x", "pgoutput")));
        assert!(!rules[0].matches("a", &SlotKind::Physical));
        assert!(rules[1].matches("anything", &logical("db", "p")));
        assert!(!rules[1].matches("anything", &SlotKind::Physical));
        assert!(rules[2].matches("p", &SlotKind::Physical));
    }

    #[test]
    fn member_slots_ttl_takes_units_and_defaults_to_thirty_minutes() {
        assert_eq!(cfg("{}").member_slots_ttl_ms(), 1_800_000);
        assert_eq!(cfg(r#"{"member_slots_ttl":0}"#).member_slots_ttl_ms(), 0);
        assert_eq!(
            cfg(r#"{"member_slots_ttl":"5min"}"#).member_slots_ttl_ms(),
            300_000
        );
        assert_eq!(
            cfg(r#"{"member_slots_ttl":60}"#).member_slots_ttl_ms(),
            60_000
        );
        assert!(cfg("{}").use_slots());
        assert!(!cfg(r#"{"postgresql":{"use_slots":false}}"#).use_slots());
    }

    #[test]
    fn slot_names_are_sanitized_like_patroni() {
        assert_eq!(slot_name("Node-1.dc"), "node_1_dc");
        assert_eq!(slot_name(&"x".repeat(70)).len(), 63);
        // Patroni: `re.sub('[^a-z0-9_]', lambda c: '_' if c in '-.' else f"u{ord(c):04d}", name.lower())`.
        assert_eq!(slot_name("pg@host 1"), "pgu0064hostu00321");
        assert_eq!(slot_name("Zürich-1"), "zu0252rich_1");
        assert_eq!(slot_name("a/b:c"), "au0047bu0058c");
    }
}
