//! Private directories on a shared host: where vccfs keeps things by default
//! ([`defaults`]), how it decides a directory is its own, and how it works below one
//! without ever following a symbolic link ([`Anchor`]).
//!
//! Invariants:
//! - **No `/tmp`.** No default is ever under a world-writable directory: root uses
//!   `/var/cache/vccfs` and `/run/vccfs` (or systemd's `$CACHE_DIRECTORY` and
//!   `$RUNTIME_DIRECTORY`), other users the XDG directories; without them there is
//!   no default (the cache needs `--cache-dir`, the status socket is skipped).
//! - **A private directory is checked on its descriptor.** [`open_private`] opens a
//!   directory `O_DIRECTORY|O_NOFOLLOW` and `fstat`s that descriptor: it must be a
//!   directory (not a symbolic link), owned by the effective uid, and not writable by
//!   group or others. Anything else is a [`DirError`], one line naming the directory
//!   and what is wrong. [`create_private`] and [`private_subdir`] create a missing
//!   directory 0700 and then make the same check, so a directory swapped in by a race
//!   is refused just the same. Only the last component is checked: the parents are
//!   the administrator's (`/var/cache`, a home directory, or what `--cache-dir` names).
//! - **Below a checked directory, nothing is followed.** An [`Anchor`] holds the
//!   descriptor of a checked directory; every operation below it walks the path one
//!   component at a time with `openat(O_NOFOLLOW|O_DIRECTORY)` and ends in a `*at`
//!   call that does not follow either, so a symbolic link planted anywhere below is
//!   at most removed (as a link), never traversed, read, written or deleted through.

mod anchor;
pub(crate) mod defaults;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

pub(crate) use anchor::{Anchor, Entry, Kind};

/// Why a directory is not vccfs's own (one line, naming it).
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{}: is a symbolic link; refused (name the directory itself)", path.display())]
    Symlink { path: PathBuf },
    #[error("{}: is not a directory", path.display())]
    NotDir { path: PathBuf },
    #[error("{}: owned by uid {owner}, not by this user (uid {euid}); refused (chown it, or choose another directory)", path.display())]
    Owner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("{}: mode {mode:04o} lets group or others write in it; refused (chmod go-w {})", path.display(), path.display())]
    Writable { path: PathBuf, mode: u32 },
    #[error("{}: cannot {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

impl DirError {
    fn io<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> DirError + 'a {
        move |source| DirError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}

/// The effective uid.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Open the existing directory `path` and check it is private (see the module essay).
pub fn open_private(path: &Path) -> Result<OwnedFd, DirError> {
    let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())
        .map_err(|e| refused(path, io::Error::from(e), None::<OwnedFd>))?;
    check(&fd, path)?;
    Ok(fd)
}

/// Open the directory `path`, creating it (0700; missing parents too) if absent, and
/// check it is private.
pub fn create_private(path: &Path) -> Result<OwnedFd, DirError> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(DirError::io(parent, "create"))?;
        }
    }
    match rustix::fs::mkdir(path, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(DirError::io(path, "create")(e.into())),
    }
    open_private(path)
}

/// Open `<parent>/<name>` (whose path is `path`), creating it 0700 if absent, and
/// check it is private; never through a symbolic link.
pub fn private_subdir(parent: impl AsFd, name: &str, path: &Path) -> Result<OwnedFd, DirError> {
    match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(DirError::io(path, "create")(e.into())),
    }
    open_private_at(parent, name, path)
}

/// Open the existing directory `<parent>/<name>` (whose path is `path`) and check it
/// is private; never through a symbolic link.
pub fn open_private_at(parent: impl AsFd, name: &str, path: &Path) -> Result<OwnedFd, DirError> {
    let fd = rustix::fs::openat(&parent, name, DIR_FLAGS, Mode::empty())
        .map_err(|e| refused(path, io::Error::from(e), Some(&parent)))?;
    check(&fd, path)?;
    Ok(fd)
}

/// Is the open directory `fd` (at `path`) private?
pub fn check(fd: impl AsFd, path: &Path) -> Result<(), DirError> {
    let st = rustix::fs::fstat(fd).map_err(|e| DirError::io(path, "stat")(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(DirError::NotDir {
            path: path.to_path_buf(),
        });
    }
    let euid = euid();
    if st.st_uid != euid {
        return Err(DirError::Owner {
            path: path.to_path_buf(),
            owner: st.st_uid,
            euid,
        });
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(DirError::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// What a failed `O_DIRECTORY|O_NOFOLLOW` open of `path` means: a symbolic link (the
/// kernel says `ELOOP`, or `ENOTDIR` for a link to a non-directory), not a directory,
/// or another error.
fn refused(path: &Path, e: io::Error, parent: Option<impl AsFd>) -> DirError {
    let is_link = match e.raw_os_error() {
        Some(libc::ELOOP) => true,
        Some(libc::ENOTDIR) => match (parent, path.file_name()) {
            (Some(p), Some(name)) => {
                rustix::fs::statat(p, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
            }
            _ => std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()),
        },
        _ => false,
    };
    if is_link {
        DirError::Symlink {
            path: path.to_path_buf(),
        }
    } else if e.raw_os_error() == Some(libc::ENOTDIR) {
        DirError::NotDir {
            path: path.to_path_buf(),
        }
    } else {
        DirError::io(path, "open")(e)
    }
}

#[cfg(test)]
mod tests;
