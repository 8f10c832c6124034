//! The disk tier's read path: a block file is read whole and checked before a byte of
//! it is served.
//!
//! Invariants (the store's "never a wrong byte"): a file is served only if it opens
//! under the disk key as the block asked for (sealed stores; else it is counted
//! `rejected` and deleted), its length
//! is its header's, the header and data CRC32C match, it names the asking block
//! exactly (tenant, content key, guid, key, size, `lastModified`, index, block size)
//! and its validator agrees with the version's pin. A damaged file is counted
//! `corrupt` and queued for deletion; another block's file is deleted quietly; either
//! way the read is a miss, never an error.

use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use super::at_rest::{aad, Segment};
use super::format::{self, Identity};
use super::index::StoredBlock;
use super::whole;
use super::writer::Cmd;
use super::{Shared, Stored, READERS, TOUCH_AFTER};
use crate::memory::BlockPool;
use crate::seal::{Unsealed, OVERHEAD};
use crate::source::StoreError;
use crate::version::{ContentVersion, Validator};

/// Does a stored `validator` agree with `version`'s pin (if it has one yet)? `Err`
/// says why not.
pub(super) fn agrees(
    validator: Option<&Validator>,
    version: &ContentVersion,
) -> Result<(), &'static str> {
    match (validator, version.pinned()) {
        (Some(v), Some(pin)) if v != pin => Err("another version"),
        (None, Some(_)) => Err("no validator"),
        _ => Ok(()),
    }
}

/// Why a file was refused.
enum Damage {
    /// Not intact (checksums, lengths).
    Corrupt(format::Corrupt),
    /// Sealed, and does not open as the block asked for.
    Rejected,
}

impl Shared {
    /// The plaintext of the stored `raw` (opened in place when sealed), as segment
    /// `seg` of block `index` of the content key `id` at the mount's block size.
    pub(super) fn unseal<'a>(
        &self,
        raw: &'a mut [u8],
        id: &[u8; 16],
        index: u64,
        seg: Segment,
    ) -> Result<&'a [u8], Unsealed> {
        match &self.sealer {
            None => Ok(raw),
            Some(s) => {
                let aad = aad(self.tenant.as_bytes(), id, index, self.cfg.block_size, seg);
                s.open_in_place(&aad, raw).map(|p| &*p)
            }
        }
    }

    /// `plain` as stored: sealed as segment `seg` of block `index` of `id` when
    /// sealed, else as it is.
    pub(super) fn seal_file(
        &self,
        plain: Vec<u8>,
        id: &[u8; 16],
        index: u64,
        seg: Segment,
    ) -> Vec<u8> {
        match &self.sealer {
            None => plain,
            Some(s) => {
                let aad = aad(self.tenant.as_bytes(), id, index, self.cfg.block_size, seg);
                s.seal(&aad, &plain)
            }
        }
    }

    /// Bytes sealing adds to a stored file.
    pub(super) fn seal_overhead(&self) -> u64 {
        if self.sealer.is_some() {
            OVERHEAD as u64
        } else {
            0
        }
    }

    /// A hit on `id`, read from `file`: a use, for the LRU order now (an entry the
    /// index does not know yet is adopted) and after a restart (the mtime).
    pub(super) fn used(&self, id: StoredBlock, file: &File, meta: &std::fs::Metadata) {
        let unknown = {
            let mut ix = self.index.lock();
            !ix.touch(id) && !ix.scanning()
        };
        if unknown {
            self.send(Cmd::Adopt(id));
        }
        let now = SystemTime::now();
        if meta.modified().is_ok_and(|m| m + TOUCH_AFTER < now) {
            let _ = file.set_modified(now);
        }
    }

    /// Block `index` of `version`, read from its file and checked (on a blocking
    /// thread).
    pub(super) fn read_block(
        &self,
        version: &ContentVersion,
        index: u64,
        block_size: u64,
        pool: &BlockPool,
    ) -> Result<Option<Stored>, StoreError> {
        let id = StoredBlock {
            key: self.key_of(version),
            index,
        };
        let path = self.block_path(&id);
        let failed = |e: io::Error| StoreError(format!("disk: {}: {e}", path.display()));
        let file = match self.fs.read(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return if whole::promotable(version, block_size) {
                    self.read_from_whole(version, index, pool)
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(failed(e)),
        };
        let meta = file.metadata().map_err(failed)?;
        let who = self.identity(version, index, block_size);
        let longest =
            format::block_len(&who).unwrap_or(0) + format::MAX_HEADER as u64 + self.seal_overhead();
        let mut buf = self.bufs.lock().pop().unwrap_or_default();
        buf.clear();
        let read = if meta.len() > longest {
            Ok(Err(Some(Damage::Corrupt(format::Corrupt::Length))))
        } else {
            (&file).take(longest + 1).read_to_end(&mut buf).map(|_| {
                match self.unseal(&mut buf, version.id.as_bytes(), index, Segment::Block) {
                    Ok(plain) => self.check(plain, &who, version, pool),
                    Err(Unsealed) => Err(Some(Damage::Rejected)),
                }
            })
        };
        let mut bufs = self.bufs.lock();
        if bufs.len() < READERS {
            bufs.push(buf);
        }
        drop(bufs);
        match read.map_err(failed)? {
            Ok(stored) => {
                self.used(id, &file, &meta);
                Ok(Some(stored))
            }
            Err(damage) => {
                match damage {
                    Some(Damage::Corrupt(c)) => {
                        self.n.corrupt.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(path = %path.display(), why = %c, "disk tier: damaged block file deleted");
                    }
                    Some(Damage::Rejected) => {
                        self.n.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(path = %path.display(),
                            "disk tier: sealed block file that does not open as this block deleted");
                    }
                    None => {}
                }
                self.send(Cmd::Delete(id));
                Ok(None)
            }
        }
    }

    /// The block in `file`, if it is intact (`Err(Some)` if not) and the one asked
    /// for (`Err(None)` if another).
    fn check(
        &self,
        file: &[u8],
        who: &Identity<'_>,
        version: &ContentVersion,
        pool: &BlockPool,
    ) -> Result<Stored, Option<Damage>> {
        let d = format::decode(file).map_err(|c| Some(Damage::Corrupt(c)))?;
        let other = |why: &str| {
            tracing::debug!(
                why,
                index = who.index,
                "disk tier: block file of another block"
            );
            None
        };
        d.matches(who).map_err(other)?;
        agrees(d.validator.as_ref(), version).map_err(other)?;
        let mut b = pool.buffer(d.data.len());
        if b.extend_from_slice(d.data) != d.data.len() {
            return Err(other("buffer too small"));
        }
        Ok((b.freeze(), d.validator))
    }
}
