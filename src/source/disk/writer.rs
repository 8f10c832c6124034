//! The write-behind queue and the one thread that changes the tree: it writes blocks
//! (temporary file, then rename), deletes refused, discarded, evicted and purged
//! ones, and keeps the index in step. Being the only writer, it needs no file locks:
//! what it asks the index (room for a block, the blocks to delete for it) stays true
//! until it acts on it. It also erases interactions ([`Cmd::Erase`]) and, at start
//! and every `EXPIRE_EVERY`, drops what was unused longer than the maximum age
//! (blocks and whole files by their last use, catalog days by their mtime).
//! Every change goes through the tenant directory's descriptor (`Shared::fs`): never
//! through a symbolic link; temporary files have random names and are created
//! `O_EXCL|O_NOFOLLOW`.

use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::admin::ignore_missing;
use super::at_rest::{self, Segment};
use super::format;
use super::index::{Key, NoRoom, StoredBlock};
use super::whole::{promotable, WHOLE, WHOLE_FILE, WHOLE_IDX};
use super::Shared;
use crate::version::{ContentVersion, Validator};

/// Work for the writer thread.
pub(super) enum Cmd {
    /// Keep block `index` of `version`.
    Write {
        version: Arc<ContentVersion>,
        index: u64,
        data: Bytes,
        validator: Option<Validator>,
    },
    /// Delete a block (refused by a reader, or discarded).
    Delete(StoredBlock),
    /// Delete the directory of every version of this content key.
    Purge([u8; 16]),
    /// Delete every version of the interaction whose guid has this name; tell `done`
    /// the files removed.
    Erase {
        guid: [u8; 16],
        done: std::sync::mpsc::Sender<u64>,
    },
    /// A reader found an intact block the index does not know: index it.
    Adopt(StoredBlock),
}

impl Cmd {
    /// Bytes this command holds against the queue's bound.
    pub fn bytes(&self) -> u64 {
        match self {
            Cmd::Write { data, .. } => data.len() as u64,
            _ => 0,
        }
    }
}

/// The queue and the writer's state, under one lock.
#[derive(Default)]
pub(super) struct Queue {
    pub cmds: VecDeque<Cmd>,
    /// Bytes of the queued writes.
    pub bytes: u64,
    /// The writer is carrying out a command.
    pub busy: bool,
    /// The start-up scan has finished (the writer waits for it).
    pub scan_done: bool,
    /// ... without covering the whole tree (the store is shutting down).
    pub scan_aborted: bool,
    pub shutdown: bool,
    /// The writer thread has exited.
    pub gone: bool,
}

/// Marks the writer gone when it exits, however it exits.
struct Gone<'a>(&'a Shared);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.0.queue.lock().gone = true;
        self.0.idle.notify_all();
        self.0.drained.notify_waiters();
    }
}

/// The writer thread: waits for the scan, trims to the cap, then serves the queue
/// until shutdown (draining it first).
pub(super) fn run(s: &Shared) {
    let _gone = Gone(s);
    {
        let mut q = s.queue.lock();
        while !q.scan_done {
            s.work.wait(&mut q);
        }
        if q.scan_aborted {
            q.cmds.clear();
            q.bytes = 0;
            return;
        }
    }
    s.trim();
    s.expire();
    let mut next_expiry = Instant::now() + s.expire_every();
    loop {
        let cmd = {
            let mut q = s.queue.lock();
            q.busy = false;
            loop {
                if let Some(cmd) = q.cmds.pop_front() {
                    q.bytes -= cmd.bytes();
                    q.busy = true;
                    s.drained.notify_waiters();
                    break Some(cmd);
                }
                s.idle.notify_all();
                if q.shutdown {
                    return;
                }
                let now = Instant::now();
                if now >= next_expiry {
                    q.busy = true;
                    break None;
                }
                s.work.wait_for(&mut q, next_expiry - now);
            }
        };
        match cmd {
            Some(cmd) => s.execute(cmd),
            None => {
                s.expire();
                next_expiry = Instant::now() + s.expire_every();
            }
        }
    }
}

fn disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Shared {
    fn execute(&self, cmd: Cmd) {
        match cmd {
            Cmd::Write {
                version,
                index,
                data,
                validator,
            } => self.write(&version, index, &data, validator.as_ref()),
            Cmd::Delete(id) => {
                self.index.lock().remove(&id);
                self.unlink(&id);
                self.tidy(&id.key);
            }
            Cmd::Purge(content) => {
                let keys = self.index.lock().keys_where(|k| k[16..] == content);
                for key in keys {
                    self.index.lock().remove_key(&key);
                    self.sealed.lock().remove(&key);
                    self.tables.lock().remove(&key);
                    let dir = self.version_dir(&key);
                    if let Err(e) = self.fs.remove_all(&dir) {
                        self.n.write_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(dir = %dir.display(), error = %e, "disk tier: purge failed");
                    }
                    self.tidy(&key);
                }
            }
            Cmd::Erase { guid, done } => {
                let _ = done.send(self.erase(&guid));
            }
            Cmd::Adopt(id) => {
                if self.index.lock().contains(&id) {
                    return;
                }
                let len = |p: PathBuf| self.fs.entry(&p).ok().filter(|e| e.is_file());
                let found = if id.index == WHOLE {
                    let dir = self.version_dir(&id.key);
                    len(dir.join(WHOLE_FILE))
                        .zip(len(dir.join(WHOLE_IDX)))
                        .map(|(a, b)| a.len + b.len)
                } else {
                    len(self.block_path(&id)).map(|e| e.len)
                };
                if let Some(len) = found {
                    self.index.lock().insert(id, len);
                    self.trim();
                }
            }
        }
    }

    fn write(&self, version: &ContentVersion, index: u64, data: &[u8], v: Option<&Validator>) {
        let id = StoredBlock {
            key: self.key_of(version),
            index,
        };
        let who = self.identity(version, index, self.cfg.block_size);
        let file = match format::encode(&who, v, data) {
            Ok(mut plain) => {
                if self.sealer.is_some() {
                    plain.extend_from_slice(data);
                    let sealed =
                        self.seal_file(plain, version.id.as_bytes(), index, Segment::Block);
                    (sealed, None)
                } else {
                    (plain, Some(data))
                }
            }
            Err(e) => {
                self.n.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "disk tier: block not kept");
                return;
            }
        };
        let size = (file.0.len() + file.1.map_or(0, <[u8]>::len)) as u64;
        let whole = StoredBlock {
            key: id.key,
            index: WHOLE,
        };
        if self.index.lock().contains(&whole) {
            return; // held whole already
        }
        // An older copy goes first, so the disk never holds both.
        if self.index.lock().remove(&id).is_some() {
            self.unlink(&id);
        }
        let Some(headroom) = self.headroom() else {
            return;
        };
        let admitted = self.index.lock().admit(size, Some(headroom));
        match admitted {
            Ok(victims) => self.evict(victims),
            Err(why) => {
                self.n.dropped_writes.fetch_add(1, Ordering::Relaxed);
                let why = match why {
                    NoRoom::Cap => "larger than the cap",
                    NoRoom::Disk => "the filesystem is short of its minimum free space",
                };
                tracing::debug!(why, "disk tier: block not kept");
                return;
            }
        }
        match self.write_file(&id, &file.0, file.1.unwrap_or_default()) {
            Ok(()) => {
                self.index.lock().commit(id, size);
                self.n.writes.fetch_add(1, Ordering::Relaxed);
                if self.cfg.whole_files && promotable(version, self.cfg.block_size) {
                    self.promote(version, v);
                }
            }
            Err(e) => {
                let full = disk_full(&e);
                {
                    let mut ix = self.index.lock();
                    ix.release(size);
                    if full {
                        ix.disk_full();
                    }
                }
                if full {
                    self.n.dropped_writes.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(cap = self.index.lock().cap(), error = %e,
                        "disk tier: disk full, cap lowered to the current usage");
                } else {
                    self.n.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "disk tier: write failed");
                }
                self.tidy(&id.key);
            }
        }
    }

    /// How much the filesystem can still take before it is under its minimum free
    /// space; `None` (counted) when it cannot be read: then nothing is written.
    pub(super) fn headroom(&self) -> Option<u64> {
        match (self.cfg.free_space)(&self.dir) {
            Ok(space) => Some(
                space
                    .available
                    .saturating_sub(self.cfg.min_free.bytes(space.total)),
            ),
            Err(e) => {
                self.n.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "disk tier: no free-space reading, nothing written");
                None
            }
        }
    }

    /// Write the block file for `id` (`header` then `data`): a temporary file in its
    /// directory, renamed into place (no fsync: a torn file is caught by its
    /// checksums, or does not open).
    fn write_file(&self, id: &StoredBlock, header: &[u8], data: &[u8]) -> io::Result<()> {
        let dir = self.version_dir(&id.key);
        let tmp = self.tmp_path(&dir, &id.index.to_string());
        let mut file: File = match self.fs.create_new(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.fs.make_dirs(&dir)?;
                self.fs.create_new(&tmp)?
            }
            r => r?,
        };
        let written = (|| {
            #[cfg(test)]
            if let Some(errno) = self.cfg.write_fault.as_ref().and_then(|f| f(id.index)) {
                return Err(io::Error::from_raw_os_error(errno));
            }
            file.write_all(header)?;
            file.write_all(data)?;
            drop(file);
            self.fs.rename(&tmp, &self.block_path(id))
        })();
        if written.is_err() {
            let _ = self.fs.remove_file(&tmp);
        }
        written
    }

    /// A new temporary file's path in `dir` for `name`: this process's prefix, then a
    /// random part (created `O_EXCL`: never an existing file or link).
    pub(super) fn tmp_path(&self, dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(
            "{}{:08x}-{name}",
            self.tmp_prefix,
            rand::random::<u32>()
        ))
    }

    /// Delete `victims` (already forgotten by the index).
    pub(super) fn evict(&self, victims: Vec<(StoredBlock, u64)>) {
        let mut keys = HashSet::new();
        for (id, _) in victims {
            self.unlink(&id);
            self.n.evictions.fetch_add(1, Ordering::Relaxed);
            keys.insert(id.key);
        }
        for key in keys {
            self.tidy(&key);
        }
    }

    /// Evict down to the cap.
    pub(super) fn trim(&self) {
        let victims = self.index.lock().trim();
        self.evict(victims);
    }

    pub(super) fn unlink(&self, id: &StoredBlock) {
        let path = self.block_path(id);
        let removed = if id.index == WHOLE {
            self.unlink_whole(&id.key)
        } else {
            ignore_missing(self.fs.remove_file(&path))
        };
        if let Err(e) = removed {
            self.n.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %path.display(), error = %e, "disk tier: delete failed");
        }
    }

    /// Remove the directory of `key` (and its guid's and prefix directories) once the
    /// index holds no block of it; a directory that is not empty stays.
    fn tidy(&self, key: &Key) {
        if self.index.lock().holds_key(key) {
            return;
        }
        let mut dir = self.version_dir(key);
        for _ in 0..3 {
            if self.fs.remove_dir(&dir).is_err() {
                return;
            }
            if !dir.pop() {
                return;
            }
        }
    }

    /// Delete every version of the interaction named `guid`: its directory, whatever
    /// it holds; the files removed.
    fn erase(&self, guid: &[u8; 16]) -> u64 {
        let keys = self.index.lock().keys_where(|k| k[..16] == guid[..]);
        for key in &keys {
            self.index.lock().remove_key(key);
            self.sealed.lock().remove(key);
            self.tables.lock().remove(key);
        }
        let dir = self.guid_dir(guid);
        // A whole file may be open through FUSE passthrough, where the kernel reads it
        // itself: emptied first, an open handle reads nothing more of it (an unlinked
        // file would still be read in full).
        for version in self.fs.read_dir(&dir).into_iter().flatten() {
            let whole = version.path().join(WHOLE_FILE);
            if let Ok(f) = self.fs.open(&whole, rustix::fs::OFlags::WRONLY) {
                let _ = f.set_len(0);
            }
        }
        let files = at_rest::remove_all(&self.fs, &dir);
        if let Some(prefix) = dir.parent() {
            let _ = self.fs.remove_dir(prefix);
        }
        self.n.erased.fetch_add(files, Ordering::Relaxed);
        files
    }

    fn expire_every(&self) -> std::time::Duration {
        #[cfg(test)]
        return self.cfg.expire_every;
        #[cfg(not(test))]
        super::EXPIRE_EVERY
    }

    /// Drop blocks, whole files and catalog days unused longer than the maximum age.
    pub(super) fn expire(&self) {
        let Some(before) = SystemTime::now().checked_sub(self.cfg.max_age) else {
            return;
        };
        let victims = self.index.lock().expire(before);
        let mut keys = HashSet::new();
        let mut files = 0;
        for (id, _) in victims {
            self.unlink(&id);
            files += if id.index == WHOLE { 2 } else { 1 };
            keys.insert(id.key);
        }
        for key in keys {
            self.tidy(&key);
        }
        let days = self.expire_files(&self.dir.join(at_rest::CATALOG), before);
        if files + days > 0 {
            tracing::info!(
                files,
                days,
                "disk tier: dropped what was unused longer than the maximum age"
            );
        }
        self.n.expired.fetch_add(files + days, Ordering::Relaxed);
    }

    /// Delete the regular files directly in `dir` last modified before `before`; how
    /// many.
    fn expire_files(&self, dir: &Path, before: SystemTime) -> u64 {
        let Ok(entries) = self.fs.read_dir(dir) else {
            return 0;
        };
        let mut n = 0;
        for e in entries {
            if e.is_file() && e.modified < before && self.fs.remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }
}
