//! Patroni accepts numbers and booleans written as strings in its dynamic config (`"ttl": "30"`,
//! `"pause": "true"`); so do we. Anything else is a deserialisation error the caller reports with the key.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A number written as a number or a string (`2.5`, `"2.5"`).
pub fn value_f64(v: &Value) -> Option<f64> {
    as_f64(v)
}

/// A whole number written as a number or a string (`2`, `"2"`, `2.0`).
pub fn value_i64(v: &Value) -> Option<i64> {
    as_f64(v).filter(|f| f.fract() == 0.0).map(|f| f as i64)
}

pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_f64(&v)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a number, got {v}"))),
    }
}

pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = opt_f64(d)?;
    match v {
        None => Ok(None),
        Some(f) if f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as u64)),
        Some(f) => Err(serde::de::Error::custom(format!(
            "expected a non-negative integer, got {f}"
        ))),
    }
}

pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = opt_f64(d)?;
    match v {
        None => Ok(None),
        Some(f) if f.fract() == 0.0 => Ok(Some(f as i64)),
        Some(f) => Err(serde::de::Error::custom(format!(
            "expected an integer, got {f}"
        ))),
    }
}

/// A boolean as Patroni's `parse_bool` reads one: `true`/`on`/`yes`/`1` (any case, or the number 1) and their opposites;
/// anything else is `None`.
pub fn value_bool(v: &Value) -> Option<bool> {
    opt_bool(v.clone()).ok().flatten()
}

/// Deserializes an optional boolean leniently (see [`value_bool`]).
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok(Some(true)),
            "false" | "off" | "no" | "0" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom(format!(
                "expected a boolean, got {s:?}"
            ))),
        },
        Some(Value::Number(n)) => Ok(Some(n.as_f64() != Some(0.0))),
        Some(v) => Err(serde::de::Error::custom(format!(
            "expected a boolean, got {v}"
        ))),
    }
}

/// Writes whole numbers as integers (`30`, not `30.0`), as Patroni does.
pub fn ser_opt_f64<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => s.serialize_i64(*f as i64),
        Some(f) => s.serialize_f64(*f),
        None => s.serialize_none(),
    }
}
