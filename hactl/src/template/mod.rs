//! `hactl template`: confd built in. It reads the cluster from the DCS, renders confd template resources
//! (`<confdir>/conf.d/*.toml` naming templates in `<confdir>/templates/`) and, when a rendered file changes, checks
//! it, writes it atomically and runs the reload command: HAProxy's config follows the members as nodes come and go.
//!
//! The template language is Go's text/template (the gtmpl crate) with confd's functions ([`funcs`]), over the keys
//! confd's `-prefix=/<namespace>/<scope>` shows (`/leader`, `/members/<name>`, ...; [`store`]), so templates and
//! `conf.d` files written for confd and Patroni work unchanged. One process serves every resource; it reads the
//! DCS once per interval (the cluster's `loop_wait` unless `--interval` says otherwise), the cost of one
//! `hactl list`.

pub mod funcs;
pub mod resource;
pub mod store;

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ha_core::dcs::DcsClient;
use ha_core::model::KeyPath;
use tracing::{info, warn};

pub use resource::{render_text, Outcome, Resource};
pub use store::Store;

/// What can go wrong with a resource. Each is logged with the resource's name and leaves its `dest` untouched.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{}: {reason}", file.display())]
    Resource { file: PathBuf, reason: String },
    #[error("{template}: {reason}")]
    Render { template: String, reason: String },
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("check_cmd `{cmd}` failed ({reason}); the file was not replaced")]
    Check { cmd: String, reason: String },
    #[error("reload_cmd `{cmd}` failed ({reason})")]
    Reload { cmd: String, reason: String },
    #[error("no template resource in {}", dir.display())]
    NoResources { dir: PathBuf },
    #[error("reading the cluster: {0}")]
    Dcs(#[from] ha_core::dcs::DcsError),
}

/// `hactl template`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    /// confd's `-confdir`: holds `conf.d/` and `templates/`.
    pub confdir: PathBuf,
    /// Render once and exit (confd's `-onetime`): non-zero when a resource failed.
    pub onetime: bool,
    /// Between two reads of the DCS; `None`: the cluster's `loop_wait`.
    pub interval: Option<Duration>,
    /// The interval while the DCS holds no configuration yet (a cluster bootstrapping): the config file's
    /// `bootstrap.dcs.loop_wait`, which the first leader is about to publish.
    pub bootstrap_interval: Duration,
}

/// Every `*.toml` in `<confdir>/conf.d`, sorted by file name, with the warnings their keys gave.
pub fn load_resources(confdir: &Path) -> Result<(Vec<Resource>, Vec<String>), TemplateError> {
    let dir = confdir.join("conf.d");
    let entries = std::fs::read_dir(&dir).map_err(|error| TemplateError::Io {
        path: dir.clone(),
        error,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(TemplateError::NoResources { dir });
    }
    let templates = confdir.join("templates");
    let mut resources = Vec::new();
    let mut warnings = Vec::new();
    for f in files {
        let (r, w) = Resource::load(&f, &templates)?;
        resources.push(r);
        warnings.extend(w);
    }
    Ok((resources, warnings))
}

/// A resource's `prefix`, if it sets one, must be the cluster this process reads: a template written for another
/// scope would otherwise render this cluster's members into that cluster's HAProxy.
fn check_prefix(r: &Resource, cluster: &KeyPath) -> Result<(), TemplateError> {
    let Some(p) = &r.prefix else { return Ok(()) };
    if Store::normalize(p) == Store::normalize(cluster.prefix()) {
        Ok(())
    } else {
        Err(TemplateError::Resource {
            file: r.file.clone(),
            reason: format!(
                "prefix {p:?} is not this cluster's {:?} (set scope and namespace in the config instead)",
                cluster.prefix().trim_end_matches('/')
            ),
        })
    }
}

/// Runs until stopped (or once, with `onetime`). DCS errors are logged and retried at the next interval; the files
/// keep their last good content meanwhile.
pub async fn run(
    dcs: Arc<dyn DcsClient>,
    cluster: KeyPath,
    opts: Options,
) -> Result<(), TemplateError> {
    let (resources, warnings) = load_resources(&opts.confdir)?;
    for w in &warnings {
        warn!("{w}");
    }
    for r in &resources {
        check_prefix(r, &cluster)?;
    }
    info!(
        resources = resources.len(),
        confdir = %opts.confdir.display(),
        "rendering templates"
    );
    loop {
        let mut failed = 0;
        let mut interval = opts.interval;
        match dcs.load().await {
            Ok(snapshot) => {
                interval = interval.or_else(|| {
                    Some(match &snapshot.config {
                        Some(c) => Duration::from_millis(c.value.timing().loop_wait_ms),
                        None => opts.bootstrap_interval,
                    })
                });
                for r in &resources {
                    let store = Rc::new(Store::from_cluster(&snapshot, &r.keys));
                    match r.apply(store) {
                        Ok(Outcome::Written) => {
                            info!(dest = %r.dest.display(), "wrote {}", r.dest.display())
                        }
                        Ok(Outcome::Unchanged) => {}
                        Err(e) => {
                            failed += 1;
                            warn!(resource = %r.file.display(), "{e}");
                        }
                    }
                }
            }
            Err(e) => {
                failed += 1;
                warn!("{}", TemplateError::Dcs(e));
            }
        }
        if opts.onetime {
            return if failed == 0 {
                Ok(())
            } else {
                Err(TemplateError::Render {
                    template: opts.confdir.display().to_string(),
                    reason: format!("{failed} resource(s) failed"),
                })
            };
        }
        tokio::time::sleep(interval.unwrap_or(opts.bootstrap_interval)).await;
    }
}

#[cfg(test)]
mod tests;
