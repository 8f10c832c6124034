//! The disk tier's settings, errors and counters.
//!
//! Invariants: a [`DiskConfig`] always carries the tenant's [`RootKey`] (there is no
//! default key: [`DiskConfig::new`] takes it); under [`DiskEncryption::Aead`] every
//! file the store writes is sealed with the key's disk sealer, under
//! [`DiskEncryption::None`] the key still names the guid directories and the key id.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use super::admin;
use crate::seal::RootKey;

/// How block files are kept at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DiskEncryption {
    /// Every file sealed (AES-256-GCM) under the tenant's disk key, bound to the block
    /// it holds: a reader of the directory learns nothing of the content, a writer
    /// can only make reads miss. No FUSE passthrough.
    #[default]
    Aead,
    /// Plain files checked by CRC32C (for a volume encrypted by the site: dm-crypt,
    /// fscrypt); whole files go to the kernel by FUSE passthrough.
    None,
}

impl DiskEncryption {
    /// Its name, as the flag spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskEncryption::Aead => "aead",
            DiskEncryption::None => "none",
        }
    }
}

/// Unused files (blocks, whole files, catalog days) are dropped after this long by
/// default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often the writer drops what is older than the maximum age.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// Space on a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSpace {
    /// Bytes we may still write (`f_bavail`).
    pub available: u64,
    /// The filesystem's size.
    pub total: u64,
}

/// Reads the space of the filesystem holding a directory (`statvfs` by default;
/// injectable for tests).
pub type FreeSpaceFn = Arc<dyn Fn(&Path) -> io::Result<FsSpace> + Send + Sync>;

/// Free space the store never writes into.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    /// A number of bytes (tests).
    #[cfg(test)]
    Bytes(u64),
    /// Percent of the filesystem's size.
    Percent(f64),
}

impl MinFree {
    pub fn bytes(&self, total: u64) -> u64 {
        match *self {
            #[cfg(test)]
            MinFree::Bytes(b) => b,
            MinFree::Percent(p) => (total as f64 * p.clamp(0.0, 100.0) / 100.0) as u64,
        }
    }
}

/// How a [`DiskStore`] behaves.
#[derive(Clone)]
pub struct DiskConfig {
    /// The cap on the bytes of block files (default 10 GiB).
    pub max_bytes: u64,
    /// Never write into the last of the filesystem (default 5% of its size).
    pub min_free: MinFree,
    /// The write-behind queue's bound, in bytes of queued blocks (default 64 MiB).
    pub queue_bytes: u64,
    /// The block size of the mount (its `--block-size`; default 256 KiB): blocks of
    /// another size are neither kept nor served.
    pub block_size: u64,
    /// Make versions held completely one whole file each (see `whole`; default on).
    pub whole_files: bool,
    /// How free space is read (default `statvfs`).
    pub free_space: FreeSpaceFn,
    /// Sealed (default) or plain files.
    pub encryption: DiskEncryption,
    /// The tenant's root key: the disk sealer, the guid directories' names, the key
    /// id recorded beside the tree (a change of it discards the tree).
    pub root: RootKey,
    /// Files unused (mtime) longer than this are dropped (default 30 days).
    pub max_age: Duration,
    /// Tests: how often the writer drops expired files (else [`EXPIRE_EVERY`]).
    #[cfg(test)]
    pub(crate) expire_every: Duration,
    /// Tests: hold the start-up scan back this long.
    #[cfg(test)]
    pub(crate) scan_delay: Duration,
    /// Tests: fail the write of block `index` with this errno.
    #[cfg(test)]
    pub(crate) write_fault: Option<Arc<dyn Fn(u64) -> Option<i32> + Send + Sync>>,
}

impl DiskConfig {
    /// The defaults, with the tenant's key (sealed files, 30 days' retention).
    pub fn new(root: RootKey) -> Self {
        DiskConfig {
            max_bytes: 10 << 30,
            min_free: MinFree::Percent(5.0),
            queue_bytes: 64 << 20,
            block_size: 256 << 10,
            whole_files: true,
            free_space: Arc::new(admin::statvfs),
            encryption: DiskEncryption::Aead,
            root,
            max_age: DEFAULT_MAX_AGE,
            #[cfg(test)]
            expire_every: EXPIRE_EVERY,
            #[cfg(test)]
            scan_delay: Duration::ZERO,
            #[cfg(test)]
            write_fault: None,
        }
    }
}

impl fmt::Debug for DiskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskConfig")
            .field("max_bytes", &self.max_bytes)
            .field("min_free", &self.min_free)
            .field("queue_bytes", &self.queue_bytes)
            .field("block_size", &self.block_size)
            .field("whole_files", &self.whole_files)
            .field("encryption", &self.encryption)
            .field("key", &self.root.id())
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Another store (another mount) holds the directory's lock.
    #[error("disk cache {} is in use by another vccfs mount", dir.display())]
    Locked { dir: PathBuf },
    #[error("disk cache: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("disk cache: {0}")]
    Config(&'static str),
    /// The root or the tenant's directory is not private (a symbolic link, another
    /// owner, writable by group or others): the mount is refused.
    #[error("disk cache {0}")]
    Unsafe(#[from] crate::safe_fs::DirError),
}

pub(super) fn io_error(what: &str, path: &Path) -> impl FnOnce(io::Error) -> DiskError {
    let what = format!("{what} {}", path.display());
    move |source| DiskError::Io { what, source }
}

/// A snapshot of a store's state and counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiskStats {
    /// Bytes of block files (and of the block being written).
    pub used_bytes: u64,
    pub files: u64,
    /// The effective cap.
    pub cap_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    /// Files found damaged (deleted).
    pub corrupt: u64,
    pub writes: u64,
    /// Blocks not kept for want of room: queue full, larger than the room the cap or
    /// the free space leave, disk full.
    pub dropped_writes: u64,
    pub evictions: u64,
    /// Other failures to write or delete.
    pub write_errors: u64,
    /// Versions made one whole file (see `whole`).
    pub promotions: u64,
    /// Whole files handed out, checked, for FUSE passthrough.
    pub local_files: u64,
    /// Sealed files that did not open under the disk key, as the block asked for:
    /// tampered, truncated, moved or swapped, of another tenant or key (deleted).
    pub rejected: u64,
    /// Files discarded at open because the tree was kept under another key or
    /// encryption mode (crypto-erasure), catalog days included.
    pub crypto_erased: u64,
    /// Files of the old plaintext layout (`v1`) removed at open.
    pub legacy_removed: u64,
    /// Files dropped for being unused longer than the maximum age (catalog days
    /// included).
    pub expired: u64,
    /// Files removed by [`super::DiskStore::erase_guid`].
    pub erased: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub corrupt: AtomicU64,
    pub writes: AtomicU64,
    pub dropped_writes: AtomicU64,
    pub evictions: AtomicU64,
    pub write_errors: AtomicU64,
    pub promotions: AtomicU64,
    pub local_files: AtomicU64,
    pub rejected: AtomicU64,
    pub crypto_erased: AtomicU64,
    pub legacy_removed: AtomicU64,
    pub expired: AtomicU64,
    pub erased: AtomicU64,
}
