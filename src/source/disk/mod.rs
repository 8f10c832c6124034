//! The disk tier: a [`BlockStore`] keeping content blocks in files below the memory
//! cache (memory → disk → API, composed with [`super::Tiered`]), so a block fetched
//! once costs no API request again, across remounts, while it fits.
//!
//! Layout, under a root (default [`default_root`]):
//! ```text
//! <root>/CACHEDIR.TAG                                   marks the root as a cache
//! <root>/<tenant hex>/lock                              flock'ed by the one store using it
//! <root>/<tenant hex>/stamp                             the key id and mode of what follows
//! <root>/<tenant hex>/catalog/                          saved catalog days (`catalog`)
//! <root>/<tenant hex>/v2/<g[..2]>/<g>/<key hex>/<i>     block i of one content version
//! <root>/<tenant hex>/v2/<g[..2]>/<g>/<key hex>/whole[.idx]  or all of it, as one file
//! ```
//! where `g` is the keyed one-way name of the interaction's guid
//! ([`crate::seal::RootKey::name`]): one directory per interaction, so
//! [`DiskStore::erase_guid`] removes every version of every content item of it (even
//! ones no catalog knows) with one `remove_dir_all`; one per content version
//! ([`ContentKey`]) below it, so a changed or deleted version goes with another
//! ([`DiskStore::purge`]). Directories are created 0700, files 0600. The root and the
//! tenant's directory must be private (a directory, not a link, owned by the euid,
//! not writable by group or others: [`crate::safe_fs::check`]) or the store does not
//! open ([`DiskError::Unsafe`]); every operation below the tenant's directory goes
//! through its descriptor ([`crate::safe_fs::Anchor`]), so a symbolic link anywhere
//! in the tree is never followed (the scan removes one as a link). A block file is
//! a header naming exactly which block it is, then the bytes (see `format`); under
//! [`DiskEncryption::Aead`] (the default) the whole of it is sealed, bound to the
//! block asked for (see `at_rest`). A version of more than one block held completely
//! is made one file with an index (see `whole`): plain under
//! [`DiskEncryption::None`], which the kernel can read itself
//! ([`BlockStore::local_file`], FUSE passthrough); sealed block by block under
//! `Aead`, read through vccfs. A tree kept under another key or mode is discarded at
//! open (crypto-erasure), as is the old plaintext `v1` tree; files unused for
//! [`DiskConfig::max_age`] are dropped.
//!
//! Invariants:
//! - **Never a wrong byte.** `get` serves a file only if it opens under the disk key
//!   bound to the block asked for (`Aead`; else it is counted `rejected`), is intact
//!   (its length is its header's, the header and data CRC32C match), names the asking block exactly
//!   (tenant, content key, guid, content key string, size, `lastModified`, index,
//!   block size, length) and its validator agrees with the version's pin. Anything
//!   else is a miss, and the file is deleted (a damaged one is counted `corrupt`).
//!   Any damaged byte or truncation of a file is caught, deterministically.
//! - **Nothing waits for the disk.** `put` only queues (a write-behind queue bounded in
//!   bytes; when full the block is dropped and counted: its reader has it already).
//!   Backpressure comes first: before handing over a fetched run, [`super::Tiered`]
//!   awaits `room`, which waits (at most [`ROOM_WAIT`]) while the writer drains a full
//!   queue, so a fetch faster than the disk slows read-ahead instead of losing blocks;
//!   `get` reads on the blocking pool (at most [`READERS`] at once), never on a runtime
//!   worker; `open` returns at once, the tree being scanned by a thread of its own.
//! - **One writer.** One thread makes every change to the tree: writes (a `.tmp-`
//!   file in the block's directory renamed into place; no fsync, the checksums catch
//!   a torn file), deletions, evictions, purges. Its decisions about space hold until
//!   it acts on them, so no file locks are needed; the `lock` file only keeps two
//!   stores (two mounts) out of one directory ([`DiskError::Locked`]).
//! - **Never over the cap.** The usage (file lengths) is at most the cap:
//!   `max_bytes`, lowered to the usage of the moment when a write finds the disk full
//!   (`ENOSPC`, `EDQUOT`); and a write never takes the filesystem below `min_free`.
//!   Room for a block is reserved before it is written, least recently used blocks
//!   deleted first (a `get` hit is a use); the block being written is the only
//!   transient excess the tree ever sees, and it was reserved. The writer admits
//!   nothing until the start-up scan has counted what is there, then trims to the
//!   cap.
//! - **Restarts keep order.** The scan rebuilds usage and LRU order (oldest mtime
//!   first; a hit refreshes an mtime older than [`TOUCH_AFTER`]), deletes temporary
//!   files of earlier processes, stray files and empty directories. Hits on blocks
//!   it has not reached yet count as uses when it lands; nothing is counted twice.

mod admin;
mod at_rest;
mod config;
mod format;
mod index;
mod read;
mod scan;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_paths;
#[cfg(test)]
mod tests_seal;
#[cfg(test)]
mod tests_space;
#[cfg(test)]
mod tests_whole;
mod whole;
mod writer;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::{Condvar, Mutex};

use self::format::Identity;
use self::index::{Index, Key, StoredBlock};
use self::writer::{Cmd, Queue};
use super::{BlockRequest, BlockStore, Fetched, StoreError};
use crate::version::{ContentKey, ContentVersion, TenantId};

pub use admin::{clear, default_root, usage};
#[allow(unused_imports)] // the rest of the crate names what it needs
pub use config::{
    DiskConfig, DiskEncryption, DiskError, DiskStats, FreeSpaceFn, FsSpace, MinFree,
    DEFAULT_MAX_AGE, EXPIRE_EVERY,
};

use crate::safe_fs::{self, Anchor};
use crate::seal::{RootKey, Sealer};
use config::{io_error, Counters};

type Stored = super::tiered::Stored;

/// The longest a fetch waits for room in the write-behind queue before its blocks are
/// dropped (and counted) instead.
pub const ROOM_WAIT: Duration = Duration::from_secs(2);
/// Block files read at once (each on a blocking-pool thread).
pub const READERS: usize = 4;
/// A hit on a file whose mtime is older than this sets it to now (the LRU order the
/// next start-up scan rebuilds).
pub const TOUCH_AFTER: Duration = Duration::from_secs(60);

/// What the store's threads share.
struct Shared {
    tenant: TenantId,
    /// `<root>/<tenant>`.
    dir: PathBuf,
    /// `<root>/<tenant>`, held open: every file operation goes through it.
    fs: Anchor,
    /// `<root>/<tenant>/v2`.
    tree: PathBuf,
    /// Names the guid directories.
    root: RootKey,
    /// The disk sealer, under [`DiskEncryption::Aead`].
    sealer: Option<Sealer>,
    /// `.tmp-<random>-`: this process's temporary files (the scan deletes others).
    tmp_prefix: String,
    cfg: DiskConfig,
    index: Mutex<Index>,
    queue: Mutex<Queue>,
    /// The writer waits here for work (and the scan).
    work: Condvar,
    /// [`DiskStore::flush`] waits here for an empty queue.
    idle: Condvar,
    /// Told whenever the writer takes a command off the queue (or stops): `room`
    /// waits here.
    drained: tokio::sync::Notify,
    n: Counters,
    readers: Arc<tokio::sync::Semaphore>,
    /// Read buffers, reused (at most [`READERS`]).
    bufs: Mutex<Vec<Vec<u8>>>,
    /// Whole files checked in full by this process, as they were then.
    sealed: Mutex<HashMap<Key, whole::Seal>>,
    /// Whole files' indexes opened and checked, with their open files (bounded).
    tables: Mutex<HashMap<Key, Arc<whole::Table>>>,
    /// The tree was set aside at open (another key or mode): the scan deletes it.
    set_aside: bool,
}

/// The disk tier (see the module essay).
pub struct DiskStore {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Holds `<dir>/lock`; dropped after the threads are joined.
    _lock: File,
}

impl DiskStore {
    /// Open (creating it) the store of `tenant` under `root`. Returns at once: the
    /// tree is scanned in the background. [`DiskError::Locked`] if another store
    /// holds it.
    pub fn open(
        root: &Path,
        tenant: TenantId,
        cfg: DiskConfig,
    ) -> Result<Arc<DiskStore>, DiskError> {
        if cfg.block_size == 0 {
            return Err(DiskError::Config("block size 0"));
        }
        let root = Anchor::create(root)?;
        if let Err(e) = at_rest::tag_cache_dir(&root) {
            tracing::warn!(root = %root.path().display(), error = %e, "disk tier: no CACHEDIR.TAG");
        }
        let name = tenant.to_string();
        let dir = root.path().join(&name);
        let fs = Anchor::new(dir.clone(), safe_fs::private_subdir(&root, &name, &dir)?);
        drop(root);
        let lock = admin::lock(&fs)
            .map_err(io_error("lock", &dir))?
            .ok_or_else(|| DiskError::Locked { dir: dir.clone() })?;
        let set_aside = at_rest::check_stamp(&fs, admin::TREE, cfg.root.id(), cfg.encryption)
            .map_err(io_error("check the key stamp of", &dir))?;
        if set_aside {
            tracing::info!(dir = %dir.display(), key = %cfg.root.id(), mode = cfg.encryption.as_str(),
                "disk tier: the cache was kept under another key or encryption mode: discarded (crypto-erasure)");
        }
        let tree = dir.join(admin::TREE);
        for sub in [&tree, &dir.join(at_rest::CATALOG)] {
            if fs.entry(sub).is_ok_and(|e| !e.is_dir()) {
                // A link (or a file) where a directory goes: removed as such, never followed.
                admin::ignore_missing(fs.remove_file(sub)).map_err(io_error("remove", sub))?;
            }
        }
        fs.make_dirs(&tree).map_err(io_error("create", &tree))?;
        let sealer = (cfg.encryption == DiskEncryption::Aead)
            .then(|| cfg.root.sealer(crate::seal::Purpose::Disk));
        let shared = Arc::new(Shared {
            tenant,
            dir,
            fs,
            tree,
            root: cfg.root.clone(),
            sealer,
            set_aside,
            tables: Mutex::default(),
            tmp_prefix: format!(".tmp-{:016x}-", rand::random::<u64>()),
            index: Mutex::new(Index::new(cfg.max_bytes)),
            cfg,
            queue: Mutex::default(),
            work: Condvar::new(),
            idle: Condvar::new(),
            drained: tokio::sync::Notify::new(),
            n: Counters::default(),
            readers: Arc::new(tokio::sync::Semaphore::new(READERS)),
            bufs: Mutex::new(Vec::new()),
            sealed: Mutex::default(),
        });
        let store = Arc::new(DiskStore {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
            _lock: lock,
        });
        for (name, body) in [
            ("vccfs-disk-scan", scan::run as fn(&Shared)),
            ("vccfs-disk-put", writer::run),
        ] {
            let s = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || body(&s))
                .map_err(io_error("start a thread for", &shared.dir))?;
            store.threads.lock().push(handle);
        }
        Ok(store)
    }

    /// `<root>/<tenant>`.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn stats(&self) -> DiskStats {
        let n = &self.shared.n;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let ix = self.shared.index.lock();
        DiskStats {
            used_bytes: ix.used(),
            files: ix.files(),
            cap_bytes: ix.cap(),
            hits: get(&n.hits),
            misses: get(&n.misses),
            corrupt: get(&n.corrupt),
            writes: get(&n.writes),
            dropped_writes: get(&n.dropped_writes),
            evictions: get(&n.evictions),
            write_errors: get(&n.write_errors),
            promotions: get(&n.promotions),
            local_files: get(&n.local_files),
            rejected: get(&n.rejected),
            crypto_erased: get(&n.crypto_erased),
            legacy_removed: get(&n.legacy_removed),
            expired: get(&n.expired),
            erased: get(&n.erased),
        }
    }

    /// Does the disk hold every block of `version` (as far as the index knows)?
    pub fn holds(&self, version: &ContentVersion) -> bool {
        let blocks = whole::blocks(version, self.shared.cfg.block_size);
        let key = self.shared.key_of(version);
        let ix = self.shared.index.lock();
        ix.contains(&StoredBlock {
            key,
            index: whole::WHOLE,
        }) || (0..blocks).all(|index| ix.contains(&StoredBlock { key, index }))
    }

    /// Delete every block of the version `key` (it changed, or is gone). Queued: done
    /// in order with the writes before it.
    pub fn purge(&self, key: ContentKey) {
        self.shared.send(Cmd::Purge(*key.as_bytes()));
    }

    /// Delete every version of every content item of the interaction `guid` (those no
    /// catalog knows too), through the writer, in order with what was queued before;
    /// returns when done, with the number of files removed (0 if the store is
    /// shutting down). Blocking: not for a runtime worker (use `spawn_blocking`).
    pub fn erase_guid(&self, guid: &str) -> u64 {
        let (done, result) = std::sync::mpsc::channel();
        self.shared.send(Cmd::Erase {
            guid: self.shared.guid_name(guid),
            done,
        });
        result.recv().unwrap_or(0)
    }

    /// Block until the start-up scan is done and everything queued so far is on disk
    /// (for tests and a clean shutdown). Blocking: not for a runtime worker.
    pub fn flush(&self) {
        let s = &self.shared;
        let mut q = s.queue.lock();
        while (!q.scan_done || q.busy || !q.cmds.is_empty()) && !q.gone {
            s.idle.wait(&mut q);
        }
    }
}

impl Drop for DiskStore {
    /// Writes what is queued (unless the scan had not finished), then stops the
    /// threads, then releases the lock.
    fn drop(&mut self) {
        self.shared.queue.lock().shutdown = true;
        self.shared.work.notify_all();
        for t in self.threads.get_mut().drain(..) {
            let _ = t.join();
        }
    }
}

impl fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskStore")
            .field("dir", &self.shared.dir)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.queue.lock().shutdown
    }

    /// Queue `cmd` for the writer (not bounded: only writes carry bytes).
    fn send(&self, cmd: Cmd) {
        let mut q = self.queue.lock();
        if q.shutdown {
            return;
        }
        q.bytes += cmd.bytes();
        q.cmds.push_back(cmd);
        drop(q);
        self.work.notify_one();
    }

    /// The keyed name of `guid`'s directory, as bytes.
    fn guid_name(&self, guid: &str) -> [u8; 16] {
        admin::parse_hex::<16>(&self.root.name(guid.as_bytes())).unwrap_or_default()
    }

    /// The store's name of `version`: its guid's name, then its content key.
    fn key_of(&self, version: &ContentVersion) -> Key {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.guid_name(&version.guid));
        key[16..].copy_from_slice(version.id.as_bytes());
        key
    }

    /// `<tree>/<g[..2]>/<g>`.
    fn guid_dir(&self, g: &[u8]) -> PathBuf {
        let hex = admin::hex(g);
        self.tree.join(&hex[..2]).join(hex)
    }

    fn version_dir(&self, key: &Key) -> PathBuf {
        self.guid_dir(&key[..16]).join(admin::hex(&key[16..]))
    }

    fn block_path(&self, id: &StoredBlock) -> PathBuf {
        let dir = self.version_dir(&id.key);
        match id.index {
            whole::WHOLE => dir.join(whole::WHOLE_FILE),
            index => dir.join(index.to_string()),
        }
    }

    fn identity<'a>(&self, v: &'a ContentVersion, index: u64, block_size: u64) -> Identity<'a> {
        Identity {
            tenant: *self.tenant.as_bytes(),
            id: *v.id.as_bytes(),
            guid: &v.guid,
            key: &v.key,
            size: v.size,
            last_modified: v.last_modified.map(|t| t.unix_timestamp_nanos()),
            index,
            block_size,
        }
    }
}

impl BlockStore for DiskStore {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn get(
        &self,
        version: &Arc<ContentVersion>,
        index: u64,
        req: &BlockRequest,
    ) -> BoxFuture<'static, Result<Option<Stored>, StoreError>> {
        let s = Arc::clone(&self.shared);
        let version = Arc::clone(version);
        let block_size = req.block_size;
        let pool = req.pool.clone();
        async move {
            let got = if block_size != s.cfg.block_size {
                Ok(None)
            } else {
                let permit = Arc::clone(&s.readers)
                    .acquire_owned()
                    .await
                    .map_err(|e| StoreError(format!("disk: {e}")))?;
                let reader = Arc::clone(&s);
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    reader.read_block(&version, index, block_size, &pool)
                })
                .await
                .map_err(|e| StoreError(format!("disk: read task: {e}")))?
            };
            let counter = match got {
                Ok(Some(_)) => &s.n.hits,
                _ => &s.n.misses,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            got
        }
        .boxed()
    }

    fn put(&self, version: &Arc<ContentVersion>, first: u64, fetched: &Fetched) {
        let s = &self.shared;
        if version
            .pinned()
            .is_some_and(|pin| fetched.validator.as_ref() != Some(pin))
        {
            return; // another version's bytes
        }
        let mut queued = false;
        let mut q = s.queue.lock();
        for (index, data) in (first..).zip(&fetched.blocks) {
            let who = s.identity(version, index, s.cfg.block_size);
            if data.is_empty() || format::block_len(&who) != Some(data.len() as u64) {
                continue; // not a block of this size: never served, so never kept
            }
            let len = data.len() as u64;
            if q.shutdown || q.bytes + len > s.cfg.queue_bytes {
                s.n.dropped_writes.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            q.bytes += len;
            q.cmds.push_back(Cmd::Write {
                version: Arc::clone(version),
                index,
                data: data.clone(),
                validator: fetched.validator.clone(),
            });
            queued = true;
        }
        drop(q);
        if queued {
            s.work.notify_one();
        }
    }

    /// Waits (at most [`ROOM_WAIT`]) while the queue is too full for `bytes` and the
    /// writer is draining it; at once if it is not writing yet (the start-up scan).
    fn room(&self, bytes: u64) -> BoxFuture<'static, ()> {
        let s = Arc::clone(&self.shared);
        async move {
            let deadline = tokio::time::Instant::now() + ROOM_WAIT;
            loop {
                let drained = s.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                {
                    let q = s.queue.lock();
                    let fits = q.bytes + bytes <= s.cfg.queue_bytes;
                    if fits || bytes > s.cfg.queue_bytes || !q.scan_done || q.shutdown || q.gone {
                        return;
                    }
                }
                if tokio::time::timeout_at(deadline, drained).await.is_err() {
                    return;
                }
            }
        }
        .boxed()
    }

    /// The version's whole file, checked in full (see `whole`), on the blocking pool;
    /// at once `None` when the index knows of none or it is larger than
    /// [`whole::LOCAL_FILE_MAX`].
    fn local_file(&self, version: &Arc<ContentVersion>) -> BoxFuture<'static, Option<File>> {
        let s = Arc::clone(&self.shared);
        if s.sealer.is_some() {
            return futures::future::ready(None).boxed(); // sealed: not for the kernel
        }
        let id = StoredBlock {
            key: s.key_of(version),
            index: whole::WHOLE,
        };
        let known = {
            let ix = s.index.lock();
            ix.contains(&id) || ix.scanning()
        };
        let fits = version.size <= whole::LOCAL_FILE_MAX;
        if !known || !fits || !whole::promotable(version, s.cfg.block_size) {
            return futures::future::ready(None).boxed();
        }
        let version = Arc::clone(version);
        async move {
            let got = tokio::task::spawn_blocking(move || s.local_file(&version)).await;
            match got {
                Ok(Ok(file)) => file,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e.0, "disk tier: no local file");
                    None
                }
                Err(_) => None,
            }
        }
        .boxed()
    }

    fn discard(&self, version: &Arc<ContentVersion>, index: u64) {
        self.shared.send(Cmd::Delete(StoredBlock {
            key: self.shared.key_of(version),
            index,
        }));
    }
}
