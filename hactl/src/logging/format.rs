//! Log lines as Patroni writes them: Python logging's `%(field)s` format strings over `tracing` events, or one JSON
//! object per line. Tools that grep Patroni's logs (`2026-12-01 10:00:00,123 INFO: ...`, the level at column 24)
//! read hactl's the same way; the structured fields `tracing` carries (node, cluster, error…) follow the message in
//! plain lines and are keys of their own in JSON lines.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use chrono::Local;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Patroni's default plain format.
pub const DEFAULT_FORMAT: &str = "%(asctime)s %(levelname)s: %(message)s";

/// The field an event sets to be logged at Patroni's CRITICAL level (`tracing` stops at ERROR):
/// `error!(critical = true, "...")`.
pub const CRITICAL_FIELD: &str = "critical";

/// One piece of a Python format string.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    /// `%(name)-8s`: the field, its minimum width, left-aligned when `-`.
    Field {
        name: String,
        width: usize,
        left: bool,
    },
}

/// A parsed `%(field)s` format string.
#[derive(Debug, Clone, PartialEq)]
pub struct PyFormat(Vec<Piece>);

impl PyFormat {
    /// Parses Python's %-style logging format; what is not a `%(name)…` field or `%%` is kept literally.
    pub fn parse(text: &str) -> PyFormat {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                lit.push('%');
                rest = tail;
                continue;
            }
            let parsed = after.strip_prefix('(').and_then(|a| {
                let close = a.find(')')?;
                let name = &a[..close];
                let spec = &a[close + 1..];
                let flags_end = spec
                    .find(|c: char| !"-#0 +".contains(c))
                    .unwrap_or(spec.len());
                let left = spec[..flags_end].contains('-');
                let digits = &spec[flags_end..];
                let width_end = digits
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(digits.len());
                let width = digits[..width_end].parse().unwrap_or(0);
                let mut conv = &digits[width_end..];
                if let Some(p) = conv.strip_prefix('.') {
                    conv = p.trim_start_matches(|c: char| c.is_ascii_digit());
                }
                let ty = conv
                    .chars()
                    .next()
                    .filter(|c| "sdifrxXeEgGoc".contains(*c))?;
                let used = 1 + close + 1 + (spec.len() - conv.len()) + ty.len_utf8();
                Some((name.to_string(), width, left, used))
            });
            match parsed {
                Some((name, width, left, used)) => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Field { name, width, left });
                    rest = &after[used..];
                }
                None => {
                    lit.push('%');
                    rest = after;
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        PyFormat(pieces)
    }

    /// The field names the format uses, in order (the keys of a JSON line).
    pub fn fields(&self) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|p| match p {
                Piece::Field { name, .. } => Some(name.clone()),
                Piece::Literal(_) => None,
            })
            .collect()
    }

    fn render(&self, record: &Record, out: &mut String) {
        for p in &self.0 {
            match p {
                Piece::Literal(l) => out.push_str(l),
                Piece::Field { name, width, left } => {
                    let v = record.field(name);
                    let pad = width.saturating_sub(v.chars().count());
                    if !left {
                        out.extend(std::iter::repeat(' ').take(pad));
                    }
                    out.push_str(&v);
                    if *left {
                        out.extend(std::iter::repeat(' ').take(pad));
                    }
                }
            }
        }
    }
}

/// One event's values, by Python logging's attribute names.
struct Record {
    asctime: String,
    levelname: &'static str,
    levelno: u8,
    message: String,
    target: String,
    file: String,
    line: u32,
    module: String,
    /// The event's own fields and its spans', in order.
    fields: Vec<(String, String)>,
}

impl Record {
    fn field(&self, name: &str) -> String {
        match name {
            "asctime" => self.asctime.clone(),
            "levelname" => self.levelname.into(),
            "levelno" => self.levelno.to_string(),
            "message" => self.message_with_fields(),
            "name" => self.target.clone(),
            "pathname" => self.file.clone(),
            "filename" => self.file.rsplit('/').next().unwrap_or_default().into(),
            "lineno" => self.line.to_string(),
            "module" | "funcName" => self.module.clone(),
            "process" => std::process::id().to_string(),
            "processName" => "MainProcess".into(),
            "thread" | "threadName" => std::thread::current().name().unwrap_or("thread").into(),
            other => self
                .fields
                .iter()
                .find(|(k, _)| k == other)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        }
    }

    /// The message, then `key=value` for each structured field, as `tracing` writes them.
    fn message_with_fields(&self) -> String {
        let mut m = self.message.clone();
        for (k, v) in &self.fields {
            let _ = write!(m, " {k}={v}");
        }
        m
    }
}

/// Collects an event's message and fields.
#[derive(Default)]
struct Collect {
    message: String,
    fields: Vec<(String, String)>,
    critical: bool,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push((field.name().into(), value.to_string()));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == CRITICAL_FIELD {
            self.critical = value;
        } else {
            self.fields.push((field.name().into(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().into(), format!("{value:?}")));
        }
    }
}

/// The `tracing` event formatter for the `log` section: plain lines in a Python format, or JSON lines.
#[derive(Debug, Clone)]
pub struct PatroniFormat {
    pub format: PyFormat,
    /// JSON lines with these fields (field, written as) when set.
    pub json: Option<Vec<(String, String)>>,
    pub dateformat: Option<String>,
    pub static_fields: BTreeMap<String, String>,
}

impl PatroniFormat {
    fn asctime(&self) -> String {
        let now = Local::now();
        match &self.dateformat {
            Some(f) => now.format(f).to_string(),
            // Python logging's default: 2026-12-01 10:00:00,123
            None => now.format("%Y-%m-%d %H:%M:%S,%3f").to_string(),
        }
    }

    fn line(&self, record: &Record) -> String {
        let Some(fields) = &self.json else {
            let mut out = String::new();
            self.format.render(record, &mut out);
            return out;
        };
        let mut obj = Map::new();
        for (field, name) in fields {
            let v = if field == "message" {
                record.message.clone()
            } else {
                record.field(field)
            };
            obj.insert(name.clone(), Value::String(v));
        }
        for (k, v) in &record.fields {
            obj.entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
        for (k, v) in &self.static_fields {
            obj.insert(k.clone(), Value::String(v.clone()));
        }
        Value::Object(obj).to_string()
    }
}

impl<S, N> FormatEvent<S, N> for PatroniFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut c = Collect::default();
        event.record(&mut c);
        // The spans' fields (node, cluster…), outermost first, each once: the formatter stored them as text.
        let mut fields = Vec::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>() {
                    for pair in split_fields(f.as_str()) {
                        if !fields.iter().any(|(k, _): &(String, String)| *k == pair.0) {
                            fields.push(pair);
                        }
                    }
                }
            }
        }
        fields.retain(|(k, _)| !c.fields.iter().any(|(ek, _)| ek == k));
        fields.extend(c.fields);
        let (levelname, levelno) = match *meta.level() {
            _ if c.critical => ("CRITICAL", 50),
            Level::ERROR => ("ERROR", 40),
            Level::WARN => ("WARNING", 30),
            Level::INFO => ("INFO", 20),
            Level::DEBUG | Level::TRACE => ("DEBUG", 10),
        };
        let record = Record {
            asctime: self.asctime(),
            levelname,
            levelno,
            message: c.message,
            target: meta.target().to_string(),
            file: meta.file().unwrap_or_default().to_string(),
            line: meta.line().unwrap_or(0),
            module: meta.module_path().unwrap_or_default().to_string(),
            fields,
        };
        writeln!(writer, "{}", self.line(&record))
    }
}

/// `node=n1 cluster=batman` (the default field formatter's output) as pairs; a value with spaces stays whole
/// when it was quoted.
fn split_fields(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_string(), q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            asctime: "2026-12-01 10:00:00,123".into(),
            levelname: "INFO",
            levelno: 20,
            message: "no action. I am (node1), the leader with the lock".into(),
            target: "ha_core::driver".into(),
            file: "ha-core/src/driver/cycle.rs".into(),
            line: 42,
            module: "ha_core::driver::cycle".into(),
            fields: vec![],
        }
    }

    fn render(format: &str, r: &Record) -> String {
        let mut out = String::new();
        PyFormat::parse(format).render(r, &mut out);
        out
    }

    #[test]
    fn patronis_default_format_puts_the_level_at_column_24() {
        let line = render(DEFAULT_FORMAT, &record());
        assert_eq!(
            line,
            "2026-12-01 10:00:00,123 INFO: no action. I am (node1), the leader with the lock"
        );
        assert_eq!(&line[24..28], "INFO");
    }

    #[test]
    fn the_acceptance_suites_format_with_path_line_and_function() {
        let line = render(
            "%(asctime)s %(levelname)s [%(pathname)s:%(lineno)d - %(funcName)s]: %(message)s",
            &record(),
        );
        assert_eq!(
            line,
            "2026-12-01 10:00:00,123 INFO [ha-core/src/driver/cycle.rs:42 - ha_core::driver::cycle]: \
             no action. I am (node1), the leader with the lock"
        );
    }

    #[test]
    fn widths_percent_signs_and_unknown_conversions() {
        let mut r = record();
        r.levelname = "WARNING";
        r.message = "50% done".into();
        assert_eq!(
            render("[%(levelname)-8s] 100%% %(message)s", &r),
            "[WARNING ] 100% 50% done"
        );
        assert_eq!(render("%(levelno)3d|%(nosuch)s|%(", &r), " 20||%(");
    }

    #[test]
    fn structured_fields_follow_the_message_and_json_keeps_them_as_keys() {
        let mut r = record();
        r.fields = vec![
            ("node".into(), "node1".into()),
            ("error".into(), "timeout".into()),
        ];
        assert!(render(DEFAULT_FORMAT, &r).ends_with("the lock node=node1 error=timeout"));
        let f = PatroniFormat {
            format: PyFormat::parse(DEFAULT_FORMAT),
            json: Some(vec![
                ("asctime".into(), "time".into()),
                ("levelname".into(), "level".into()),
                ("message".into(), "message".into()),
            ]),
            dateformat: None,
            static_fields: BTreeMap::from([("app".into(), "hactl".into())]),
        };
        let v: Value = serde_json::from_str(&f.line(&r)).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["time"], "2026-12-01 10:00:00,123");
        assert_eq!(
            v["message"],
            "no action. I am (node1), the leader with the lock"
        );
        assert_eq!(v["node"], "node1");
        assert_eq!(v["error"], "timeout");
        assert_eq!(v["app"], "hactl");
    }

    #[test]
    fn span_fields_as_the_default_formatter_writes_them() {
        assert_eq!(
            split_fields(r#"node=n1 cluster="my cluster" x=1"#),
            vec![
                ("node".into(), "n1".into()),
                ("cluster".into(), "my cluster".into()),
                ("x".into(), "1".into())
            ]
        );
    }
}
