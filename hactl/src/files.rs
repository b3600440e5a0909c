//! Small files the daemon keeps beside PostgreSQL's: written whole through a temporary file and a rename, fsynced,
//! so a crash leaves the old content or the new, never half of one.

use std::io::Write;
use std::path::Path;

/// Writes `body` to `path` atomically.
pub fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
