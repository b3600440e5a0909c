//! patronictl's table look (PrettyTable with the cluster name in the top border), so DBAs feel at home.

/// One cell: its text, and whether it is a number (right-aligned).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub right: bool,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell {
            text: s.into(),
            right: false,
        }
    }
    pub fn num(s: impl ToString) -> Cell {
        Cell {
            text: s.to_string(),
            right: true,
        }
    }
    pub fn empty() -> Cell {
        Cell::text("")
    }
}

/// Renders `rows` under `headers`; `title` (e.g. `Cluster: batman (7268...)`) is written into the top border as
/// patronictl does, widening the last column if it does not fit.
pub fn render(title: Option<&str>, headers: &[&str], rows: &[Vec<Cell>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.text.chars().count());
            }
        }
    }
    let border_len = |w: &[usize]| w.iter().map(|x| x + 3).sum::<usize>() + 1;
    if let Some(t) = title {
        // "+ " + title + " " + at least one '-' + "+"
        let need = t.chars().count() + 5;
        let have = border_len(&widths);
        if need > have {
            if let Some(last) = widths.last_mut() {
                *last += need - have;
            }
        }
    }
    let sep: String = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s
    };
    let top = match title {
        None => sep.clone(),
        Some(t) => {
            let prefix = format!("+ {t} ");
            let rest: String = sep.chars().skip(prefix.chars().count()).collect();
            format!("{prefix}{rest}")
        }
    };
    let line = |cells: Vec<(String, bool)>| -> String {
        let mut s = String::from("|");
        for (i, (text, right)) in cells.into_iter().enumerate() {
            let w = widths[i];
            let pad = w.saturating_sub(text.chars().count());
            if right {
                s.push_str(&format!(" {}{} |", " ".repeat(pad), text));
            } else {
                s.push_str(&format!(" {}{} |", text, " ".repeat(pad)));
            }
        }
        s
    };
    let mut out = String::new();
    out.push_str(&top);
    out.push('\n');
    out.push_str(&line(
        headers.iter().map(|h| (h.to_string(), false)).collect(),
    ));
    out.push('\n');
    out.push_str(&sep);
    out.push('\n');
    for row in rows {
        let mut cells: Vec<(String, bool)> =
            row.iter().map(|c| (c.text.clone(), c.right)).collect();
        cells.resize(widths.len(), (String::new(), false));
        out.push_str(&line(cells));
        out.push('\n');
    }
    out.push_str(&sep);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_like_patronictl() {
        let t = render(
            Some("Cluster: batman (7300000000000000001)"),
            &["Member", "Host", "Role", "State", "TL"],
            &[
                vec![
                    Cell::text("node1"),
                    Cell::text("127.0.0.1"),
                    Cell::text("Leader"),
                    Cell::text("running"),
                    Cell::num(1),
                ],
                vec![
                    Cell::text("node2"),
                    Cell::text("127.0.0.1:5433"),
                    Cell::text("Replica"),
                    Cell::text("streaming"),
                    Cell::num(1),
                ],
            ],
        );
        let expected = "\
+ Cluster: batman (7300000000000000001) --------+----+
| Member | Host           | Role    | State     | TL |
+--------+----------------+---------+-----------+----+
| node1  | 127.0.0.1      | Leader  | running   |  1 |
| node2  | 127.0.0.1:5433 | Replica | streaming |  1 |
+--------+----------------+---------+-----------+----+
";
        assert_eq!(t, expected);
    }
}
