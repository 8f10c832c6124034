//! Whole versions: once every block of a version of more than one block is on disk,
//! the writer promotes it to one file, `<version dir>/whole`, described by
//! `<version dir>/whole.idx`, and deletes the block files.
//!
//! - Under `DiskEncryption::None`, `whole` is exactly the content's bytes: a plain
//!   file is what FUSE passthrough needs (the kernel then reads it directly, at
//!   local-disk speed, see [`super::DiskStore::local_file`]).
//! - Under `DiskEncryption::Aead`, `whole` is the blocks each sealed as a segment
//!   (`at_rest::Segment::Whole`, bound to its index) at a fixed stride of
//!   `block_size + OVERHEAD` (the last shorter): still readable at any block, never
//!   handed to the kernel.
//!
//! The read path serves blocks from it too, with the version's checked index and
//! open `whole` cached (a few dozen versions), so a sequential read opens and
//! decodes `whole.idx` once, not per block. `whole.idx` is a block file (see
//! `format`; sealed as `Segment::Index` under `Aead`) naming the version with block
//! index [`WHOLE`] and the mount's block size, whose data is the CRC32C of each block
//! of the content, in order (4 bytes little-endian each).
//!
//! Invariants:
//! - **Never a wrong byte.** A block is served from `whole` only if `whole.idx` is an
//!   intact index of exactly this version (every identity field, the block size, the
//!   table's length) whose validator agrees with the pin, `whole` is exactly the
//!   length it must be, and the block's bytes match its CRC in the table (plain) or
//!   its segment opens as that block of that version (sealed; else `rejected`). A file
//!   handed out for passthrough was checked the same way in full — every block — at
//!   its first hand-out in this process, and is handed out again unchecked only while
//!   its inode, length, mtime and ctime are those it had then (any write through the
//!   filesystem changes the ctime). Anything else: the pair is deleted (counted
//!   `corrupt` if damaged) and the read is a miss.
//! - **Atomic.** `whole` and `whole.idx` are written as temporary files and renamed
//!   into place, `whole` first: `whole.idx` is the commit. The block files go only
//!   after it. A crash leaves blocks, or blocks and a `whole` without an index (the
//!   scan deletes that `whole`), or a committed pair and leftover blocks (the scan
//!   deletes those).
//! - **Within the cap.** The pair's length is reserved (evicting other versions,
//!   never this one's blocks) before it is written, so the cap holds while blocks
//!   and `whole` briefly coexist; a version that cannot get that room stays as
//!   blocks. The index holds the pair as one entry (block [`WHOLE`]), evicted whole.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::admin::ignore_missing;
use super::at_rest::{aad, Segment};
use super::format::{self, Corrupt, Identity};
use super::index::{Key, StoredBlock};
use super::read::agrees;
use super::writer::Cmd;
use super::{Shared, Stored, READERS};
use crate::memory::BlockPool;
use crate::seal::OVERHEAD;
use crate::source::StoreError;
use crate::version::{ContentVersion, Validator};

/// The block index that names a version's whole file in the index and in its
/// `whole.idx`.
pub(super) const WHOLE: u64 = u64::MAX;
pub(super) const WHOLE_FILE: &str = "whole";
pub(super) const WHOLE_IDX: &str = "whole.idx";
/// The largest file handed out for passthrough: checking it in full at its first
/// open costs one read of it (about 2 s for 1 GiB from a SATA SSD), which an open must
/// not wait much longer for; larger ones are read through the daemon, block by block.
pub(super) const LOCAL_FILE_MAX: u64 = 1 << 30;

/// What a passthrough hand-out remembers of a file it checked in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seal {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Seal {
    fn of(m: &fs::Metadata) -> Seal {
        Seal {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A checked `whole.idx` with its open `whole` (cached per version, see
/// [`Shared::tables`]).
pub(super) struct Table {
    validator: Option<Validator>,
    sums: Vec<u32>,
    idx: File,
    whole: File,
}

/// Indexes kept open at most; past that the cache starts over.
const TABLES: usize = 32;

/// Why a whole file cannot be used.
enum Unusable {
    /// Damaged: counted and deleted.
    Corrupt(&'static str),
    /// Sealed, and does not open as the block asked for: counted and deleted.
    Rejected(&'static str),
    /// Another version's, or not this mount's block size: deleted quietly.
    Other(&'static str),
    Io(io::Error),
}

impl From<io::Error> for Unusable {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return Unusable::Corrupt("whole file shorter than its index says");
        }
        Unusable::Io(e)
    }
}

fn corrupt(c: Corrupt) -> Unusable {
    Unusable::Corrupt(match c {
        Corrupt::Short => "index shorter than a header",
        Corrupt::Magic => "index magic",
        Corrupt::Version(_) => "index format version",
        Corrupt::Length => "index length",
        Corrupt::HeaderSum => "index header checksum",
        Corrupt::Field => "index field",
        Corrupt::DataSum => "index table checksum",
    })
}

/// The blocks of `version` at `block_size`.
pub(super) fn blocks(version: &ContentVersion, block_size: u64) -> u64 {
    version.size.div_ceil(block_size.max(1))
}

/// Would a version of this size be promoted?
pub(super) fn promotable(version: &ContentVersion, block_size: u64) -> bool {
    blocks(version, block_size) >= 2
}

impl Shared {
    fn whole_identity<'a>(&self, v: &'a ContentVersion) -> Identity<'a> {
        self.identity(v, WHOLE, self.cfg.block_size)
    }

    /// The length of `whole` for `version`: its bytes, and a seal per block if sealed.
    fn whole_len(&self, version: &ContentVersion) -> u64 {
        let seals = if self.sealer.is_some() {
            blocks(version, self.cfg.block_size) * OVERHEAD as u64
        } else {
            0
        };
        version.size + seals
    }

    /// The checked index and open whole file of `version`: from the cache, else read
    /// (`whole.idx` checked against the version, `whole` of the right length).
    fn table(&self, version: &ContentVersion, key: &Key) -> Result<Option<Arc<Table>>, Unusable> {
        if let Some(t) = self.tables.lock().get(key) {
            return Ok(Some(Arc::clone(t)));
        }
        let Some(table) = self.load_table(version, key)? else {
            return Ok(None);
        };
        let table = Arc::new(table);
        let id = StoredBlock {
            key: *key,
            index: WHOLE,
        };
        let current = {
            let ix = self.index.lock();
            ix.contains(&id) || ix.scanning()
        };
        if current {
            let mut tables = self.tables.lock();
            if tables.len() >= TABLES {
                tables.clear();
            }
            tables.insert(*key, Arc::clone(&table));
        }
        Ok(Some(table))
    }

    fn load_table(&self, version: &ContentVersion, key: &Key) -> Result<Option<Table>, Unusable> {
        let dir = self.version_dir(key);
        let n = blocks(version, self.cfg.block_size);
        let longest = (format::MAX_HEADER + OVERHEAD) as u64 + 4 * n;
        let mut raw = Vec::new();
        let idx = match self.fs.read(&dir.join(WHOLE_IDX)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        (&idx).take(longest + 1).read_to_end(&mut raw)?;
        let plain = self
            .unseal(&mut raw, version.id.as_bytes(), WHOLE, Segment::Index)
            .map_err(|_| Unusable::Rejected("index does not open"))?;
        let d = format::decode(plain).map_err(corrupt)?;
        if d.identity != self.whole_identity(version) {
            return Err(Unusable::Other("index of another version or block size"));
        }
        if d.data.len() as u64 != 4 * n {
            return Err(Unusable::Corrupt("index table length"));
        }
        agrees(d.validator.as_ref(), version).map_err(Unusable::Other)?;
        let sums = d
            .data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let validator = d.validator;
        let (whole, _) = self.open_whole(version, key)?;
        Ok(Some(Table {
            validator,
            sums,
            idx,
            whole,
        }))
    }

    /// `whole` of `version`, opened, if it has exactly the length it must have.
    fn open_whole(
        &self,
        version: &ContentVersion,
        key: &Key,
    ) -> Result<(File, fs::Metadata), Unusable> {
        let path = self.version_dir(key).join(WHOLE_FILE);
        let file = self.fs.read(&path)?;
        let meta = file.metadata()?;
        if meta.len() != self.whole_len(version) {
            return Err(Unusable::Corrupt("whole file length"));
        }
        Ok((file, meta))
    }

    /// Delete the pair of `version` if `why` says it is unusable; the read is a miss.
    fn refuse(&self, version: &ContentVersion, key: &Key, why: Unusable) -> Result<(), StoreError> {
        let id = StoredBlock {
            key: *key,
            index: WHOLE,
        };
        self.tables.lock().remove(key);
        match why {
            Unusable::Io(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Unusable::Io(e) => return Err(StoreError(format!("disk: whole file: {e}"))),
            Unusable::Corrupt(what) => {
                self.n.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(version = %version.id, what, "disk tier: damaged whole file deleted");
            }
            Unusable::Rejected(what) => {
                self.n.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(version = %version.id, what, "disk tier: sealed whole file that does not open deleted");
            }
            Unusable::Other(what) => {
                tracing::debug!(version = %version.id, what, "disk tier: whole file of another version");
            }
        }
        self.sealed.lock().remove(key);
        self.send(Cmd::Delete(id));
        Ok(())
    }

    /// A hit on the pair `key`, whose index is `idx`.
    fn used_whole(&self, key: &Key, idx: &File) {
        let id = StoredBlock {
            key: *key,
            index: WHOLE,
        };
        if let Ok(meta) = idx.metadata() {
            self.used(id, idx, &meta);
        }
    }

    /// Block `index` of `version` from its whole file, checked (blocking).
    pub(super) fn read_from_whole(
        &self,
        version: &ContentVersion,
        index: u64,
        pool: &BlockPool,
    ) -> Result<Option<Stored>, StoreError> {
        let key = self.key_of(version);
        let got = (|| {
            let Some(table) = self.table(version, &key)? else {
                return Ok(None);
            };
            agrees(table.validator.as_ref(), version).map_err(Unusable::Other)?;
            let bs = self.cfg.block_size;
            let Some(&sum) = table.sums.get(index as usize) else {
                return Ok(None);
            };
            let len = bs.min(version.size - index * bs) as usize;
            let mut b = pool.buffer(len);
            let mut buf = self.bufs.lock().pop().unwrap_or_default();
            let (read, good, copied) = match &self.sealer {
                None => {
                    buf.resize(len, 0);
                    let read = table.whole.read_exact_at(&mut buf, index * bs);
                    let good = read.is_ok() && crc32c::crc32c(&buf) == sum;
                    (read, good, good && b.extend_from_slice(&buf) == len)
                }
                Some(sealer) => {
                    buf.resize(len + OVERHEAD, 0);
                    let at = index * (bs + OVERHEAD as u64);
                    let read = table.whole.read_exact_at(&mut buf, at);
                    let aad = aad(
                        self.tenant.as_bytes(),
                        version.id.as_bytes(),
                        index,
                        bs,
                        Segment::Whole,
                    );
                    let plain = read
                        .is_ok()
                        .then(|| sealer.open_in_place(&aad, &mut buf).ok())
                        .flatten();
                    let good = plain.as_ref().is_some_and(|p| p.len() == len);
                    let copied = good && plain.is_some_and(|p| b.extend_from_slice(p) == len);
                    (read, good, copied)
                }
            };
            let mut bufs = self.bufs.lock();
            if bufs.len() < READERS {
                bufs.push(buf);
            }
            drop(bufs);
            read?;
            if !good {
                return Err(match self.sealer {
                    None => Unusable::Corrupt("block checksum"),
                    Some(_) => Unusable::Rejected("block does not open"),
                });
            }
            Ok(copied.then(|| ((b.freeze(), table.validator.clone()), table)))
        })();
        match got {
            Ok(Some((stored, table))) => {
                self.used_whole(&key, &table.idx);
                Ok(Some(stored))
            }
            Ok(None) => Ok(None),
            Err(why) => self.refuse(version, &key, why).map(|()| None),
        }
    }

    /// The whole file of `version`, checked, for passthrough (blocking; plain files
    /// only); seeds the version's pin from its index.
    pub(super) fn local_file(&self, version: &ContentVersion) -> Result<Option<File>, StoreError> {
        let key = self.key_of(version);
        let got = (|| {
            if self.sealer.is_some() {
                return Ok(None);
            }
            // Read afresh: an open is rare next to block reads, and checks all of it.
            let Some(table) = self.load_table(version, &key)? else {
                return Ok(None);
            };
            let (file, meta) = self.open_whole(version, &key)?;
            let seal = Seal::of(&meta);
            if self.sealed.lock().get(&key) != Some(&seal) {
                verify(&file, self.cfg.block_size, &table.sums)?;
                self.sealed.lock().insert(key, seal);
            }
            if let Some(v) = &table.validator {
                if !version.pin(v) {
                    return Err(Unusable::Other("another version"));
                }
            }
            Ok(Some((file, table)))
        })();
        match got {
            Ok(Some((file, table))) => {
                self.used_whole(&key, &table.idx);
                self.n.local_files.fetch_add(1, Ordering::Relaxed);
                Ok(Some(file))
            }
            Ok(None) => Ok(None),
            Err(why) => self.refuse(version, &key, why).map(|()| None),
        }
    }

    /// Writer thread: make `version` (every block on disk, indexed, all under
    /// `validator`) one whole file, if it has more than one block and room.
    pub(super) fn promote(&self, version: &ContentVersion, validator: Option<&Validator>) {
        let bs = self.cfg.block_size;
        let n = blocks(version, bs);
        let key = self.key_of(version);
        // Blocks are kept only at indexes below `n` (`put` checks each one's length),
        // so `n` entries and no whole file means every block.
        let ready = {
            let ix = self.index.lock();
            n >= 2 && !ix.contains(&StoredBlock { key, index: WHOLE }) && ix.count(&key) == n
        };
        if !ready || self.stopping() {
            return;
        }
        let who = self.whole_identity(version);
        let Ok(header) = format::encode(&who, validator, &vec![0; 4 * n as usize]) else {
            return;
        };
        let seal = if self.sealer.is_some() {
            OVERHEAD as u64
        } else {
            0
        };
        let total = self.whole_len(version) + header.len() as u64 + 4 * n + seal;
        let Some(headroom) = self.headroom() else {
            return;
        };
        let admitted = self.index.lock().admit_except(total, Some(headroom), &key);
        match admitted {
            Ok(victims) => self.evict(victims),
            Err(_) => return, // stays as blocks
        }
        let dir = self.version_dir(&key);
        let tmp = self.tmp_path(&dir, WHOLE_FILE);
        let tmp_idx = self.tmp_path(&dir, WHOLE_IDX);
        let built = self
            .build(version, &key, validator, &tmp, &tmp_idx)
            .and_then(|()| {
                self.fs.rename(&tmp, &dir.join(WHOLE_FILE))?;
                self.fs.rename(&tmp_idx, &dir.join(WHOLE_IDX))
            });
        self.tables.lock().remove(&key);
        let mut ix = self.index.lock();
        ix.release(total);
        if let Err(e) = built {
            drop(ix);
            let _ = self.fs.remove_file(&tmp);
            let _ = self.fs.remove_file(&tmp_idx);
            if !matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::Interrupted
            ) {
                self.n.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(version = %version.id, error = %e, "disk tier: whole file not written");
            }
            return;
        }
        for index in 0..n {
            ix.remove(&StoredBlock { key, index });
        }
        ix.insert(StoredBlock { key, index: WHOLE }, total);
        drop(ix);
        for index in 0..n {
            self.unlink(&StoredBlock { key, index });
        }
        self.n.promotions.fetch_add(1, Ordering::Relaxed);
    }

    /// Write `tmp` (the blocks' bytes, each checked as a read would, and sealed
    /// again as a segment of the whole file if sealed) and `tmp_idx`.
    /// `InvalidData`: a block was not usable (it is deleted if damaged); `Interrupted`:
    /// the store is shutting down.
    fn build(
        &self,
        version: &ContentVersion,
        key: &Key,
        validator: Option<&Validator>,
        tmp: &Path,
        tmp_idx: &Path,
    ) -> io::Result<()> {
        let bs = self.cfg.block_size;
        let create = |p: &Path| self.fs.create_new(p);
        let mut out = create(tmp)?;
        let mut sums = Vec::new();
        let mut raw = Vec::new();
        let mut sealed = Vec::new();
        let id_bytes = version.id.as_bytes();
        for index in 0..blocks(version, bs) {
            if self.stopping() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let id = StoredBlock { key: *key, index };
            raw.clear();
            self.fs.read(&self.block_path(&id))?.read_to_end(&mut raw)?;
            let who = self.identity(version, index, bs);
            let damage = match self.unseal(&mut raw, id_bytes, index, Segment::Block) {
                Err(_) => Some((&self.n.rejected, "does not open")),
                Ok(plain) => match format::decode(plain) {
                    Ok(d) if d.matches(&who).is_ok() && d.validator.as_ref() == validator => {
                        sums.extend_from_slice(&crc32c::crc32c(d.data).to_le_bytes());
                        match &self.sealer {
                            None => out.write_all(d.data)?,
                            Some(s) => {
                                sealed.clear();
                                let aad = aad(
                                    self.tenant.as_bytes(),
                                    id_bytes,
                                    index,
                                    bs,
                                    Segment::Whole,
                                );
                                s.seal_append(&aad, d.data, &mut sealed);
                                out.write_all(&sealed)?;
                            }
                        }
                        continue;
                    }
                    Ok(_) => None,
                    Err(_) => Some((&self.n.corrupt, "damaged")),
                },
            };
            if let Some((counter, why)) = damage {
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(why, index, "disk tier: unusable block file deleted");
                self.index.lock().remove(&id);
                self.unlink(&id);
            }
            return Err(io::ErrorKind::InvalidData.into());
        }
        drop(out);
        let who = self.whole_identity(version);
        let mut idx = format::encode(&who, validator, &sums)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        idx.extend_from_slice(&sums);
        let idx = self.seal_file(idx, id_bytes, WHOLE, Segment::Index);
        create(tmp_idx)?.write_all(&idx)
    }

    /// Remove the pair (index first: it is the commit).
    pub(super) fn unlink_whole(&self, key: &Key) -> io::Result<()> {
        let dir = self.version_dir(key);
        self.sealed.lock().remove(key);
        self.tables.lock().remove(key);
        ignore_missing(self.fs.remove_file(&dir.join(WHOLE_IDX)))?;
        ignore_missing(self.fs.remove_file(&dir.join(WHOLE_FILE)))
    }
}

/// Check every block of `file` against `sums`, on up to two threads.
fn verify(file: &File, block_size: u64, sums: &[u32]) -> Result<(), Unusable> {
    let len = file.metadata()?.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 2);
    let bad = std::thread::scope(|scope| {
        let parts: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || -> Result<(), Unusable> {
                    let mut buf = vec![0u8; block_size as usize];
                    for (i, &sum) in sums.iter().enumerate().skip(k).step_by(threads) {
                        let start = i as u64 * block_size;
                        let n = block_size.min(len.saturating_sub(start)) as usize;
                        file.read_exact_at(&mut buf[..n], start)?;
                        if crc32c::crc32c(&buf[..n]) != sum {
                            return Err(Unusable::Corrupt("block checksum"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        parts
            .into_iter()
            .map(|p| p.join().unwrap_or(Err(Unusable::Corrupt("check failed"))))
            .find(Result::is_err)
    });
    bad.unwrap_or(Ok(()))
}
