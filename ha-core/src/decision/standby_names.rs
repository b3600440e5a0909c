//! `synchronous_standby_names`, written as Patroni writes it and read back as PostgreSQL parses it.
//!
//! The leader reads the value in force each loop (a half-done change, or one made by a restarted daemon, is where
//! the next step starts from), so the parser takes PostgreSQL's whole grammar: `FIRST n (...)`, `ANY n (...)`,
//! `n (...)`, a bare list, quoted or plain names, `*`.

/// Patroni 4.1's placeholder for "no synchronous standby, and commits must wait" (no standby has this name).
pub const STRICT_PLACEHOLDER: &str = "__patroni_strict_sync_replica_placeholder__";

/// How the standbys listed acknowledge a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// Empty: commits do not wait.
    Off,
    /// `FIRST n (...)` (or `n (...)`, or a bare list): the first `n` connected in list order.
    Priority,
    /// `ANY n (...)`: any `n` of the list.
    Quorum,
}

/// A parsed `synchronous_standby_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyNames {
    /// How the listed standbys acknowledge a commit.
    pub kind: SyncKind,
    /// How many of them a commit waits for (`n`; 1 for a bare list, 0 when off).
    pub num: usize,
    /// The names listed, the strict placeholder left out.
    pub names: Vec<String>,
    /// `*` is listed (any standby).
    pub has_star: bool,
}

impl StandbyNames {
    /// Empty: commits do not wait.
    pub fn off() -> StandbyNames {
        StandbyNames {
            kind: SyncKind::Off,
            num: 0,
            names: Vec::new(),
            has_star: false,
        }
    }
}

/// `synchronous_standby_names` for `names` in `FIRST` form as Patroni writes it: `"a"`, `2 ("a","b")`, or the
/// strict placeholder when there is no name and commits must wait.
pub fn standby_names(names: &[String], strict: bool) -> String {
    let mut quoted: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
    quoted.sort();
    match quoted.len() {
        0 if strict => STRICT_PLACEHOLDER.to_string(),
        0 => String::new(),
        1 => quoted.remove(0),
        n => format!("{n} ({})", quoted.join(",")),
    }
}

/// `synchronous_standby_names` in `ANY` form (quorum commit): `ANY num ("a","b")`; the placeholder when `num` ≥ 1
/// and there is no name (commits must wait); empty when `num` is 0 (PostgreSQL refuses `ANY 0`, and keeps its
/// previous value, where Patroni writes it).
pub fn any_names<'a>(num: usize, names: impl IntoIterator<Item = &'a String>) -> String {
    if num == 0 {
        return String::new();
    }
    let mut quoted: Vec<String> = names.into_iter().map(|n| quote_ident(n)).collect();
    quoted.sort();
    if quoted.is_empty() {
        quoted.push(STRICT_PLACEHOLDER.to_string());
    }
    format!("ANY {num} ({})", quoted.join(","))
}

/// PostgreSQL's `quote_ident`, as Patroni applies it to every name: always in double quotes, `"` doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Num(usize),
    Star,
    Comma,
    Open,
    Close,
}

fn tokens(value: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            ',' | '(' | ')' | '*' => {
                chars.next();
                out.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Star,
                });
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            s.push('"');
                        }
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err(format!("unterminated quoted name in {value:?}")),
                    }
                }
                out.push(Token::Quoted(s));
            }
            c if c.is_ascii_digit() => {
                let mut s = String::new();
                while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    s.push(d);
                    chars.next();
                }
                out.push(Token::Num(s.parse().map_err(|e| format!("{s}: {e}"))?));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut s = String::new();
                while let Some(&d) = chars
                    .peek()
                    .filter(|d| d.is_alphanumeric() || **d == '_' || **d == '$')
                {
                    s.push(d);
                    chars.next();
                }
                out.push(Token::Word(s));
            }
            other => return Err(format!("unexpected {other:?} in {value:?}")),
        }
    }
    Ok(out)
}

/// Parses `value` as PostgreSQL does (`Err` with why when it cannot).
pub fn parse(value: &str) -> Result<StandbyNames, String> {
    let toks = tokens(value)?;
    if toks.is_empty() {
        return Ok(StandbyNames::off());
    }
    let word = |t: &Token, w: &str| matches!(t, Token::Word(s) if s.eq_ignore_ascii_case(w));
    let grouped = matches!(toks.last(), Some(Token::Close));
    let (kind, num, list) = match toks.as_slice() {
        [k, Token::Num(n), Token::Open, rest @ .., Token::Close] if grouped && word(k, "any") => {
            (SyncKind::Quorum, *n, rest)
        }
        [k, Token::Num(n), Token::Open, rest @ .., Token::Close] if grouped && word(k, "first") => {
            (SyncKind::Priority, *n, rest)
        }
        [Token::Num(n), Token::Open, rest @ .., Token::Close] if grouped => {
            (SyncKind::Priority, *n, rest)
        }
        all => (SyncKind::Priority, 1, all),
    };
    let mut names = Vec::new();
    let mut has_star = false;
    for (i, t) in list.iter().enumerate() {
        if i % 2 == 1 {
            if *t != Token::Comma || i + 1 == list.len() {
                return Err(format!("unparsable synchronous_standby_names {value:?}"));
            }
            continue;
        }
        match t {
            Token::Word(s) | Token::Quoted(s) => names.push(s.clone()),
            Token::Star => {
                has_star = true;
                names.push("*".into());
            }
            _ => return Err(format!("unparsable synchronous_standby_names {value:?}")),
        }
    }
    if names.is_empty() {
        return Err(format!("unparsable synchronous_standby_names {value:?}"));
    }
    names.retain(|n| n != STRICT_PLACEHOLDER);
    Ok(StandbyNames {
        kind,
        num,
        names,
        has_star,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn written_as_patroni_writes_it() {
        assert_eq!(standby_names(&n(&[]), false), "");
        assert_eq!(standby_names(&n(&[]), true), STRICT_PLACEHOLDER);
        assert_eq!(standby_names(&n(&["postgres-1"]), true), "\"postgres-1\"");
        assert_eq!(
            standby_names(&n(&["postgres-2", "postgres-1"]), false),
            "2 (\"postgres-1\",\"postgres-2\")"
        );
        assert_eq!(any_names(0, &n(&[])), "");
        assert_eq!(
            any_names(1, &n(&[])),
            format!("ANY 1 ({STRICT_PLACEHOLDER})")
        );
        assert_eq!(
            any_names(1, &n(&["postgres-2", "postgres-0"])),
            "ANY 1 (\"postgres-0\",\"postgres-2\")"
        );
    }

    #[test]
    fn read_back_as_postgresql_parses_it() {
        assert_eq!(parse("").unwrap().kind, SyncKind::Off);
        let first = parse("FiRsT").unwrap();
        assert_eq!(
            (first.kind, first.num, first.names),
            (SyncKind::Priority, 1, n(&["FiRsT"]))
        );
        let bare = parse(" a , b ").unwrap();
        assert_eq!((bare.num, bare.names), (1, n(&["a", "b"])));
        let any = parse("ANY 4(\"a\",*,b)").unwrap();
        assert_eq!(
            (any.kind, any.num, any.has_star),
            (SyncKind::Quorum, 4, true)
        );
        let placeholder = parse(&format!("ANY 1({STRICT_PLACEHOLDER})")).unwrap();
        assert!(placeholder.names.is_empty());
        assert_eq!(parse("2 (\"x\"\"y\", z)").unwrap().names, n(&["x\"y", "z"]));
        for bad in [
            "1",
            "a,",
            "ANY 4(\"a\" b,\"c c\")",
            "FIRST 4(\"a\",)",
            "2 (,)",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }
}
