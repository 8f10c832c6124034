//! The disk tier at rest: what binds a sealed file to the block it holds, the stamp
//! recording which key and mode the tree was kept under, crypto-erasure, and the
//! cache directory tag.
//!
//! Invariants:
//! - **Identity from the asker.** The associated data of a sealed file is built from
//!   what the reader asks for (tenant, content key, block index, block size, and
//!   which kind of segment: block file, segment of a whole file, whole-file index),
//!   never from the file: a file moved or swapped between versions, indices or
//!   kinds, truncated, forged or sealed for another tenant or key does not open. The
//!   rest of the identity (guid, validator, …) is inside the sealed plaintext.
//! - **One key and mode per tree.** `<tenant>/stamp` names the key id and the mode
//!   the tree and the catalog were written under. At open, when it differs (or is
//!   missing while there is a tree or a catalog), both are renamed aside at once
//!   (`.erase-*`) and deleted by the scan thread, counted `crypto_erased`: data
//!   sealed under a key no longer held is as good as gone, and is never an error.
//! - **Marked as a cache.** The root carries a `CACHEDIR.TAG`, so backup tools skip it.

use std::io::{self, Write};
use std::path::Path;

use super::config::DiskEncryption;
use crate::safe_fs::Anchor;
use crate::seal::KeyId;

/// Which kind of sealed segment a file (or part of one) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment {
    /// A block file (its plaintext: a `format` header and the block).
    Block,
    /// One block of a whole file (its plaintext: the block's bytes).
    Whole,
    /// A whole file's index.
    Index,
}

const AAD_LABEL: &[u8; 8] = b"vccfsdk2";
/// Bytes of the associated data.
pub(super) const AAD_LEN: usize = 8 + 1 + 8 + 16 + 8 + 8;

/// The associated data binding a sealed segment to the block asked for.
pub(super) fn aad(
    tenant: &[u8; 8],
    id: &[u8; 16],
    index: u64,
    block_size: u64,
    seg: Segment,
) -> [u8; AAD_LEN] {
    let mut a = [0u8; AAD_LEN];
    a[..8].copy_from_slice(AAD_LABEL);
    a[8] = match seg {
        Segment::Block => b'B',
        Segment::Whole => b'W',
        Segment::Index => b'I',
    };
    a[9..17].copy_from_slice(tenant);
    a[17..33].copy_from_slice(id);
    a[33..41].copy_from_slice(&index.to_le_bytes());
    a[41..49].copy_from_slice(&block_size.to_le_bytes());
    a
}

/// The stamp file in a tenant's directory.
pub(super) const STAMP: &str = "stamp";
/// The catalog's directory in a tenant's directory.
pub(super) const CATALOG: &str = "catalog";
/// What is renamed aside for deletion starts with this.
pub(super) const ERASE_PREFIX: &str = ".erase-";
/// The old plaintext layout.
pub(super) const LEGACY_TREE: &str = "v1";
const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by vccfs (its disk cache).\n\
# For information about cache directory tags, see https://bford.info/cachedir/\n";

fn stamp_text(key: KeyId, mode: DiskEncryption) -> String {
    format!(
        "vccfs disk cache\nlayout 2\nkey {key}\nmode {}\n",
        mode.as_str()
    )
}

/// Write `text` to `path` (below `dir`) atomically: a temporary file with a random
/// name, created `O_EXCL|O_NOFOLLOW` 0600, renamed over it.
pub(crate) fn write_atomic(dir: &Anchor, path: &Path, text: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    let written = dir
        .create_new(&tmp)
        .and_then(|mut f| f.write_all(text))
        .and_then(|()| dir.rename(&tmp, path));
    if written.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    written
}

/// Check the stamp of the tenant directory `dir` (locked by the caller) against the
/// running key and mode; if it differs, rename the tree `tree` and the catalog aside
/// for the scan to delete, and write the new stamp. True if something was set aside.
pub(super) fn check_stamp(
    fs: &Anchor,
    tree: &str,
    key: KeyId,
    mode: DiskEncryption,
) -> io::Result<bool> {
    let want = stamp_text(key, mode);
    let dir = fs.path();
    let path = dir.join(STAMP);
    let have = match fs.read_all(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if have.as_deref() == Some(want.as_bytes()) {
        return Ok(false);
    }
    let mut aside = false;
    for name in [tree, CATALOG] {
        let from = dir.join(name);
        let to = dir.join(format!(
            "{ERASE_PREFIX}{:016x}-{name}",
            rand::random::<u64>()
        ));
        match fs.rename(&from, &to) {
            Ok(()) => aside = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    write_atomic(fs, &path, want.as_bytes())?;
    Ok(aside)
}

/// Delete what was set aside in the tenant directory (`.erase-*`); the files removed.
pub(super) fn remove_set_aside(fs: &Anchor) -> u64 {
    let Ok(entries) = fs.read_dir(fs.path()) else {
        return 0;
    };
    let mut files = 0;
    for e in entries {
        let aside = e
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(ERASE_PREFIX));
        if aside {
            files += remove_all(fs, e.path());
        }
    }
    files
}

/// Delete `path` (a directory, recursively, or a file; a link as a link); the files
/// removed.
pub(super) fn remove_all(fs: &Anchor, path: &Path) -> u64 {
    match fs.remove_all(path) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "disk tier: cannot delete");
            0
        }
    }
}

/// Write `<root>/CACHEDIR.TAG` unless it is there.
pub(super) fn tag_cache_dir(root: &Anchor) -> io::Result<()> {
    let path = root.path().join(CACHEDIR_TAG);
    let tagged = root
        .read_all(&path)
        .is_ok_and(|b| b.starts_with(&CACHEDIR_TEXT.as_bytes()[..43]));
    if tagged {
        return Ok(());
    }
    write_atomic(root, &path, CACHEDIR_TEXT.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn associated_data_differs_in_every_field() {
        let base = aad(b"tenant01", &[1; 16], 3, 64, Segment::Block);
        let others = [
            aad(b"tenant02", &[1; 16], 3, 64, Segment::Block),
            aad(b"tenant01", &[2; 16], 3, 64, Segment::Block),
            aad(b"tenant01", &[1; 16], 4, 64, Segment::Block),
            aad(b"tenant01", &[1; 16], 3, 32, Segment::Block),
            aad(b"tenant01", &[1; 16], 3, 64, Segment::Whole),
            aad(b"tenant01", &[1; 16], 3, 64, Segment::Index),
        ];
        for o in others {
            assert_ne!(o, base);
        }
    }

    #[test]
    fn a_stamp_that_differs_sets_the_tree_and_catalog_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let a = Anchor::create(d).expect("anchor");
        let (k1, k2) = (KeyId([1; 16]), KeyId([2; 16]));
        assert!(!check_stamp(&a, "v2", k1, DiskEncryption::Aead).expect("fresh"));
        fs::create_dir_all(d.join("v2/ab")).expect("tree");
        fs::write(d.join("v2/ab/f"), b"x").expect("file");
        fs::create_dir_all(d.join(CATALOG)).expect("catalog");
        fs::write(d.join(CATALOG).join("2026-01-01.json"), b"y").expect("day");
        assert!(!check_stamp(&a, "v2", k1, DiskEncryption::Aead).expect("same"));
        assert!(check_stamp(&a, "v2", k2, DiskEncryption::Aead).expect("key"));
        assert!(!d.join("v2").exists() && !d.join(CATALOG).exists());
        assert_eq!(remove_set_aside(&a), 2);
        fs::create_dir_all(d.join("v2")).expect("tree");
        assert!(check_stamp(&a, "v2", k2, DiskEncryption::None).expect("mode"));
        assert_eq!(remove_set_aside(&a), 0);
    }

    #[test]
    fn the_cache_dir_tag_has_the_standard_signature() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Anchor::create(dir.path()).expect("anchor");
        tag_cache_dir(&a).expect("tag");
        tag_cache_dir(&a).expect("again");
        let text = fs::read_to_string(dir.path().join(CACHEDIR_TAG)).expect("read");
        assert!(text.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
    }
}
