//! The FUSE adapter: inodes, attributes, the directory tree, and reply mapping. Thin:
//! names and metadata come from the [`Catalog`], bytes from the [`Prefetcher`].
//!
//! ```text
//! /interactions/<guid>/<contentKey>          content, exactly as the API serves it
//! /interactions/<guid>/.interaction.json     the interaction's metadata
//! /by-date/<YYYY-MM-DD>/<guid>               symlink to ../../interactions/<guid>
//! ```

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, KernelConfig, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use parking_lot::{Mutex, RwLock};
use time::{Date, OffsetDateTime};

use crate::catalog::{ino, Catalog, FileEntry, InteractionEntry, META_NAME};
use crate::prefetch::{Prefetcher, ReadAhead, Retention, Source};

mod attr;
pub mod errno;
mod xattr;

pub use attr::Owner;
use errno::errno_of;

/// Entry and attribute cache lifetime given to the kernel. Content is immutable unless
/// `lastModified` changes, and then we invalidate explicitly.
const TTL: Duration = Duration::from_secs(3600);
/// Longest name (as statfs reports).
const NAME_MAX: usize = 255;
/// Lifetime of by-date symlinks and day directories (days outside the window can grow).
const SHORT_TTL: Duration = Duration::from_secs(60);

/// What an inode is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Root,
    Interactions,
    ByDate,
    Interaction(String),
    Meta(String),
    File(String, String),
    Day(Date),
    Link(Date, String),
}

/// An open file.
#[derive(Debug)]
enum Handle {
    Content {
        source: Source,
        ra: Mutex<ReadAhead>,
        retention: Retention,
    },
    Meta(Bytes),
}

/// The filesystem, as handed to fuser. Work that may wait for the network starts on
/// the FUSE thread and, once it has to wait, goes on as a tokio task that holds the
/// shared [`Inner`] and replies when done ([`Inner::answer`]).
#[derive(Debug)]
pub struct VccFs {
    inner: Arc<Inner>,
}

impl std::ops::Deref for VccFs {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The filesystem's state.
#[derive(Debug)]
pub struct Inner {
    catalog: Arc<Catalog>,
    prefetcher: Arc<Prefetcher>,
    rt: tokio::runtime::Handle,
    owner: Owner,
    /// When the mount started (mtime of the fixed directories).
    mounted_at: OffsetDateTime,
    nodes: RwLock<HashMap<u64, Node>>,
    handles: RwLock<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
}

impl VccFs {
    pub fn new(
        catalog: Arc<Catalog>,
        prefetcher: Arc<Prefetcher>,
        rt: tokio::runtime::Handle,
    ) -> VccFs {
        VccFs {
            inner: Arc::new(Inner::new(catalog, prefetcher, rt)),
        }
    }

    fn self_ref(&self) -> Arc<Inner> {
        Arc::clone(&self.inner)
    }
}

impl Inner {
    fn new(
        catalog: Arc<Catalog>,
        prefetcher: Arc<Prefetcher>,
        rt: tokio::runtime::Handle,
    ) -> Inner {
        let mut nodes = HashMap::new();
        nodes.insert(ino::ROOT, Node::Root);
        nodes.insert(ino::INTERACTIONS, Node::Interactions);
        nodes.insert(ino::BY_DATE, Node::ByDate);
        Inner {
            catalog,
            prefetcher,
            rt,
            owner: Owner::current(),
            mounted_at: OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            nodes: RwLock::new(nodes),
            handles: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// Run `work` (which replies itself) on this FUSE thread as far as it goes without
    /// waiting: a read of cached blocks is answered at once, with no hop to another
    /// thread. Work that has to wait moves to the runtime, which polls it from there.
    fn answer(&self, work: impl Future<Output = ()> + Send + 'static) {
        let mut work = Box::pin(work);
        let _runtime = self.rt.enter();
        let mut cx = Context::from_waker(Waker::noop());
        // A panic stays contained as it would in a task: the dropped reply answers EIO.
        match std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(&mut cx))) {
            Ok(Poll::Ready(())) => {}
            Ok(Poll::Pending) => drop(self.rt.spawn(work)),
            Err(_) => tracing::error!("a FUSE request handler panicked"),
        }
    }

    fn node(&self, ino: u64) -> Option<Node> {
        self.nodes.read().get(&ino).cloned()
    }

    fn remember(&self, ino: u64, node: Node) {
        self.nodes.write().entry(ino).or_insert(node);
    }

    /// Attributes of a node, or ENOENT if it no longer exists.
    fn attr_of(&self, node: &Node) -> Option<FileAttr> {
        let o = self.owner;
        Some(match node {
            Node::Root => attr::dir(o, ino::ROOT, self.mounted_at),
            Node::Interactions => attr::dir(o, ino::INTERACTIONS, self.mounted_at),
            Node::ByDate => attr::dir(o, ino::BY_DATE, self.mounted_at),
            Node::Interaction(g) => {
                let e = self.catalog.known(g)?;
                attr::dir(o, e.ino, e.interaction.start)
            }
            Node::Meta(g) => {
                let e = self.catalog.known(g)?;
                attr::file(o, e.meta_ino, e.meta_json.len() as u64, e.meta_mtime)
            }
            Node::File(g, k) => {
                let e = self.catalog.known(g)?;
                let f = e.file(k)?;
                attr::file(o, f.ino, f.size, f.mtime)
            }
            Node::Day(d) => attr::dir(o, ino::day(*d), d.midnight().assume_utc()),
            Node::Link(d, g) => {
                let start = self
                    .catalog
                    .known(g)
                    .map(|e| e.interaction.start)
                    .unwrap_or(d.midnight().assume_utc());
                attr::symlink(o, ino::link(*d, g), link_target(g).len() as u64, start)
            }
        })
    }

    fn reply_node(&self, ino: u64, node: Node, ttl: Duration, reply: ReplyEntry) {
        match self.attr_of(&node) {
            Some(a) => {
                self.remember(ino, node);
                reply.entry(&ttl, &a, Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn interaction_entry(&self, e: &InteractionEntry, reply: ReplyEntry) {
        self.reply_node(e.ino, Node::Interaction(e.guid.clone()), TTL, reply);
    }

    /// Reply with `entries[offset..]` (as many as fit), remembering their nodes.
    fn fill_dir(&self, entries: Vec<DirEntry>, offset: u64, mut reply: ReplyDirectory) {
        for (i, (ino, kind, name, node)) in entries.into_iter().enumerate().skip(offset as usize) {
            if let Some(n) = node {
                self.remember(ino, n);
            }
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn file_source(f: &FileEntry) -> Source {
        Source {
            content: f.content,
            version: Arc::clone(&f.version),
        }
    }
}

/// (inode, type, name, node to remember) of one directory entry.
type DirEntry = (u64, FileType, String, Option<Node>);

fn link_target(guid: &str) -> String {
    format!("../../interactions/{guid}")
}

fn parse_day(name: &str) -> Option<Date> {
    if name.len() != 10 {
        return None;
    }
    Date::parse(
        name,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

impl Filesystem for VccFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        // Let the kernel read ahead as far as it will; our own read-ahead does the rest.
        if let Err(max) = config.set_max_readahead(4 << 20) {
            let _ = config.set_max_readahead(max);
        }
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_CACHE_SYMLINKS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if name.len() > NAME_MAX {
            return reply.error(Errno::ENAMETOOLONG);
        }
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let Some(parent_node) = self.node(parent.0) else {
            return reply.error(Errno::ENOENT);
        };
        match parent_node {
            Node::Root => match name {
                "interactions" => {
                    self.reply_node(ino::INTERACTIONS, Node::Interactions, TTL, reply)
                }
                "by-date" => self.reply_node(ino::BY_DATE, Node::ByDate, TTL, reply),
                _ => reply.error(Errno::ENOENT),
            },
            Node::Interactions => {
                if !crate::model::is_guid(name) || self.catalog.known_missing(name) {
                    return reply.error(Errno::ENOENT);
                }
                if let Some(e) = self.catalog.known(name) {
                    return self.interaction_entry(&e, reply);
                }
                // Not listed: one GET /interactions/{guid}.
                let catalog = Arc::clone(&self.catalog);
                let guid = name.to_string();
                let fs = self.self_ref();
                self.answer(async move {
                    match catalog.lookup(&guid).await {
                        Ok(Some(e)) => fs.interaction_entry(&e, reply),
                        Ok(None) => reply.error(Errno::ENOENT),
                        Err(err) => {
                            tracing::warn!(%guid, error = %err, "lookup failed");
                            reply.error(errno_of(&err));
                        }
                    }
                });
            }
            Node::Interaction(guid) => {
                let Some(e) = self.catalog.known(&guid) else {
                    return reply.error(Errno::ENOENT);
                };
                if name == META_NAME {
                    return self.reply_node(e.meta_ino, Node::Meta(guid), TTL, reply);
                }
                match e.file(name) {
                    Some(f) => self.reply_node(f.ino, Node::File(guid, f.key.clone()), TTL, reply),
                    None => reply.error(Errno::ENOENT),
                }
            }
            Node::ByDate => {
                let Some(day) = parse_day(name) else {
                    return reply.error(Errno::ENOENT);
                };
                self.reply_node(ino::day(day), Node::Day(day), SHORT_TTL, reply);
            }
            Node::Day(day) => {
                if !crate::model::is_guid(name) {
                    return reply.error(Errno::ENOENT);
                }
                let catalog = Arc::clone(&self.catalog);
                let guid = name.to_string();
                let fs = self.self_ref();
                self.answer(async move {
                    match catalog.started_on(day, &guid).await {
                        Ok(true) => fs.reply_node(
                            ino::link(day, &guid),
                            Node::Link(day, guid),
                            SHORT_TTL,
                            reply,
                        ),
                        Ok(false) => reply.error(Errno::ENOENT),
                        Err(err) => {
                            tracing::warn!(%day, error = %err, "day search failed");
                            reply.error(errno_of(&err));
                        }
                    }
                });
            }
            Node::Meta(_) | Node::File(..) | Node::Link(..) => reply.error(Errno::ENOTDIR),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .node(ino.0)
            .and_then(|n| self.attr_of(&n).map(|a| (n, a)))
        {
            Some((n, a)) => {
                let ttl = if matches!(n, Node::Day(_) | Node::Link(..)) {
                    SHORT_TTL
                } else {
                    TTL
                };
                reply.attr(&ttl, &a)
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino.0) {
            Some(Node::Link(_, g)) => reply.data(link_target(&g).as_bytes()),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & (libc::O_TRUNC | libc::O_CREAT) != 0
        {
            return reply.error(Errno::EROFS);
        }
        let handle = match self.node(ino.0) {
            Some(Node::File(g, k)) => {
                let Some(e) = self.catalog.known(&g) else {
                    return reply.error(Errno::ENOENT);
                };
                let Some(f) = e.file(&k) else {
                    return reply.error(Errno::ENOENT);
                };
                self.prefetcher.on_open(&self.catalog, &e, f);
                Handle::Content {
                    source: Inner::file_source(f),
                    ra: Mutex::new(self.prefetcher.resume(f.content)),
                    retention: self
                        .prefetcher
                        .retention(f.size, flags.0 & libc::O_DIRECT != 0),
                }
            }
            Some(Node::Meta(g)) => match self.catalog.known(&g) {
                Some(e) => Handle::Meta(e.meta_json.clone()),
                None => return reply.error(Errno::ENOENT),
            },
            Some(_) => return reply.error(Errno::EISDIR),
            None => return reply.error(Errno::ENOENT),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.write().insert(fh, Arc::new(handle));
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let Some(handle) = self.handles.read().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        match &*handle {
            Handle::Meta(bytes) => {
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                reply.data(&bytes[start..end]);
            }
            Handle::Content { source, .. } => {
                if offset >= source.version.size || size == 0 {
                    return reply.data(&[]);
                }
                let prefetcher = Arc::clone(&self.prefetcher);
                let read = async move {
                    let Handle::Content {
                        source,
                        ra,
                        retention,
                    } = &*handle
                    else {
                        return reply.error(Errno::EIO);
                    };
                    match prefetcher
                        .read(source, ra, offset, u64::from(size), retention)
                        .await
                    {
                        Ok(bytes) => reply.data(&bytes),
                        Err(err) => {
                            tracing::warn!(error = %err, "read failed");
                            reply.error(errno_of(&err));
                        }
                    }
                };
                self.answer(read);
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let closed = self.handles.write().remove(&fh.0);
        if let Some(Handle::Content { source, ra, .. }) = closed.as_deref() {
            self.prefetcher.park(source.content, ra.lock().clone());
        }
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino.0) {
            Some(
                Node::Root
                | Node::Interactions
                | Node::ByDate
                | Node::Interaction(_)
                | Node::Day(_),
            ) => {
                // Listings change only on a re-list, which invalidates them: let the
                // kernel keep them (a second `ls -R` or `rsync` makes no readdir calls).
                reply.opened(
                    FileHandle(0),
                    FopenFlags::FOPEN_CACHE_DIR | FopenFlags::FOPEN_KEEP_CACHE,
                )
            }
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let Some(node) = self.node(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let parent = match &node {
            Node::Root | Node::Interactions | Node::ByDate => ino::ROOT,
            Node::Interaction(_) => ino::INTERACTIONS,
            Node::Day(_) => ino::BY_DATE,
            _ => return reply.error(Errno::ENOTDIR),
        };
        let mut entries: Vec<DirEntry> = vec![
            (ino.0, FileType::Directory, ".".into(), None),
            (parent, FileType::Directory, "..".into(), None),
        ];
        match &node {
            Node::Root => {
                entries.push((
                    ino::INTERACTIONS,
                    FileType::Directory,
                    "interactions".into(),
                    None,
                ));
                entries.push((ino::BY_DATE, FileType::Directory, "by-date".into(), None));
            }
            Node::Interactions => {
                for e in self.catalog.listed() {
                    entries.push((
                        e.ino,
                        FileType::Directory,
                        e.guid.clone(),
                        Some(Node::Interaction(e.guid.clone())),
                    ));
                }
            }
            Node::ByDate => {
                for d in self.catalog.listed_days() {
                    entries.push((
                        ino::day(d),
                        FileType::Directory,
                        d.to_string(),
                        Some(Node::Day(d)),
                    ));
                }
            }
            Node::Interaction(g) => {
                let Some(e) = self.catalog.known(g) else {
                    return reply.error(Errno::ENOENT);
                };
                entries.push((
                    e.meta_ino,
                    FileType::RegularFile,
                    META_NAME.into(),
                    Some(Node::Meta(g.clone())),
                ));
                for f in &e.files {
                    entries.push((
                        f.ino,
                        FileType::RegularFile,
                        f.key.clone(),
                        Some(Node::File(g.clone(), f.key.clone())),
                    ));
                }
            }
            Node::Day(day) => {
                let day = *day;
                // Days outside the window may need a search.
                let catalog = Arc::clone(&self.catalog);
                let fs = self.self_ref();
                self.answer(async move {
                    match catalog.day(day).await {
                        Ok(guids) => {
                            for g in guids.iter() {
                                entries.push((
                                    ino::link(day, g),
                                    FileType::Symlink,
                                    g.clone(),
                                    Some(Node::Link(day, g.clone())),
                                ));
                            }
                            fs.fill_dir(entries, offset, reply);
                        }
                        Err(err) => {
                            tracing::warn!(%day, error = %err, "day search failed");
                            reply.error(errno_of(&err));
                        }
                    }
                });
                return;
            }
            _ => {}
        }
        self.fill_dir(entries, offset, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.catalog.total_bytes().div_ceil(4096);
        let files = self
            .catalog
            .listed()
            .iter()
            .map(|e| e.files.len() as u64 + 2)
            .sum::<u64>();
        reply.statfs(blocks, 0, 0, files, 0, 4096, NAME_MAX as u32, 4096);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = self
            .node(ino.0)
            .and_then(|n| xattr::get(&self.catalog, &n, name));
        match value {
            Some(v) => xattr::reply_bytes(v.as_bytes(), size, reply),
            None => reply.error(Errno::from_i32(libc::ENODATA)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names = self
            .node(ino.0)
            .map(|n| xattr::list(&self.catalog, &n))
            .unwrap_or_default();
        xattr::reply_bytes(&names, size, reply);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if self.node(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        reply.ok();
    }

    // Everything that would change the tree is refused: the mount is read-only.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: fuser::ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }
}
