//! `log.dir`: `patroni.log` in that directory, rotated by size like Python's `RotatingFileHandler` (the file is
//! renamed `patroni.log.1`, the older ones shift up, at most `file_num` are kept).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A size-rotated log file.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    keep: u32,
    mode: Option<u32>,
}

impl RotatingFile {
    /// Opens (appending) `dir/patroni.log`, creating the directory.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        keep: u32,
        mode: Option<u32>,
    ) -> io::Result<RotatingFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("patroni.log");
        let file = open(&path, mode)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            file,
            written,
            max_bytes,
            keep,
            mode,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            self.file = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&self.path)?;
        } else {
            let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
            for n in (1..self.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = open(&self.path, self.mode)?;
        }
        self.written = 0;
        Ok(())
    }
}

fn open(path: &Path, mode: Option<u32>) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    if let Some(m) = mode {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(m);
    }
    o.open(path)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_file_num_files() {
        let dir = std::env::temp_dir().join(format!("hactl-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut f = RotatingFile::open(&dir, 100, 2, Some(0o600)).unwrap();
        for i in 0..10 {
            f.write_all(format!("{i:039}\n").as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        // 40-byte lines, 100-byte files: two lines per file; 10 lines → the last two files rotated out.
        assert_eq!(read("patroni.log").lines().count(), 2);
        assert!(read("patroni.log").ends_with("09\n"));
        assert!(read("patroni.log.1").ends_with("07\n"));
        assert!(read("patroni.log.2").ends_with("05\n"));
        assert!(!dir.join("patroni.log.3").exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("patroni.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
