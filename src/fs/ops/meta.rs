//! The operations that only describe: statfs, extended attributes, access(2), and
//! the reads of an open `.interaction.json` (bytes held since the open).
//! Read-only looks at the node table and the catalog. The xattrs hold phone numbers
//! and agents: refused (`EACCES`) while the tenant's access is revoked, as lookups
//! are; statfs and access(2) name nothing and still answer.

use std::ffi::OsStr;

use bytes::Bytes;

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

    /// Bytes `[offset, offset + size)` of an open `.interaction.json` of `guid`, opened
    /// when `guid` had been erased `erasures` times: `ENOENT` once it is erased again.
    pub(super) fn read_meta(
        &self,
        guid: &str,
        erasures: u64,
        bytes: &Bytes,
        offset: u64,
        size: u32,
    ) -> Result<Bytes, FsError> {
        if self.catalog.erasures_of(guid) != erasures {
            return Err(FsError::Erased);
        }
        let start = usize::try_from(offset).map_or(bytes.len(), |o| o.min(bytes.len()));
        let end = start.saturating_add(size as usize).min(bytes.len());
        Ok(bytes.slice(start..end))
    }

    /// Only for a caller who could read a file (the attributes hold phone numbers),
    /// and not while the tenant's access is revoked.
    pub(crate) fn getxattr(&self, ino: u64, name: &OsStr, who: &Caller) -> Result<String, FsError> {
        self.allowed()?;
        if !self.access.may_read_file(who) {
            return Err(FsError::Denied);
        }
        let node = self.node(ino).map_err(|_| FsError::NoAttr)?;
        xattr::get(&self.catalog, &node, name).ok_or(FsError::NoAttr)
    }

    /// Names only, but not while the tenant's access is revoked.
    pub(crate) fn listxattr(&self, ino: u64) -> Result<Vec<u8>, FsError> {
        self.allowed()?;
        Ok(self
            .node(ino)
            .map(|n| xattr::list(&self.catalog, &n))
            .unwrap_or_default())
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
