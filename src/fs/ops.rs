//! The filesystem's operations, as plain (mostly async) functions returning
//! `Result<_, FsError>`: what the tree holds and what a read returns, without FUSE
//! replies, so they can be driven by unit tests against a catalog built in memory and
//! a mock block source. The adapter (`fuse`) only translates.
//!
//! Invariants (the node table):
//! - **The table holds what the kernel holds.** An inode is in `nodes` exactly while
//!   the kernel may name it: every reply that hands the kernel an entry (only
//!   `lookup` here: no readdirplus, and nothing is created) counts one lookup on it
//!   before the reply is sent, and `forget(ino, n)` takes `n` away; at zero the node
//!   is dropped, so the table shrinks back as the kernel evicts its inodes. A plain
//!   readdir hands out names only (the kernel looks each one up before using it), so
//!   it remembers nothing, and listing a big window does not grow the table.
//! - **The fixed directories are never dropped.** Root, `interactions`, `by-date` and
//!   the views' `calls`, `by-agent`, `by-number` (`views`) are answered from their
//!   constant inode numbers, outside the counted table.
//! - **Dropping a node loses nothing.** A node is only a name: a later lookup
//!   rebuilds it from its parent and the catalog, and an open file's handle holds its
//!   own source and version (or bytes), so reads go on after its inode is forgotten.
//! - **A revoked tenant serves nothing.** While access is revoked (one atomic load),
//!   lookups and readdirs below the root, opens, reads (from any tier), readlink and
//!   the xattrs are `EACCES`; getattr, statfs and access(2) still answer (sizes,
//!   times and modes, never a name or value the catalog holds).
//! - **An erased interaction reads nothing**, through a content handle (its version
//!   is erased) or an `.interaction.json` handle (its guid's erasure count moved).
//! - A lookup reply the kernel refuses (its request was interrupted) leaves one count
//!   behind; that inode stays until unmount, a bounded leak, never a missing node.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fuser::{FileAttr, FileType};
use parking_lot::{Mutex, RwLock};
use time::OffsetDateTime;

use super::access::Access;
use super::attr;
use super::errno::FsError;
use super::node::{link_target, parse_day, DirEntry, Node};
use super::page::Page;
use super::passthrough::Offer;
use super::views;
use crate::catalog::{ino, Catalog, Checked, FileEntry, InteractionEntry, META_NAME};
use crate::prefetch::{OpenVersion, Prefetcher, ReadAhead, Retention};

mod audit;
mod meta;
mod open;

/// Entry and attribute cache lifetime given to the kernel. Content is immutable unless
/// `lastModified` changes, and then we invalidate explicitly.
pub(crate) const TTL: Duration = Duration::from_secs(3600);
/// Lifetime of by-date symlinks and day directories (days outside the window can grow).
pub(crate) const SHORT_TTL: Duration = Duration::from_secs(60);
/// Longest name (as statfs reports).
pub(crate) const NAME_MAX: usize = 255;
/// Most entries one readdir call prepares (the kernel's buffer takes fewer).
pub(super) const READDIR_BATCH: usize = 1024;

/// What lookup and getattr answer: attributes and how long the kernel may keep them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub attr: FileAttr,
    pub ttl: Duration,
}

/// An open file.
#[derive(Debug)]
enum Handle {
    Content {
        source: OpenVersion,
        ra: Mutex<ReadAhead>,
        retention: Retention,
        /// Opened on a listing not yet checked against the API: the first read waits
        /// for that check and fails with ESTALE if the version has changed since.
        unchecked: AtomicBool,
    },
    /// `.interaction.json`: its bytes at the open, and how many times its guid had
    /// been erased then (a later erasure makes it read `ENOENT`).
    Meta {
        guid: String,
        erasures: u64,
        bytes: Bytes,
    },
}

/// Sizes for statfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsStats {
    pub blocks: u64,
    pub files: u64,
}

/// The filesystem's state: the nodes the kernel knows of, the open files.
#[derive(Debug)]
pub(crate) struct Ops {
    catalog: Arc<Catalog>,
    prefetcher: Arc<Prefetcher>,
    /// Owner and modes of every node (`access`).
    access: Access,
    /// When the mount started (mtime of the fixed directories).
    mounted_at: OffsetDateTime,
    /// Inodes the kernel was handed, with how many lookups it has not yet forgotten
    /// (the fixed directories are not in it).
    nodes: RwLock<HashMap<u64, Known>>,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    /// What each file's inode was last opened as (a content version or metadata
    /// fingerprint): the kernel's cached pages of that inode are of that, so an open
    /// of anything else must not keep them.
    opened_as: Mutex<HashMap<u64, u64>>,
}

/// A node the kernel knows, and its kernel lookup count.
#[derive(Debug)]
struct Known {
    node: Node,
    lookups: u64,
}

fn source_of(f: &FileEntry) -> OpenVersion {
    OpenVersion {
        content: f.content,
        version: Arc::clone(&f.version),
    }
}

impl Ops {
    pub(crate) fn new(catalog: Arc<Catalog>, prefetcher: Arc<Prefetcher>) -> Ops {
        Ops {
            catalog,
            prefetcher,
            access: Access::default(),
            mounted_at: crate::util::now_secs(),
            nodes: RwLock::new(HashMap::new()),
            handles: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            opened_as: Mutex::new(HashMap::new()),
        }
    }

    /// The same, with this owner and these modes.
    pub(crate) fn with_access(self, access: Access) -> Ops {
        Ops { access, ..self }
    }

    fn node(&self, ino: u64) -> Result<Node, FsError> {
        if let Some(fixed) = fixed(ino) {
            return Ok(fixed);
        }
        self.nodes
            .read()
            .get(&ino)
            .map(|k| k.node.clone())
            .ok_or(FsError::NotFound)
    }

    /// The kernel is being handed `ino` (naming `node`) once more.
    fn remember(&self, ino: u64, node: Node) {
        if fixed(ino).is_some() {
            return;
        }
        let mut nodes = self.nodes.write();
        // Inode numbers are hashes: on a collision the first node keeps the number.
        let known = nodes.entry(ino).or_insert(Known { node, lookups: 0 });
        known.lookups = known.lookups.saturating_add(1);
    }

    /// The kernel forgot `nlookup` of its lookups of `ino`; at none left the node is
    /// dropped. Unknown inodes and the fixed directories are ignored.
    pub(crate) fn forget(&self, ino: u64, nlookup: u64) {
        let mut nodes = self.nodes.write();
        if let Some(known) = nodes.get_mut(&ino) {
            known.lookups = known.lookups.saturating_sub(nlookup);
            if known.lookups == 0 {
                nodes.remove(&ino);
            }
        }
    }

    /// How many inodes (besides the fixed directories) the kernel holds.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.read().len()
    }

    /// The kernel's lookups of `ino` not yet forgotten (`None`: not in the table).
    #[cfg(test)]
    pub(crate) fn lookups(&self, ino: u64) -> Option<u64> {
        self.nodes.read().get(&ino).map(|k| k.lookups)
    }

    /// Attributes of a node, or `None` if it no longer exists.
    fn attr_of(&self, node: &Node) -> Option<FileAttr> {
        let o = self.access;
        Some(match node {
            Node::Root => attr::dir(o, ino::ROOT, self.mounted_at),
            Node::Interactions => attr::dir(o, ino::INTERACTIONS, self.mounted_at),
            Node::ByDate => attr::dir(o, ino::BY_DATE, self.mounted_at),
            Node::Interaction { guid } => {
                let e = self.catalog.known(guid)?;
                attr::dir(o, e.ino(), e.start)
            }
            Node::Meta { guid } => {
                let e = self.catalog.known(guid)?;
                attr::file(o, e.meta_ino(), e.meta_len(), e.meta_mtime())
            }
            Node::File { guid, key } => {
                let e = self.catalog.known(guid)?;
                let f = self.catalog.file(&e, key)?;
                attr::file(o, f.ino, f.size, f.mtime)
            }
            Node::Day { day } => attr::dir(o, ino::day(*day), day.midnight().assume_utc()),
            Node::Link { day, guid } => {
                let start = self
                    .catalog
                    .known(guid)
                    .map(|e| e.start)
                    .unwrap_or(day.midnight().assume_utc());
                let len = link_target(guid).len() as u64;
                attr::symlink(o, ino::link(*day, guid), len, start)
            }
            Node::View(v) => views::attr(&self.catalog, o, self.mounted_at, v)?,
        })
    }

    /// Remember `node` as `ino` and describe it.
    fn entry(&self, ino: u64, node: Node, ttl: Duration) -> Result<Entry, FsError> {
        let attr = self.attr_of(&node).ok_or(FsError::NotFound)?;
        self.remember(ino, node);
        Ok(Entry { attr, ttl })
    }

    fn interaction_entry(&self, e: &InteractionEntry) -> Result<Entry, FsError> {
        let node = Node::Interaction {
            guid: e.guid().to_string(),
        };
        self.entry(e.ino(), node, TTL)
    }

    /// `Err(Revoked)` while the tenant's access is revoked.
    fn allowed(&self) -> Result<(), FsError> {
        (!self.catalog.is_revoked())
            .then_some(())
            .ok_or(FsError::Revoked)
    }

    pub(crate) async fn lookup(&self, parent: u64, name: &OsStr) -> Result<Entry, FsError> {
        if parent != ino::ROOT {
            self.allowed()?;
        }
        if name.len() > NAME_MAX {
            return Err(FsError::NameTooLong);
        }
        let name = name.to_str().ok_or(FsError::NotFound)?;
        match self.node(parent)? {
            Node::Root => match name {
                "interactions" => self.entry(ino::INTERACTIONS, Node::Interactions, TTL),
                "by-date" => self.entry(ino::BY_DATE, Node::ByDate, TTL),
                _ => match views::root(name) {
                    Some((ino, node)) => self.entry(ino, node, TTL),
                    None => Err(FsError::NotFound),
                },
            },
            Node::Interactions => {
                if !crate::model::is_guid(name) || self.catalog.known_missing(name) {
                    return Err(FsError::NotFound);
                }
                // Its day may have left memory: back (no lookup for a listed guid).
                if let Some(e) = self.catalog.known_async(name).await? {
                    return self.interaction_entry(&e);
                }
                // Not listed: one GET /interactions/{guid}.
                match self.catalog.lookup(name).await? {
                    Some(e) => self.interaction_entry(&e),
                    None => Err(FsError::NotFound),
                }
            }
            Node::Interaction { guid } => {
                let e = self
                    .catalog
                    .known_async(&guid)
                    .await?
                    .ok_or(FsError::NotFound)?;
                if name == META_NAME {
                    return self.entry(e.meta_ino(), Node::Meta { guid }, TTL);
                }
                let f = self.catalog.file(&e, name).ok_or(FsError::NotFound)?;
                self.sized(&guid, &f).await?;
                let key = f.key.clone();
                self.entry(
                    f.ino,
                    Node::File {
                        guid,
                        key: key.to_string(),
                    },
                    TTL,
                )
            }
            Node::ByDate => {
                let day = parse_day(name).ok_or(FsError::NotFound)?;
                self.entry(ino::day(day), Node::Day { day }, SHORT_TTL)
            }
            Node::Day { day } => {
                if !crate::model::is_guid(name) || !self.catalog.started_on(day, name).await? {
                    return Err(FsError::NotFound);
                }
                let guid = name.to_string();
                self.entry(ino::link(day, &guid), Node::Link { day, guid }, SHORT_TTL)
            }
            Node::View(v) => {
                let (ino, node, ttl) = views::lookup(&self.catalog, &v, name).await?;
                if let Node::File { guid, key } = &node {
                    let e = self.catalog.known(guid).ok_or(FsError::NotFound)?;
                    let f = self.catalog.file(&e, key).ok_or(FsError::NotFound)?;
                    self.sized(guid, &f).await?;
                }
                self.entry(ino, node, ttl)
            }
            Node::Meta { .. } | Node::File { .. } | Node::Link { .. } => Err(FsError::NotDir),
        }
    }

    /// Make sure the catalog knows the size of `f` (listed without one: one ranged
    /// GET of its first block, which is kept for the reads that follow).
    async fn sized(&self, guid: &str, f: &Arc<FileEntry>) -> Result<(), FsError> {
        if f.size_known {
            return Ok(());
        }
        let block = self.prefetcher.block_size();
        let (sized, head) = self.catalog.sized(guid, f, block).await?;
        if let Some(head) = head {
            self.prefetcher.seed(&source_of(&sized), head);
        }
        Ok(())
    }

    pub(crate) async fn getattr(&self, ino: u64) -> Result<Entry, FsError> {
        let node = self.node(ino)?;
        if let Node::Interaction { guid } | Node::Meta { guid } | Node::File { guid, .. } = &node {
            // Its day may have left memory (`--catalog-memory`): back first.
            self.catalog.known_async(guid).await?;
        }
        if let Node::File { guid, key } = &node {
            let e = self.catalog.known(guid).ok_or(FsError::NotFound)?;
            let f = self.catalog.file(&e, key).ok_or(FsError::NotFound)?;
            self.sized(guid, &f).await?;
        }
        let attr = self.attr_of(&node).ok_or(FsError::NotFound)?;
        let ttl = match node {
            Node::Day { .. } | Node::Link { .. } => SHORT_TTL,
            Node::View(v) => views::ttl(&v),
            _ => TTL,
        };
        Ok(Entry { attr, ttl })
    }

    pub(crate) fn readlink(&self, ino: u64) -> Result<String, FsError> {
        self.allowed()?;
        match self.node(ino) {
            Ok(Node::Link { guid, .. }) => Ok(link_target(&guid)),
            Ok(Node::View(v)) => views::readlink(&self.catalog, &v),
            _ => Err(FsError::NotLink),
        }
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle>, FsError> {
        let handles = self.handles.read();
        handles.get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// Bytes `[offset, offset + size)` of open file `fh` (shorter at end of file).
    pub(crate) async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes, FsError> {
        self.allowed()?;
        let handle = self.handle(fh)?;
        match &*handle {
            Handle::Meta {
                guid,
                erasures,
                bytes,
            } => self.read_meta(guid, *erasures, bytes, offset, size),
            Handle::Content {
                source,
                ra,
                retention,
                unchecked,
            } => {
                self.not_erased(source)?;
                self.current(source, unchecked).await?;
                if offset >= source.version.size || size == 0 {
                    return Ok(Bytes::new());
                }
                let p = &self.prefetcher;
                match p.read(source, ra, offset, u64::from(size), retention).await {
                    // Erased while the read was under way: not these bytes either.
                    Ok(bytes) => self.not_erased(source).map(|()| bytes),
                    Err(e) => {
                        let e = FsError::from(e);
                        if e.is_stale() || e.is_not_found() {
                            // The content changed under the listed version, or is gone:
                            // one lookup learns the new version (for the next open), or
                            // that the file or the whole interaction is gone (erased).
                            if let Err(le) = self.catalog.revalidate(&source.version.guid).await {
                                tracing::warn!(error = %le, "cannot look the changed interaction up");
                            }
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// A handle of an erased version reads nothing more.
    fn not_erased(&self, source: &OpenVersion) -> Result<(), FsError> {
        match self.catalog.is_erased(source.content) {
            true => Err(FsError::Erased),
            false => Ok(()),
        }
    }

    /// The first use of a handle opened on a listing not yet checked waits for the
    /// check: a saved listing may be out of date, and a version the API has replaced
    /// is never served (its bytes may still be on disk).
    async fn current(&self, source: &OpenVersion, unchecked: &AtomicBool) -> Result<(), FsError> {
        if unchecked.load(Ordering::Relaxed) {
            let checked = self.catalog.check(&source.version.guid).await;
            if checked == Checked::Yes && !self.catalog.is_current(&source.version) {
                return Err(FsError::Stale);
            }
            unchecked.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// What open file `fh` offers the kernel to read itself: its version and a local
    /// file of exactly its bytes, if a tier has one (checked current first).
    pub(crate) async fn offer(&self, fh: u64) -> Result<Offer, FsError> {
        let handle = self.handle(fh)?;
        let Handle::Content {
            source, unchecked, ..
        } = &*handle
        else {
            return Ok(Offer::default());
        };
        self.not_erased(source)?;
        let file = self.prefetcher.local_file(&source.version).await;
        if file.is_some() {
            self.current(source, unchecked).await?;
        }
        Ok(Offer {
            version: Some(source.version.id),
            file,
        })
    }

    pub(crate) fn release(&self, fh: u64) {
        let closed = self.handles.write().remove(&fh);
        if let Some(Handle::Content { source, ra, .. }) = closed.as_deref() {
            self.prefetcher.park(source.content, ra.lock().clone());
        }
    }

    /// The entries of directory `ino` from position `offset` on (at most a batch: the
    /// kernel asks again from where it stopped). Names only: nothing is remembered.
    pub(crate) async fn readdir(&self, ino: u64, offset: u64) -> Result<Vec<DirEntry>, FsError> {
        if ino != ino::ROOT {
            self.allowed()?;
        }
        let node = self.node(ino)?;
        let parent = match &node {
            Node::Root | Node::Interactions | Node::ByDate => ino::ROOT,
            Node::Interaction { .. } => ino::INTERACTIONS,
            Node::Day { .. } => ino::BY_DATE,
            Node::View(v) => views::parent(v).ok_or(FsError::NotDir)?,
            _ => return Err(FsError::NotDir),
        };
        let mut page = Page::new(offset);
        page.push(ino, FileType::Directory, ".");
        page.push(parent, FileType::Directory, "..");
        match &node {
            Node::Root => {
                page.push(ino::INTERACTIONS, FileType::Directory, "interactions");
                page.push(ino::BY_DATE, FileType::Directory, "by-date");
                for (ino, name) in views::ROOT {
                    page.push(ino, FileType::Directory, name);
                }
            }
            Node::View(v) => views::readdir(&self.catalog, v, &mut page).await?,
            Node::Interactions => {
                // Only the part asked for: a big listing is not copied per call.
                let from = page.skip_to();
                if from == 0 {
                    // The first batch lists every day of the window not listed yet.
                    self.catalog.list_window().await?;
                }
                page.advance(from);
                // Day by day: days out of memory come back one at a time (the budget).
                for e in self.catalog.listed_page(from, READDIR_BATCH).await? {
                    page.push(e.ino(), FileType::Directory, &e.guid());
                }
            }
            Node::ByDate => {
                for day in self.catalog.window_days() {
                    page.push(ino::day(day), FileType::Directory, &day.to_string());
                }
            }
            Node::Interaction { guid } => {
                // Its day may have left memory (`--catalog-memory`): back first.
                let e = self
                    .catalog
                    .known_async(guid)
                    .await?
                    .ok_or(FsError::NotFound)?;
                page.push(e.meta_ino(), FileType::RegularFile, META_NAME);
                for key in e.keys() {
                    page.push(ino::file(guid, &key), FileType::RegularFile, &key);
                }
            }
            Node::Day { day } => {
                // Days outside the window may need a search.
                let day = *day;
                let from = page.skip_to();
                page.advance(from);
                for guid in self.catalog.day_page(day, from, READDIR_BATCH).await? {
                    page.push(ino::link(day, &guid), FileType::Symlink, &guid);
                }
            }
            _ => {}
        }
        Ok(page.entries)
    }
}

/// The fixed directories, which are never counted or dropped.
fn fixed(ino: u64) -> Option<Node> {
    match ino {
        ino::ROOT => Some(Node::Root),
        ino::INTERACTIONS => Some(Node::Interactions),
        ino::BY_DATE => Some(Node::ByDate),
        _ => views::fixed(ino),
    }
}
