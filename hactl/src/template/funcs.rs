//! confd's template functions over the cluster's keys, for gtmpl (Go's text/template for Rust).
//!
//! gtmpl takes plain `fn` pointers, not closures, so the functions that read keys (`get`, `gets`, `getv`, ...)
//! find the keys of the render in progress in a thread-local set by `with_store`: a render is synchronous and
//! runs on one thread, and the guard clears the store even when the render fails.
//!
//! Names and behaviour are confd's (`resource/template/template_funcs.go`): `get` of a missing key is an error (the
//! render fails and the file is left as it was), `gets` returns the matches sorted by key, `base`/`dir` are Go's
//! `path.Base`/`path.Dir`, `replace` is `strings.Replace` with its count (`-1`: all), `split` is `strings.Split`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use gtmpl::{Func, FuncError, Value};

use super::store::Store;

thread_local! {
    static STORE: RefCell<Option<Rc<Store>>> = const { RefCell::new(None) };
}

/// Runs `f` with `store` as the keys the functions read.
pub(super) fn with_store<T>(store: Rc<Store>, f: impl FnOnce() -> T) -> T {
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            STORE.with(|s| *s.borrow_mut() = None);
        }
    }
    STORE.with(|s| *s.borrow_mut() = Some(store));
    let _clear = Clear;
    f()
}

fn store() -> Result<Rc<Store>, FuncError> {
    STORE
        .with(|s| s.borrow().clone())
        .ok_or_else(|| FuncError::Generic("no keys loaded for this render".into()))
}

/// Every function confd's templates may call, beside text/template's own (`index`, `printf`, `len`, ...).
pub(super) const FUNCS: &[(&str, Func)] = &[
    ("get", get as Func),
    ("gets", gets as Func),
    ("getv", getv as Func),
    ("getvs", getvs as Func),
    ("exists", exists as Func),
    ("ls", ls as Func),
    ("lsdir", lsdir as Func),
    ("json", json as Func),
    ("jsonArray", json_array as Func),
    ("base", base as Func),
    ("dir", dir as Func),
    ("split", split as Func),
    ("join", join as Func),
    ("replace", replace as Func),
    ("contains", contains as Func),
    ("toUpper", to_upper as Func),
    ("toLower", to_lower as Func),
    ("trimSuffix", trim_suffix as Func),
    ("getenv", getenv as Func),
    ("atoi", atoi as Func),
    ("add", add as Func),
    ("sub", sub as Func),
    ("mul", mul as Func),
    ("div", div as Func),
    ("mod", modulo as Func),
];

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::ExactlyXArgs(name.into(), n))
    }
}

fn text(name: &str, v: &Value) -> Result<String, FuncError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(FuncError::Generic(format!(
            "{name}: expected a string, got {other}"
        ))),
    }
}

fn int(name: &str, v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| FuncError::Generic(format!("{name}: {n} is not an integer"))),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| FuncError::Generic(format!("{name}: {s:?} is not an integer"))),
        other => Err(FuncError::Generic(format!(
            "{name}: expected an integer, got {other}"
        ))),
    }
}

/// confd's `KVPair`: `.Key` and `.Value`.
fn pair(key: &str, value: &str) -> Value {
    let mut o = HashMap::new();
    o.insert("Key".to_string(), Value::from(key));
    o.insert("Value".to_string(), Value::from(value));
    Value::Object(o)
}

fn get(args: &[Value]) -> Result<Value, FuncError> {
    arity("get", args, 1)?;
    let key = text("get", &args[0])?;
    let s = store()?;
    let value = s
        .get(&key)
        .ok_or_else(|| FuncError::Generic(format!("key does not exist: {key}")))?;
    Ok(pair(&Store::normalize(&key), value))
}

/// The keys matching the pattern in `args` (Go's `path.Match`), sorted, with their values.
fn matching(name: &str, args: &[Value]) -> Result<Vec<(String, String)>, FuncError> {
    arity(name, args, 1)?;
    let pattern = text(name, &args[0])?;
    let s = store()?;
    let found = s
        .matching(&pattern)
        .map_err(|e| FuncError::Generic(format!("{name}: {e}")))?;
    Ok(found
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn gets(args: &[Value]) -> Result<Value, FuncError> {
    let found = matching("gets", args)?;
    Ok(Value::Array(
        found.iter().map(|(k, v)| pair(k, v)).collect(),
    ))
}

fn getv(args: &[Value]) -> Result<Value, FuncError> {
    if args.is_empty() || args.len() > 2 {
        return Err(FuncError::AtLeastXArgs("getv".into(), 1));
    }
    let key = text("getv", &args[0])?;
    let s = store()?;
    match (s.get(&key), args.get(1)) {
        (Some(v), _) => Ok(Value::from(v)),
        (None, Some(default)) => Ok(Value::from(text("getv", default)?)),
        (None, None) => Err(FuncError::Generic(format!("key does not exist: {key}"))),
    }
}

fn getvs(args: &[Value]) -> Result<Value, FuncError> {
    let found = matching("getvs", args)?;
    Ok(Value::Array(
        found.into_iter().map(|(_, v)| Value::from(v)).collect(),
    ))
}

fn exists(args: &[Value]) -> Result<Value, FuncError> {
    arity("exists", args, 1)?;
    Ok(Value::Bool(
        store()?.get(&text("exists", &args[0])?).is_some(),
    ))
}

fn ls(args: &[Value]) -> Result<Value, FuncError> {
    arity("ls", args, 1)?;
    let names = store()?.children(&text("ls", &args[0])?, false);
    Ok(Value::Array(names.into_iter().map(Value::from).collect()))
}

fn lsdir(args: &[Value]) -> Result<Value, FuncError> {
    arity("lsdir", args, 1)?;
    let names = store()?.children(&text("lsdir", &args[0])?, true);
    Ok(Value::Array(names.into_iter().map(Value::from).collect()))
}

/// JSON to a template value: objects become maps, so `$data.conn_url` reads a field.
fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (None, None, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    arity("json", args, 1)?;
    let raw = text("json", &args[0])?;
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&raw)
        .map_err(|e| FuncError::Generic(format!("json: not a JSON object: {e}")))?;
    Ok(from_json(serde_json::Value::Object(parsed)))
}

fn json_array(args: &[Value]) -> Result<Value, FuncError> {
    arity("jsonArray", args, 1)?;
    let raw = text("jsonArray", &args[0])?;
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&raw)
        .map_err(|e| FuncError::Generic(format!("jsonArray: not a JSON array: {e}")))?;
    Ok(from_json(serde_json::Value::Array(parsed)))
}

/// Go's `path.Base`: the last element, trailing slashes removed; `.` for an empty path, `/` for only slashes.
pub(super) fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `path.Dir`: everything but the last element, cleaned; `.` when there is no slash.
pub(super) fn path_dir(p: &str) -> String {
    match p.rfind('/') {
        None => ".".into(),
        Some(0) => "/".into(),
        Some(i) => {
            let d = p[..i].trim_end_matches('/');
            if d.is_empty() {
                "/".into()
            } else {
                d.to_string()
            }
        }
    }
}

fn base(args: &[Value]) -> Result<Value, FuncError> {
    arity("base", args, 1)?;
    Ok(Value::from(path_base(&text("base", &args[0])?)))
}

fn dir(args: &[Value]) -> Result<Value, FuncError> {
    arity("dir", args, 1)?;
    Ok(Value::from(path_dir(&text("dir", &args[0])?)))
}

/// Go's `strings.Split`: an empty separator splits after each character.
fn split(args: &[Value]) -> Result<Value, FuncError> {
    arity("split", args, 2)?;
    let (s, sep) = (text("split", &args[0])?, text("split", &args[1])?);
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::from(c.to_string())).collect()
    } else {
        s.split(sep.as_str()).map(Value::from).collect()
    };
    Ok(Value::Array(parts))
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    arity("join", args, 2)?;
    let sep = text("join", &args[1])?;
    let Value::Array(items) = &args[0] else {
        return Err(FuncError::Generic("join: expected a list".into()));
    };
    let parts = items
        .iter()
        .map(|v| text("join", v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::from(parts.join(&sep)))
}

/// Go's `strings.Replace(s, old, new, n)`: the first `n` matches, all when `n < 0`.
fn replace(args: &[Value]) -> Result<Value, FuncError> {
    arity("replace", args, 4)?;
    let s = text("replace", &args[0])?;
    let (old, new) = (text("replace", &args[1])?, text("replace", &args[2])?);
    let n = int("replace", &args[3])?;
    Ok(Value::from(if n < 0 {
        s.replace(&old, &new)
    } else {
        s.replacen(&old, &new, n as usize)
    }))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    arity("contains", args, 2)?;
    Ok(Value::Bool(
        text("contains", &args[0])?.contains(&text("contains", &args[1])?),
    ))
}

fn to_upper(args: &[Value]) -> Result<Value, FuncError> {
    arity("toUpper", args, 1)?;
    Ok(Value::from(text("toUpper", &args[0])?.to_uppercase()))
}

fn to_lower(args: &[Value]) -> Result<Value, FuncError> {
    arity("toLower", args, 1)?;
    Ok(Value::from(text("toLower", &args[0])?.to_lowercase()))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    arity("trimSuffix", args, 2)?;
    let (s, suffix) = (text("trimSuffix", &args[0])?, text("trimSuffix", &args[1])?);
    Ok(Value::from(
        s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string(),
    ))
}

/// confd's `getenv KEY [DEFAULT]`: the default when the variable is unset or empty.
fn getenv(args: &[Value]) -> Result<Value, FuncError> {
    if args.is_empty() || args.len() > 2 {
        return Err(FuncError::AtLeastXArgs("getenv".into(), 1));
    }
    let name = text("getenv", &args[0])?;
    let value = std::env::var(&name).unwrap_or_default();
    match (value.is_empty(), args.get(1)) {
        (true, Some(default)) => Ok(Value::from(text("getenv", default)?)),
        _ => Ok(Value::from(value)),
    }
}

fn atoi(args: &[Value]) -> Result<Value, FuncError> {
    arity("atoi", args, 1)?;
    Ok(Value::from(int("atoi", &args[0])?))
}

fn arithmetic(
    name: &str,
    args: &[Value],
    op: fn(i64, i64) -> Option<i64>,
) -> Result<Value, FuncError> {
    arity(name, args, 2)?;
    let (a, b) = (int(name, &args[0])?, int(name, &args[1])?);
    op(a, b).map(Value::from).ok_or_else(|| {
        FuncError::Generic(format!("{name}: {a}, {b}: overflow or division by zero"))
    })
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("add", args, i64::checked_add)
}
fn sub(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("sub", args, i64::checked_sub)
}
fn mul(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("mul", args, i64::checked_mul)
}
fn div(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("div", args, i64::checked_div)
}
fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    arithmetic("mod", args, i64::checked_rem)
}

/// The `check_cmd`'s own context: confd renders `{{.src}}` to the staged file.
pub(super) fn src_context(staged: &str) -> Value {
    let mut m = BTreeMap::new();
    m.insert("src".to_string(), Value::from(staged));
    Value::Map(m.into_iter().collect())
}
