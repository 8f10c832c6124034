//! File attributes of each kind of node.

use std::time::SystemTime;

use fuser::{FileAttr, FileType, INodeNo};
use time::OffsetDateTime;

/// Who owns every node: the mounting user.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    pub fn current() -> Owner {
        // SAFETY: getuid/getgid cannot fail and have no preconditions.
        unsafe {
            Owner {
                uid: libc::getuid(),
                gid: libc::getgid(),
            }
        }
    }
}

fn attr(
    owner: Owner,
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
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

pub fn dir(owner: Owner, ino: u64, mtime: OffsetDateTime) -> FileAttr {
    attr(owner, ino, FileType::Directory, 0o555, 0, mtime)
}

pub fn file(owner: Owner, ino: u64, size: u64, mtime: OffsetDateTime) -> FileAttr {
    attr(owner, ino, FileType::RegularFile, 0o444, size, mtime)
}

pub fn symlink(owner: Owner, ino: u64, target_len: u64, mtime: OffsetDateTime) -> FileAttr {
    attr(owner, ino, FileType::Symlink, 0o777, target_len, mtime)
}
