//! The operations that only describe: statfs, extended attributes, access(2).
//! Read-only looks at the node table and the catalog.

use std::ffi::OsStr;

use super::{FsError, FsStats, Ops};
use crate::fs::access::Caller;
use crate::fs::xattr;

impl Ops {
    pub(crate) fn statfs(&self) -> FsStats {
        let (bytes, files) = self.catalog.totals();
        FsStats {
            blocks: bytes.div_ceil(4096),
            files,
        }
    }

    /// Only for a caller who could read a file (the attributes hold phone numbers).
    pub(crate) fn getxattr(&self, ino: u64, name: &OsStr, who: &Caller) -> Result<String, FsError> {
        if !self.access.may_read_file(who) {
            return Err(FsError::Denied);
        }
        let node = self.node(ino).map_err(|_| FsError::NoAttr)?;
        xattr::get(&self.catalog, &node, name).ok_or(FsError::NoAttr)
    }

    pub(crate) fn listxattr(&self, ino: u64) -> Vec<u8> {
        self.node(ino)
            .map(|n| xattr::list(&self.catalog, &n))
            .unwrap_or_default()
    }

    /// access(2): everything is readable, nothing writable.
    pub(crate) fn access(&self, ino: u64, write: bool) -> Result<(), FsError> {
        self.node(ino)?;
        if write {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }
}
