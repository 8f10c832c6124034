//! `--cache-key-file`: 32 random bytes (or 64 hex digits), readable by its owner only.
//!
//! The file is opened once, `O_NOFOLLOW`, and checked on that descriptor (`fstat`):
//! a regular file owned by the running user with no group or other permission bits.
//! What is read is kept in a [`Zeroizing`] buffer, wiped when dropped.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cache key file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cache key file {path}: {why}")]
    Refused { path: PathBuf, why: String },
}

/// The 32 key bytes of `path`, after the checks of the module essay.
pub(super) fn read(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let open = |source| KeyFileError::Open {
        path: path.to_path_buf(),
        source,
    };
    let refused = |why: String| KeyFileError::Refused {
        path: path.to_path_buf(),
        why,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused("is a symlink (give the file itself)".into()),
            _ => open(e),
        })?;
    let md = file.metadata().map_err(open)?;
    if !md.is_file() {
        return Err(refused("not a regular file".into()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if md.uid() != euid {
        return Err(refused(format!(
            "owned by uid {}, not by the running user ({euid})",
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        return Err(refused(format!(
            "mode {:o} lets others read it: chmod 600 it",
            md.mode() & 0o777
        )));
    }
    let mut raw = Zeroizing::new(Vec::with_capacity(80));
    (&mut file).take(80).read_to_end(&mut raw).map_err(open)?;
    let mut key = Zeroizing::new([0u8; 32]);
    if raw.len() == 32 {
        key.copy_from_slice(&raw);
        return Ok(key);
    }
    let text = std::str::from_utf8(&raw).unwrap_or("").trim_end();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (i, out) in key.iter_mut().enumerate() {
            *out = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        return Ok(key);
    }
    Err(refused(
        "must hold exactly 32 bytes, or 64 hex digits (make one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE)".into(),
    ))
}
