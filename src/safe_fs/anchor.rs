//! [`Anchor`]: file operations below one checked directory, relative to its
//! descriptor, one `openat(O_NOFOLLOW|O_DIRECTORY)` per path component.
//!
//! Invariants:
//! - Paths are given as the callers know them (absolute, under [`Anchor::path`]); only
//!   the part below the anchor is used, and only plain components (`..`, `.` and a
//!   path outside the anchor are `InvalidInput`). The anchor's own path is never
//!   resolved again: a parent renamed or replaced after the check changes nothing.
//! - No operation follows a symbolic link: each intermediate component is opened
//!   `O_NOFOLLOW|O_DIRECTORY` (a link there fails, `ELOOP`/`ENOTDIR`), files are
//!   opened `O_NOFOLLOW`, new files `O_CREAT|O_EXCL` 0600, directories made 0700;
//!   `unlinkat` removes a link itself, and the recursive walks ([`Anchor::remove_all`],
//!   [`Anchor::tree`]) descend only into real directories, through descriptors.
//! - Every descriptor is `O_CLOEXEC`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::DIR_FLAGS;

/// A checked directory, held open (see the module essay).
#[derive(Debug)]
pub(crate) struct Anchor {
    base: PathBuf,
    fd: OwnedFd,
}

/// What a directory entry is (the entry itself: a link is [`Kind::Symlink`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// One entry of [`Anchor::read_dir`], as `lstat` saw it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    name: OsString,
    path: PathBuf,
    pub kind: Kind,
    pub len: u64,
    pub modified: SystemTime,
}

impl Entry {
    pub fn file_name(&self) -> &OsStr {
        &self.name
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// A directory descriptor: the anchor's own, or one opened below it.
enum Held<'a> {
    Base(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl AsFd for Held<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Held::Base(fd) => *fd,
            Held::Owned(fd) => fd.as_fd(),
        }
    }
}

fn invalid(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is not below the cache directory", path.display()),
    )
}

impl Anchor {
    /// The directory `fd` (already checked) known as `base`.
    pub fn new(base: PathBuf, fd: OwnedFd) -> Anchor {
        Anchor { base, fd }
    }

    /// The directory `base`, created 0700 if missing, checked private
    /// ([`super::create_private`]).
    pub fn create(base: &Path) -> Result<Anchor, super::DirError> {
        Ok(Anchor::new(
            base.to_path_buf(),
            super::create_private(base)?,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.base
    }

    /// The plain components of `path` below the anchor.
    fn components<'p>(&self, path: &'p Path) -> io::Result<Vec<&'p OsStr>> {
        let rest = path.strip_prefix(&self.base).map_err(|_| invalid(path))?;
        rest.components()
            .map(|c| match c {
                Component::Normal(n) => Ok(n),
                _ => Err(invalid(path)),
            })
            .collect()
    }

    /// The directory reached through `comps`, each opened without following a link
    /// (created 0700 first when `create`).
    fn descend(&self, comps: &[&OsStr], create: bool) -> io::Result<Held<'_>> {
        let mut cur = Held::Base(self.fd.as_fd());
        for c in comps {
            if create {
                match rustix::fs::mkdirat(&cur, *c, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            cur = Held::Owned(rustix::fs::openat(&cur, *c, DIR_FLAGS, Mode::empty())?);
        }
        Ok(cur)
    }

    /// The directory holding `path`, and `path`'s last component.
    fn split<'p>(&self, path: &'p Path) -> io::Result<(Held<'_>, &'p OsStr)> {
        let comps = self.components(path)?;
        let (last, parents) = comps.split_last().ok_or_else(|| invalid(path))?;
        Ok((self.descend(parents, false)?, last))
    }

    /// Open the file `path` with `flags` (plus `O_NOFOLLOW|O_CLOEXEC`; created 0600).
    pub fn open(&self, path: &Path, flags: OFlags) -> io::Result<File> {
        let (dir, name) = self.split(path)?;
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&dir, name, flags, Mode::from_raw_mode(0o600))?;
        Ok(File::from(fd))
    }

    /// Open the existing file `path` for reading.
    pub fn read(&self, path: &Path) -> io::Result<File> {
        self.open(path, OFlags::RDONLY)
    }

    /// Create the new file `path` (0600, `O_EXCL`: never an existing file or link).
    pub fn create_new(&self, path: &Path) -> io::Result<File> {
        self.open(path, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL)
    }

    /// The whole of the file `path`.
    pub fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        self.read(path)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Create the directory `path` and the missing ones above it (0700).
    pub fn make_dirs(&self, path: &Path) -> io::Result<()> {
        let comps = self.components(path)?;
        self.descend(&comps, true).map(drop)
    }

    /// Remove the file (or link) `path`.
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.split(path)?;
        Ok(rustix::fs::unlinkat(&dir, name, AtFlags::empty())?)
    }

    /// Remove the empty directory `path`.
    pub fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.split(path)?;
        Ok(rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR)?)
    }

    /// Rename `from` to `to` (both below the anchor).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (a, an) = self.split(from)?;
        let (b, bn) = self.split(to)?;
        Ok(rustix::fs::renameat(&a, an, &b, bn)?)
    }

    /// `lstat` of `path`, as an [`Entry`].
    pub fn entry(&self, path: &Path) -> io::Result<Entry> {
        let (dir, name) = self.split(path)?;
        entry_at(&dir, name, path.to_path_buf())
    }

    /// The entries of the directory `path` (the anchor's own if it is the anchor).
    pub fn read_dir(&self, path: &Path) -> io::Result<Vec<Entry>> {
        let comps = self.components(path)?;
        let dir = self.descend(&comps, false)?;
        list(&dir, path)
    }

    /// Bytes and count of the regular files under the directory `path` (0 if it does
    /// not exist), removing everything in it and it when `remove`. A link is counted
    /// as nothing and removed as a link.
    pub fn tree(&self, path: &Path, remove: bool) -> io::Result<(u64, u64)> {
        let (parent, name) = self.split(path)?;
        let dir = match rustix::fs::openat(&parent, name, DIR_FLAGS, Mode::empty()) {
            Ok(d) => d,
            Err(rustix::io::Errno::NOENT) => return Ok((0, 0)),
            Err(e) => return Err(e.into()),
        };
        let counted = tree_at(&dir, path, remove)?;
        drop(dir);
        if remove {
            ignore_missing(rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR))?;
        }
        Ok(counted)
    }

    /// Remove `path`: a directory with all it holds, or a file or link; the regular
    /// files removed (0 if it does not exist).
    pub fn remove_all(&self, path: &Path) -> io::Result<u64> {
        match self.entry(path) {
            Ok(e) if e.is_dir() => self.tree(path, true).map(|(_, files)| files),
            Ok(e) => {
                ignore_missing(self.remove_file(path))?;
                Ok(u64::from(e.is_file()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Anchor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn ignore_missing<E: Into<io::Error>>(r: Result<(), E>) -> io::Result<()> {
    match r.map_err(Into::into) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// `lstat` of `name` in `dir`.
fn entry_at(dir: impl AsFd, name: &OsStr, path: PathBuf) -> io::Result<Entry> {
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File,
        FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    let (secs, nanos) = (st.st_mtime as i64, st.st_mtime_nsec as u32);
    let modified = u64::try_from(secs)
        .ok()
        .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::new(s, nanos.min(999_999_999))))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Entry {
        name: name.to_os_string(),
        path,
        kind,
        len: u64::try_from(st.st_size).unwrap_or(0),
        modified,
    })
}

/// The entries of the open directory `dir` (at `path`), without `.` and `..`; one
/// that vanished meanwhile is left out.
fn list(dir: impl AsFd, path: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(&dir)? {
        let e = e?;
        let name = OsStr::from_bytes(e.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        match entry_at(&dir, name, path.join(name)) {
            Ok(entry) => out.push(entry),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// [`Anchor::tree`] of the open directory `dir` (at `path`), its own entry aside.
fn tree_at(dir: &OwnedFd, path: &Path, remove: bool) -> io::Result<(u64, u64)> {
    let (mut bytes, mut files) = (0, 0);
    for e in list(dir, path)? {
        if e.is_dir() {
            let sub = match rustix::fs::openat(dir, e.file_name(), DIR_FLAGS, Mode::empty()) {
                Ok(s) => s,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(err) => return Err(err.into()),
            };
            let (b, f) = tree_at(&sub, e.path(), remove)?;
            drop(sub);
            bytes += b;
            files += f;
            if remove {
                ignore_missing(rustix::fs::unlinkat(dir, e.file_name(), AtFlags::REMOVEDIR))?;
            }
        } else {
            if remove {
                ignore_missing(rustix::fs::unlinkat(dir, e.file_name(), AtFlags::empty()))?;
            }
            if e.is_file() {
                bytes += e.len;
                files += 1;
            }
        }
    }
    Ok((bytes, files))
}
