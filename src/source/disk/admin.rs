//! What the CLI needs without a mount: where the disk tier lives by default, how much
//! each tenant holds, clearing it; and the pieces of the filesystem the store uses
//! (the directory lock, free space, names).
//!
//! Invariants: the root and every tenant directory are checked private
//! ([`crate::safe_fs::open_private`]) before anything in them is read or deleted, and
//! everything below a tenant directory goes through its [`Anchor`]: `cache du` and
//! `cache clear` never follow a symbolic link (one is removed as a link).

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use super::FsSpace;
use crate::safe_fs::{self, Anchor, DirError};

/// The subdirectory of a tenant's directory holding the block files.
pub(super) const TREE: &str = "v2";
/// The lock file in a tenant's directory.
pub(super) const LOCK: &str = "lock";

/// The default root (see [`crate::safe_fs::defaults`]): root's `/var/cache/vccfs` (or
/// `$CACHE_DIRECTORY`), else `$XDG_CACHE_HOME/vccfs` or `~/.cache/vccfs`; never a
/// temporary directory.
pub fn default_root() -> Result<PathBuf, safe_fs::defaults::NoCacheDir> {
    safe_fs::defaults::cache_root()
}

/// What one tenant's directory holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantUsage {
    /// The directory's name: the tenant id, 16 hex digits.
    pub tenant: String,
    pub bytes: u64,
    pub files: u64,
}

/// What [`clear`] removed, and what it left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cleared {
    pub bytes: u64,
    pub files: u64,
    /// Tenant directories in use by a live mount (their lock is held): not touched.
    pub busy: Vec<String>,
}

/// The bytes and files under each tenant directory of `root` (blocks, whole files,
/// catalog days, and what an earlier layout or key left; none if `root` does not
/// exist). Reads only; takes no lock. An unsafe root or tenant directory (a link,
/// another owner, writable by others) is an error carrying a [`DirError`].
pub fn usage(root: &Path) -> io::Result<Vec<TenantUsage>> {
    let mut out = Vec::new();
    for (tenant, dir) in tenant_dirs(root)? {
        let (bytes, files) = contents(&dir, false)?;
        out.push(TenantUsage {
            tenant,
            bytes,
            files,
        });
    }
    out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    Ok(out)
}

/// Delete every block and saved catalog day under `root`, tenant by tenant, each under its lock; a tenant
/// whose lock a live mount holds is left alone and named in [`Cleared::busy`].
pub fn clear(root: &Path) -> io::Result<Cleared> {
    let mut out = Cleared::default();
    for (tenant, dir) in tenant_dirs(root)? {
        match lock(&dir) {
            Ok(Some(_held)) => {
                let (bytes, files) = contents(&dir, true)?;
                out.bytes += bytes;
                out.files += files;
            }
            Ok(None) => out.busy.push(tenant),
            Err(e) => return Err(e),
        }
    }
    out.busy.sort();
    Ok(out)
}

fn unsafe_dir(e: DirError) -> io::Error {
    io::Error::other(e)
}

/// `(name, anchor)` of the tenant directories in `root` (each checked private).
fn tenant_dirs(root: &Path) -> io::Result<Vec<(String, Anchor)>> {
    let fd = match safe_fs::open_private(root) {
        Ok(fd) => fd,
        Err(DirError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(unsafe_dir(e)),
    };
    let root = Anchor::new(root.to_path_buf(), fd);
    let mut out = Vec::new();
    for e in root.read_dir(root.path())? {
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if parse_hex::<8>(&name).is_some() && e.is_dir() {
            let fd = safe_fs::open_private_at(&root, &name, e.path()).map_err(unsafe_dir)?;
            out.push((name, Anchor::new(e.path().to_path_buf(), fd)));
        }
    }
    Ok(out)
}

/// Bytes and count of what a tenant's directory holds (all but its lock and key
/// stamp), removing it when `remove`.
fn contents(dir: &Anchor, remove: bool) -> io::Result<(u64, u64)> {
    let (mut bytes, mut files) = (0, 0);
    for e in dir.read_dir(dir.path())? {
        let name = e.file_name();
        if name == OsStr::new(LOCK) || name == OsStr::new(super::at_rest::STAMP) {
            continue;
        }
        if e.is_dir() {
            let (b, f) = dir.tree(e.path(), remove)?;
            bytes += b;
            files += f;
        } else {
            if remove {
                ignore_missing(dir.remove_file(e.path()))?;
            }
            bytes += e.len;
            files += 1;
        }
    }
    Ok((bytes, files))
}

pub(super) fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Take `<dir>/lock` (created 0600, never through a link) with
/// `flock(LOCK_EX | LOCK_NB)`: the open file holds the lock until it is closed;
/// `None` if another open file holds it.
pub(super) fn lock(dir: &Anchor) -> io::Result<Option<File>> {
    let file = dir.open(&dir.path().join(LOCK), OFlags::RDWR | OFlags::CREATE)?;
    // SAFETY: flock on a file descriptor we own, no pointers involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(file));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// `statvfs(path)`: space available to us and the filesystem's size.
pub(super) fn statvfs(path: &Path) -> io::Result<FsSpace> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: an all-zero statvfs is a valid value of the plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok(FsSpace {
        available: (st.f_bavail as u64).saturating_mul(frsize),
        total: (st.f_blocks as u64).saturating_mul(frsize),
    })
}

/// Lowercase hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The `N` bytes spelled by exactly `2N` lowercase hex digits.
pub(super) fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_it_does_not_spell() {
        let b = [0x00, 0x9f, 0xa0, 0xff];
        assert_eq!(hex(&b), "009fa0ff");
        assert_eq!(parse_hex::<4>("009fa0ff"), Some(b));
        for bad in ["009FA0FF", "009fa0f", "009fa0fff", "009fa0fg", "+09fa0ff"] {
            assert_eq!(parse_hex::<4>(bad), None, "{bad}");
        }
    }

    #[test]
    fn statvfs_reads_a_real_filesystem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = statvfs(dir.path()).expect("statvfs");
        assert!(s.total > 0 && s.available <= s.total);
    }
}
