//! One page of a directory listing, as readdir hands it to the kernel.
//!
//! Invariant: entry `i` of a listing (0-based) is in the page only if `i >= offset`,
//! at most [`READDIR_BATCH`] of them, each saying `i + 1` is where to continue, so a
//! listing resumed at any offset the kernel was given neither repeats nor skips.

use fuser::FileType;

use super::node::DirEntry;
use super::ops::READDIR_BATCH;

/// The part of a directory listing from one offset on: entry `i` (0-based) is
/// returned only if `i >= offset`, and says `i + 1` is where to continue.
pub(super) struct Page {
    offset: u64,
    /// Position of the next entry pushed.
    at: u64,
    pub(super) entries: Vec<DirEntry>,
}

impl Page {
    pub(super) fn new(offset: u64) -> Page {
        Page {
            offset,
            at: 0,
            entries: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, ino: u64, kind: FileType, name: &str) {
        if self.at >= self.offset && self.entries.len() < READDIR_BATCH {
            self.entries.push(DirEntry {
                ino,
                kind,
                name: name.to_string(),
                next: self.at + 1,
            });
        }
        self.at += 1;
    }

    /// How many of the entries still to come the offset skips (for listings that
    /// can start part-way).
    pub(super) fn skip_to(&self) -> usize {
        usize::try_from(self.offset.saturating_sub(self.at)).unwrap_or(usize::MAX)
    }

    /// Skip `n` entries without preparing them.
    pub(super) fn advance(&mut self, n: usize) {
        self.at = self.at.saturating_add(n as u64);
    }
}
