//! Prints the end-to-end suite's figures (`target/tmp/e2e-results.jsonl`, one JSON object per scenario, written by
//! `hactl/tests/e2e/`) as one table. `scripts/test.sh` runs it after the tests.
//!
//! `cargo run -p hactl-examples --bin e2e_table -- [PATH]`

use std::collections::BTreeMap;

use serde_json::Value;

/// The columns every scenario may have, in order; other figures go into the last column.
const COLUMNS: [(&str, &str); 5] = [
    ("time_to_new_primary_s", "new primary"),
    ("write_gap_s", "write gap"),
    ("rejoin_s", "rejoin"),
    ("rows_acked", "rows acked"),
    ("rows_lost", "rows lost"),
];

fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or_default()),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/tmp/e2e-results.jsonl".into());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("no e2e figures at {path}: {e}");
            return;
        }
    };
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            eprintln!("skipping a line that is not JSON: {line}");
            continue;
        };
        let name = v["scenario"].as_str().unwrap_or("?").to_string();
        let Some(f) = v["figures"].as_object() else {
            continue;
        };
        let timing = format!(
            "{}/{}",
            f.get("ttl_s").map(cell).unwrap_or_default(),
            f.get("loop_wait_s").map(cell).unwrap_or_default()
        );
        let mut row = vec![name.clone(), timing];
        for (key, _) in COLUMNS {
            row.push(f.get(key).map(cell).unwrap_or_else(|| "-".into()));
        }
        let known: Vec<&str> = COLUMNS
            .iter()
            .map(|(k, _)| *k)
            .chain(["ttl_s", "loop_wait_s"])
            .collect();
        let other: Vec<String> = f
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| format!("{}={}", k.trim_end_matches("_s"), cell(v)))
            .collect();
        row.push(other.join(" "));
        rows.insert(name, row);
    }
    let header: Vec<String> = ["scenario", "ttl/loop_wait"]
        .into_iter()
        .chain(COLUMNS.iter().map(|(_, h)| *h))
        .chain(["other (seconds unless a count)"])
        .map(String::from)
        .collect();
    let all: Vec<&Vec<String>> = std::iter::once(&header).chain(rows.values()).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    println!("\nEnd-to-end figures (seconds; write gap = longest gap between acknowledged writes through HAProxy):");
    for (n, r) in all.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
        if n == 0 {
            let width = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            println!("{}", "-".repeat(width.min(120)));
        }
    }
}
