//! `edit-config`: change the cluster-wide configuration (the DCS `config` key) from `--set`, `--pg`, `--apply`,
//! `--replace` or `$EDITOR`, show the diff, and write it with compare-and-set so that a concurrent edit is refused,
//! not overwritten.

use std::io::BufRead;

use ha_core::dcs::DcsError;
use ha_core::model::GlobalConfig;
use serde_json::{json, Value};

use super::{parse_yaml_value, to_yaml, CliError, Ctl};
use crate::json::merge_patch;

impl Ctl<'_> {
    pub(super) async fn edit_config(
        &mut self,
        set: &[String],
        pg: &[String],
        apply: Option<&std::path::Path>,
        replace: Option<&std::path::Path>,
        quiet: bool,
        force: bool,
    ) -> Result<(), CliError> {
        let cluster = self.load().await?;
        let cfg = cluster.config.ok_or_else(|| {
            CliError::Failed(format!(
                "The config key does not exist in the cluster {}",
                self.scope
            ))
        })?;
        let before = serde_json::to_value(&cfg.value).unwrap_or(json!({}));
        let before_yaml = to_yaml(&before);
        let mut after = before.clone();
        let read_yaml = |p: &std::path::Path, input: &mut dyn BufRead| -> Result<Value, CliError> {
            let text = if p == std::path::Path::new("-") {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut ReadAdapter(input), &mut s)?;
                s
            } else {
                std::fs::read_to_string(p)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", p.display())))?
            };
            parse_yaml_value(&text).map_err(CliError::Usage)
        };
        if let Some(p) = replace {
            after = read_yaml(p, self.input)?;
        }
        if let Some(p) = apply {
            let patch = read_yaml(p, self.input)?;
            if let Value::Object(m) = patch {
                merge_patch(&mut after, &m);
            }
        }
        for kv in set {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--set {kv}: expected key=value")))?;
            let path: Vec<&str> = k.split('.').collect();
            set_path(
                &mut after,
                &path,
                parse_yaml_value(v).unwrap_or(Value::String(v.into())),
            );
        }
        for kv in pg {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--pg {kv}: expected name=value")))?;
            set_path(
                &mut after,
                &["postgresql", "parameters", k],
                parse_yaml_value(v).unwrap_or(Value::String(v.into())),
            );
        }
        if set.is_empty() && pg.is_empty() && apply.is_none() && replace.is_none() {
            after = self.run_editor(&before_yaml)?;
        }
        let after_yaml = to_yaml(&after);
        if after_yaml == before_yaml {
            return self.say("Not changed");
        }
        if !quiet {
            let diff = similar::TextDiff::from_lines(&before_yaml, &after_yaml);
            let text = diff.unified_diff().header("", "").to_string();
            write!(self.out, "{text}")?;
            self.say("")?;
        }
        if !force {
            self.confirm("Apply these changes?")?;
        }
        let new_cfg: GlobalConfig = serde_json::from_value(after)
            .map_err(|e| CliError::Failed(format!("invalid configuration: {e}")))?;
        for w in new_cfg.timing_adjustments() {
            self.say(&format!("Warning: {w}"))?;
        }
        match self.dcs.set_config(&new_cfg, Some(cfg.version)).await {
            Ok(()) => self.say("Configuration changed"),
            Err(DcsError::Conflict(_)) => Err(CliError::Failed(
                "The config key has been modified since the editing started".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    fn run_editor(&mut self, yaml: &str) -> Result<Value, CliError> {
        let editor = self.editor.clone().ok_or_else(|| {
            CliError::Usage("no $EDITOR set: use --set, --pg, --apply or --replace".into())
        })?;
        let path =
            std::env::temp_dir().join(format!("hactl-edit-config-{}.yaml", std::process::id()));
        std::fs::write(&path, yaml)?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
            .map_err(|e| CliError::Failed(format!("cannot run the editor {editor}: {e}")))?;
        let text = std::fs::read_to_string(&path)?;
        let _ = std::fs::remove_file(&path);
        if !status.success() {
            return Err(CliError::Failed(format!(
                "the editor {editor} exited with {status}"
            )));
        }
        parse_yaml_value(&text).map_err(CliError::Usage)
    }
}

fn set_path(root: &mut Value, path: &[&str], value: Value) {
    if !root.is_object() {
        *root = json!({});
    }
    let obj = root.as_object_mut().expect("object");
    match path {
        [] => {}
        [last] => {
            if value.is_null() {
                obj.remove(*last);
            } else {
                obj.insert(last.to_string(), value);
            }
        }
        [first, rest @ ..] => {
            let child = obj.entry(first.to_string()).or_insert_with(|| json!({}));
            set_path(child, rest, value);
        }
    }
}

/// `Read` over a `BufRead` trait object.
struct ReadAdapter<'a>(&'a mut dyn BufRead);
impl std::io::Read for ReadAdapter<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}
