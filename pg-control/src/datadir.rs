//! The data directory: whether it holds a cluster, whether it is empty, and whether it is ours (owned by the
//! PostgreSQL user, of the binaries' major version) before anything touches it.

use std::path::Path;

use crate::ctl::PgCtl;
use crate::error::{Error, Result};
use crate::os;

impl PgCtl {
    /// Where the cluster lives ([`PgSettings::data_dir`](crate::PgSettings::data_dir)).
    pub(crate) fn data_dir(&self) -> &Path {
        &self.s.data_dir
    }

    /// The data directory as a binary's `-D` argument.
    pub(crate) fn data_dir_arg(&self) -> String {
        self.s.data_dir.to_string_lossy().into_owned()
    }

    /// Whether the data directory holds a cluster (initdb or a clone wrote PG_VERSION).
    pub(crate) fn initialized(&self) -> bool {
        self.s.data_dir.join("PG_VERSION").is_file()
    }

    /// Whether the data directory is empty or missing: the only state a clone or initdb may write into.
    pub(crate) fn data_dir_empty(&self) -> Result<bool> {
        match std::fs::read_dir(&self.s.data_dir) {
            Ok(mut d) => Ok(d.next().is_none()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(Error::io(&self.s.data_dir, e)),
        }
    }

    /// The data directory, if it exists, must belong to the PostgreSQL user and match the binaries' major version.
    pub(crate) fn check_data_dir(&self) -> Result<()> {
        let dd = &self.s.data_dir;
        if let Some(owner) = os::owner_uid(dd) {
            if owner != self.run_as.uid {
                return Err(Error::DataDirOwner {
                    path: dd.clone(),
                    owner_uid: owner,
                    expected_uid: self.run_as.uid,
                });
            }
        }
        if let Ok(v) = std::fs::read_to_string(dd.join("PG_VERSION")) {
            let data_major: u32 = v.trim().parse().unwrap_or(0);
            if data_major != self.version_num / 10000 {
                return Err(Error::WrongVersion {
                    detail: format!(
                        "data directory {dd:?} is PostgreSQL {}, the binaries in {:?} are {}: use the matching bin_dir",
                        v.trim(),
                        self.s.bin_dir,
                        self.version_num / 10000
                    ),
                });
            }
        }
        Ok(())
    }
}
