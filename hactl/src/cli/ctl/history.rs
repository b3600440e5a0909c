//! `history`: the timeline history (failovers and switchovers) from the DCS `history` key.

use serde_json::{json, Value};

use super::{to_yaml, CliError, Ctl};
use crate::cli::table::{render, Cell};
use crate::cli::OutputFormat;

impl Ctl<'_> {
    pub(super) async fn history(&mut self) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let lines = cluster.history.map(|h| h.value).unwrap_or_default();
        match self.format {
            OutputFormat::Json | OutputFormat::Yaml => {
                let rows: Vec<Value> = lines
                    .iter()
                    .map(|e| {
                        json!({
                            "TL": e.0.first(), "LSN": e.0.get(1), "Reason": e.0.get(2),
                            "Timestamp": e.0.get(3), "New Leader": e.0.get(4),
                        })
                    })
                    .collect();
                let s = if self.format == OutputFormat::Json {
                    serde_json::to_string(&rows).unwrap_or_default() + "\n"
                } else {
                    to_yaml(&Value::Array(rows))
                };
                write!(self.out, "{s}")?;
            }
            OutputFormat::Tsv => {
                let rows: Vec<Vec<Value>> = lines
                    .iter()
                    .map(|e| {
                        (0..5)
                            .map(|i| e.0.get(i).cloned().unwrap_or(json!("")))
                            .collect()
                    })
                    .collect();
                let text = super::list::tsv(
                    &["TL", "LSN", "Reason", "Timestamp", "New Leader"],
                    &rows,
                    "\t",
                );
                write!(self.out, "{text}")?;
            }
            OutputFormat::Pretty => {
                let rows: Vec<Vec<Cell>> = lines
                    .iter()
                    .map(|e| {
                        let s =
                            |i: usize| e.0.get(i).and_then(Value::as_str).unwrap_or("").to_string();
                        vec![
                            Cell::num(e.0.first().map(|v| v.to_string()).unwrap_or_default()),
                            Cell::num(e.0.get(1).map(|v| v.to_string()).unwrap_or_default()),
                            Cell::text(s(2)),
                            Cell::text(s(3)),
                            Cell::text(s(4)),
                        ]
                    })
                    .collect();
                let t = render(
                    None,
                    &["TL", "LSN", "Reason", "Timestamp", "New Leader"],
                    &rows,
                );
                write!(self.out, "{t}")?;
            }
        }
        Ok(())
    }
}
