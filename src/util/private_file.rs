//! Reading a secret from a file only its owner can read: `--credentials`,
//! `--redis-credentials`, `--cache-key-file`.
//!
//! Invariants (one function, [`read_private_file`], for every secret file):
//! - the path is opened exactly once, `O_NOFOLLOW | O_CLOEXEC`: a symlink in the last
//!   component is refused, and no child process inherits the descriptor;
//! - every check is made with `fstat` on that descriptor, never on the path again (no
//!   window between check and use): a regular file, owned by the effective user, with
//!   no group or other permission bits;
//! - what is read comes from that same descriptor, at most `max_len` bytes (a longer
//!   file is refused, never allocated), into a [`Zeroizing`] buffer wiped on drop;
//! - errors name the path and the reason, never the file's content.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a secret file was refused; displays as `PATH: reason` (callers prefix the flag).
#[derive(Debug, thiserror::Error)]
pub enum PrivateFileError {
    /// It could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// It is not a private regular file of ours, or too long.
    #[error("{}: {why}", path.display())]
    Refused { path: PathBuf, why: String },
}

/// The bytes of `path` (at most `max_len`), after the checks of the module essay.
pub fn read_private_file(
    path: &Path,
    max_len: u64,
) -> Result<Zeroizing<Vec<u8>>, PrivateFileError> {
    let io = |source| PrivateFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let refused = |why: String| PrivateFileError::Refused {
        path: path.to_path_buf(),
        why,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused("is a symlink (give the file itself)".into()),
            _ => io(e),
        })?;
    let md = file.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(refused("not a regular file".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if md.uid() != euid {
        return Err(refused(format!(
            "owned by uid {}, not by the running user ({euid}): chown it, or run as its owner",
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(refused(format!(
            "mode {:o} lets group or others read it: run chmod 600 {}",
            md.mode() & 0o777,
            path.display()
        )));
    }
    let cap = usize::try_from(max_len).unwrap_or(usize::MAX);
    let mut raw = Zeroizing::new(Vec::with_capacity(cap.min(4096)));
    (&mut file)
        .take(max_len.saturating_add(1))
        .read_to_end(&mut raw)
        .map_err(io)?;
    if raw.len() > cap {
        return Err(refused(format!("longer than {max_len} bytes")));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }

    #[test]
    fn a_private_file_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = private(dir.path(), "s", "secret\n");
        assert_eq!(&read_private_file(&p, 64).expect("read")[..], b"secret\n");
    }

    #[test]
    fn symlinks_loose_modes_other_owners_and_long_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = private(dir.path(), "s", "secret\n");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).expect("symlink");
        let e = read_private_file(&link, 64).expect_err("symlink");
        assert!(e.to_string().contains("symlink"), "{e}");

        let e = read_private_file(&p, 3).expect_err("too long");
        assert!(e.to_string().contains("longer than 3 bytes"), "{e}");

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = read_private_file(&p, 64).expect_err("group-readable");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");

        let e = read_private_file(dir.path(), 64).expect_err("a directory");
        assert!(e.to_string().contains("not a regular file"), "{e}");

        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).expect("chown");
            let e = read_private_file(&p, 64).expect_err("another owner");
            assert!(e.to_string().contains("owned by uid 65534"), "{e}");
        }
    }
}
