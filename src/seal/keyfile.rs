//! `--cache-key-file`: 32 random bytes (or 64 hex digits), readable by its owner only.
//!
//! The file is read with [`crate::util::read_private_file`] (opened once, `O_NOFOLLOW`,
//! checked with `fstat` on that descriptor: a regular file owned by the running user
//! with no group or other permission bits). What is read is kept in a [`Zeroizing`]
//! buffer, wiped when dropped.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::util::{read_private_file, PrivateFileError};

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Not a private regular file of ours (or unreadable).
    #[error("cache key file {0}")]
    File(#[from] PrivateFileError),
    /// Neither 32 bytes nor 64 hex digits.
    #[error("cache key file {path}: {why}")]
    Refused { path: PathBuf, why: String },
}

/// The longest key file read (64 hex digits and a line end, with room to spare).
const MAX_KEY_FILE: u64 = 80;

/// The 32 key bytes of `path`, after the checks of the module essay.
pub(super) fn read(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let raw = read_private_file(path, MAX_KEY_FILE)?;
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
    Err(KeyFileError::Refused {
        path: path.to_path_buf(),
        why: "must hold exactly 32 bytes, or 64 hex digits (make one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE)".into(),
    })
}
