//! One confd template resource (`conf.d/*.toml`): what to render, where to, and what to run around the write.
//!
//! The flow is confd's: render to a staged file beside `dest`; when it differs from `dest` (content or mode), run
//! `check_cmd` on the staged file (`{{.src}}` names it), and only if that passes rename it over `dest` and run
//! `reload_cmd`. A failed render or check leaves `dest` as it was, so HAProxy keeps its last good configuration.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use gtmpl::{Context, Template};
use serde::Deserialize;

use super::funcs::{self, with_store};
use super::store::Store;
use super::TemplateError;

/// A resource as read from its TOML file.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The TOML file it came from (for messages).
    pub file: PathBuf,
    /// The template, resolved against `<confdir>/templates`.
    pub src: PathBuf,
    /// The file it renders to.
    pub dest: PathBuf,
    /// The key prefixes the template may read (`/` for all).
    pub keys: Vec<String>,
    /// The file mode of `dest` (octal in the TOML, e.g. `"0644"`); `None`: keep `dest`'s, or 0644 for a new file.
    pub mode: Option<u32>,
    /// Owner and group ids for `dest` (`owner`/`uid`, `gid`); `None`: the process's.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Run on the staged file before it replaces `dest`; failure keeps `dest`.
    pub check_cmd: Option<String>,
    /// Run after `dest` changed.
    pub reload_cmd: Option<String>,
    /// confd's `prefix`, when the TOML sets one: it must be the cluster's own.
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
struct File {
    template: Raw,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
struct Raw {
    src: String,
    dest: String,
    #[serde(default)]
    keys: Vec<String>,
    mode: Option<String>,
    owner: Option<String>,
    uid: Option<u32>,
    gid: Option<u32>,
    check_cmd: Option<String>,
    reload_cmd: Option<String>,
    prefix: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

/// What [`Resource::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The rendered text is what `dest` holds.
    Unchanged,
    /// `dest` was replaced (and `reload_cmd` run).
    Written,
}

impl Resource {
    /// Reads `file`; `templates` is where `src` is looked up. Keys confd knows but hactl does not act on are
    /// returned as warnings naming them.
    pub fn load(file: &Path, templates: &Path) -> Result<(Resource, Vec<String>), TemplateError> {
        let bad = |reason: String| TemplateError::Resource {
            file: file.to_path_buf(),
            reason,
        };
        let text = fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
        let parsed: File = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let raw = parsed.template;
        let mut warnings: Vec<String> = parsed
            .other
            .keys()
            .chain(raw.other.keys())
            .map(|k| {
                format!(
                    "{}: `{k}` is not a confd template key; ignored",
                    file.display()
                )
            })
            .collect();
        let mode = raw
            .mode
            .as_deref()
            .map(|m| u32::from_str_radix(m.trim_start_matches("0o"), 8))
            .transpose()
            .map_err(|_| bad(format!("mode {:?} is not an octal file mode", raw.mode)))?;
        let uid = match (&raw.owner, raw.uid) {
            (_, Some(uid)) => Some(uid),
            (Some(name), None) => {
                Some(uid_of(name).ok_or_else(|| bad(format!("owner {name:?}: no such user")))?)
            }
            (None, None) => None,
        };
        if raw.keys.is_empty() {
            warnings.push(format!(
                "{}: `keys` is empty: the template sees no key",
                file.display()
            ));
        }
        Ok((
            Resource {
                file: file.to_path_buf(),
                src: templates.join(&raw.src),
                dest: PathBuf::from(raw.dest),
                keys: raw.keys,
                mode,
                uid,
                gid: raw.gid,
                check_cmd: raw.check_cmd,
                reload_cmd: raw.reload_cmd,
                prefix: raw.prefix,
            },
            warnings,
        ))
    }

    /// Renders the template over `store`.
    pub fn render(&self, store: Rc<Store>) -> Result<String, TemplateError> {
        let text = fs::read_to_string(&self.src).map_err(|e| TemplateError::Io {
            path: self.src.clone(),
            error: e,
        })?;
        render_text(&self.src.display().to_string(), &text, store)
    }

    /// Renders and, when the result differs from `dest`, checks, writes and reloads.
    pub fn apply(&self, store: Rc<Store>) -> Result<Outcome, TemplateError> {
        let rendered = self.render(store)?;
        let current = fs::read(&self.dest).ok();
        let current_mode = fs::metadata(&self.dest)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777);
        let mode = self.mode.or(current_mode).unwrap_or(0o644);
        if current.as_deref() == Some(rendered.as_bytes()) && current_mode == Some(mode) {
            return Ok(Outcome::Unchanged);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| TemplateError::Io { path, error }
        };
        let name = self
            .dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dest".into());
        let staged = self
            .dest
            .with_file_name(format!(".{name}.hactl-{}", std::process::id()));
        let _staged = Staged(staged.clone());
        fs::write(&staged, rendered.as_bytes()).map_err(io(&staged))?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(mode)).map_err(io(&staged))?;
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::chown(&staged, self.uid, self.gid).map_err(io(&staged))?;
        }
        if let Some(check) = &self.check_cmd {
            let cmd = gtmpl::template(check, funcs::src_context(&staged.display().to_string()))
                .map_err(|e| TemplateError::Render {
                    template: format!("{}: check_cmd", self.file.display()),
                    reason: e.to_string(),
                })?;
            run_shell(&cmd).map_err(|reason| TemplateError::Check { cmd, reason })?;
        }
        fs::rename(&staged, &self.dest).map_err(io(&self.dest))?;
        if let Some(reload) = &self.reload_cmd {
            run_shell(reload).map_err(|reason| TemplateError::Reload {
                cmd: reload.clone(),
                reason,
            })?;
        }
        Ok(Outcome::Written)
    }
}

/// Removes a staged file that did not replace `dest` (a failed check, an error on the way).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Renders `text` (named `name` in errors) with confd's functions over `store`.
pub fn render_text(name: &str, text: &str, store: Rc<Store>) -> Result<String, TemplateError> {
    let err = |reason: String| TemplateError::Render {
        template: name.to_string(),
        reason,
    };
    let mut tmpl = Template::default();
    tmpl.add_funcs(funcs::FUNCS);
    tmpl.parse(text).map_err(|e| err(e.to_string()))?;
    with_store(store, || {
        tmpl.render(&Context::empty()).map_err(|e| e.to_string())
    })
    .map_err(err)
}

/// `sh -c CMD`, as confd runs its commands; the error carries the exit status and stderr.
fn run_shell(cmd: &str) -> Result<(), String> {
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The uid of user `name` (the TOML's `owner`).
fn uid_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: getpwnam reads a NUL-terminated name and returns a pointer into static storage or NULL; the uid is
    // copied out at once. Resources are loaded once, before any other thread could call getpwnam.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    // SAFETY: checked non-NULL; pw_uid is a plain field of the returned record.
    (!pw.is_null()).then(|| unsafe { (*pw).pw_uid })
}
