//! A saved day's index (`<day>.idx`): what a day out of memory keeps (its length,
//! totals and the sorted hashes of its guids, `listing::Away`), so that opening the
//! catalog of a long window reads 8 bytes an interaction instead of parsing every
//! saved day (a remount of 60 days of 33k calls took 40 s before it was live).
//!
//! Invariants:
//! - **Sealed** like the day files (the tenant's catalog key, bound to its day and to
//!   this format), so it tells nobody without the key how many calls a day had.
//! - **Never trusted apart from its day file.** It is removed before a new day file
//!   is renamed into place and written after, and it records the day file's size: a
//!   missing, damaged or mismatched index is ignored (and removed), and the day file is
//!   read instead. At worst a stale index misplaces a day's guids until the day comes
//!   back into memory (its listing is then the file's) or is re-listed; no byte served
//!   depends on it.
//! - Written only when every interaction of the day could be indexed (a day merged
//!   from a partly parsed file has none: it is read whole, as before).
//! - It records when the day was last listed whole from the API, if it was (a day
//!   file written from a whole-day listing; kept when an erasure rewrites it): a
//!   remount re-lists a saved day only once that listing is older than the day's
//!   staleness (`policy`), as if the mount had never stopped. The time is sealed
//!   with the rest: nobody without the key makes a day look fresher than it is.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use time::{Date, OffsetDateTime};

use super::{CatalogStore, Record};
use crate::seal::{SealReader, SealWriter};

/// Bound into every index's seal with its day.
const TAG: &str = "vccfs-catalog-index-v2";
/// Longest index read: 8 bytes an interaction, for 16M interactions a day.
const MAX_LEN: u64 = 1 << 24;

/// What a day out of memory keeps, as its index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayIndex {
    pub len: usize,
    /// Listed bytes and files (two more per interaction: its directory and metadata).
    pub totals: (u64, u64),
    /// `ino::interaction` of each guid, sorted.
    pub hashes: Box<[u64]>,
    /// When the day was last listed whole from the API (`None`: not known).
    pub listed: Option<OffsetDateTime>,
}

/// How an unknown listing time is written.
const NOT_LISTED: u64 = u64::MAX;

impl CatalogStore {
    fn index_path(&self, day: Date) -> PathBuf {
        self.dir.join(format!("{day}.idx"))
    }

    fn index_aad(day: Date) -> Vec<u8> {
        format!("{TAG} {day}").into_bytes()
    }

    /// Remove `day`'s index (before its day file changes).
    pub(super) fn drop_index(&self, day: Date) -> std::io::Result<()> {
        match std::fs::remove_file(self.index_path(day)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Write `day`'s index of `items` (its day file, just written, last listed whole
    /// at `listed`): nothing if one of them cannot be indexed.
    pub(super) fn write_index(
        &self,
        day: Date,
        items: &[&dyn Record],
        listed: Option<OffsetDateTime>,
    ) -> std::io::Result<()> {
        let mut hashes = Vec::with_capacity(items.len());
        let (mut bytes, mut files) = (0u64, 0u64);
        for i in items {
            let Some(ix) = i.index() else {
                return Ok(());
            };
            hashes.push(ix.hash);
            bytes += ix.totals.0;
            files += ix.totals.1;
        }
        hashes.sort_unstable();
        let day_len = std::fs::symlink_metadata(self.day_path(day))?.len();
        let (tmp, f) = self.temp_file(day)?;
        let written = (|| {
            let out = BufWriter::with_capacity(1 << 16, f);
            let mut body = SealWriter::new(&self.sealer, &Self::index_aad(day), out)?;
            let listed = listed
                .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
                .unwrap_or(NOT_LISTED);
            for n in [day_len, hashes.len() as u64, bytes, files, listed] {
                body.write_all(&n.to_le_bytes())?;
            }
            for h in &hashes {
                body.write_all(&h.to_le_bytes())?;
            }
            body.finish()?.flush()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, self.index_path(day))
    }

    /// `day`'s index, if it has one that opens and matches its day file (else the
    /// index is removed and `None`).
    pub fn day_index(&self, day: Date) -> Option<DayIndex> {
        let path = self.index_path(day);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .ok()?;
        let day_len = std::fs::symlink_metadata(self.day_path(day))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.size());
        let read = SealReader::new(&self.sealer, &Self::index_aad(day), BufReader::new(file))
            .ok()
            .and_then(|r| read_index(BufReader::new(r), day_len?));
        if read.is_none() {
            tracing::debug!(path = %path.display(), "a saved day's index is stale or damaged: ignored");
            let _ = std::fs::remove_file(&path);
        }
        read
    }
}

fn read_index(mut r: impl Read, day_len: u64) -> Option<DayIndex> {
    let mut word = || -> Option<u64> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).ok()?;
        Some(u64::from_le_bytes(b))
    };
    let (of_len, len, bytes, files, listed) = (word()?, word()?, word()?, word()?, word()?);
    if of_len != day_len || len > MAX_LEN {
        return None;
    }
    let mut hashes = Vec::with_capacity(len as usize);
    for _ in 0..len {
        hashes.push(word()?);
    }
    if !hashes.is_sorted() {
        return None;
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest).ok()? != 0 {
        return None;
    }
    Some(DayIndex {
        len: len as usize,
        totals: (bytes, files),
        hashes: hashes.into_boxed_slice(),
        listed: (listed != NOT_LISTED)
            .then(|| i64::try_from(listed).ok())
            .flatten()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
    })
}

/// What one interaction adds to its day's index.
#[derive(Debug, Clone, Copy)]
pub struct IndexEntry {
    /// `ino::interaction` of its guid.
    pub hash: u64,
    /// Bytes and files it lists (its directory and metadata file counted).
    pub totals: (u64, u64),
}
