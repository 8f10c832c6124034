//! File attributes of each kind of node: sizes and times from the catalog, owner and
//! permission bits from the mount's [`Access`] rule (`access`: files `file_mode`,
//! directories `dir_mode`, symlinks [`LINK_MODE`], all owned by its `uid:gid`).

use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo};
use time::OffsetDateTime;

use super::access::{Access, LINK_MODE};

fn attr(
    owner: Access,
    ino: u64,
    kind: FileType,
    perm: u16,
    size: u64,
    mtime: OffsetDateTime,
) -> FileAttr {
    let t: SystemTime = mtime.into();
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind,
        perm,
        // Every file has two names: interactions/<guid>/<key> and its calls/ twin.
        nlink: if kind == FileType::Symlink { 1 } else { 2 },
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

pub fn dir(owner: Access, ino: u64, mtime: OffsetDateTime) -> FileAttr {
    attr(owner, ino, FileType::Directory, owner.dir_mode, 0, mtime)
}

pub fn file(owner: Access, ino: u64, size: u64, mtime: OffsetDateTime) -> FileAttr {
    attr(
        owner,
        ino,
        FileType::RegularFile,
        owner.file_mode,
        size,
        mtime,
    )
}

pub fn symlink(owner: Access, ino: u64, target_len: u64, mtime: OffsetDateTime) -> FileAttr {
    attr(owner, ino, FileType::Symlink, LINK_MODE, target_len, mtime)
}
