//! The thin fuser adapter: each operation opens a tracing span carrying the request's
//! unique id, calls the matching [`Ops`] function, and turns its result into a reply.
//! Operations that may wait (lookups of unlisted guids, day listings, reads) run
//! through [`answer`]: on this thread until they have to wait, then on the runtime.

use std::ffi::OsStr;
use std::sync::Arc;

use fuser::{
    AccessFlags, BackingId, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use tracing::Instrument;

use super::access::Caller;
use super::answer::answer;
use super::audit::{self, FsAudit};
use super::counters::{errno_name, FsCounters};
use super::errno::FsError;
use super::ops::{Ops, NAME_MAX};
use super::passthrough::{Passthrough, Via};

/// The filesystem, as handed to fuser.
#[derive(Debug)]
pub struct VccFs {
    pub(super) ops: Arc<Ops>,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) counters: Arc<FsCounters>,
    pub(super) passthrough: Arc<Passthrough<BackingId>>,
    /// `--audit-log`: one line per open (see `audit`).
    pub(super) audit: Option<Arc<FsAudit>>,
}

/// The request's span: at `warn`, so a failed request's warning (the default log
/// level) names its op, inode and request id.
fn span(req: &Request, op: &'static str, ino: u64) -> tracing::Span {
    tracing::warn_span!("fuse", req = req.unique().0, op, ino)
}

/// The errno for `e`, counted; failures of the layers below are logged (in the
/// request's span) and remembered as the last error.
fn report(counters: &FsCounters, e: FsError) -> Errno {
    let errno = e.errno();
    let below = matches!(e, FsError::Read(_) | FsError::Catalog(_));
    if below {
        tracing::warn!(error = %e, "request failed");
    }
    counters.error(errno_name(errno.code()), below.then(|| e.to_string()));
    errno
}

/// The errno name of `e` (for the audit log; not counted).
fn errno_of(e: &FsError) -> &'static str {
    errno_name(e.errno().code())
}

/// Answer a getxattr/listxattr: the size when asked for 0 bytes, ERANGE when the
/// caller's buffer is too small, else the bytes.
fn reply_bytes(value: &[u8], size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if (size as usize) < value.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

/// Operations that would change the tree: refused, the mount is read-only (the
/// kernel refuses most of them first, as the mount is `ro`).
macro_rules! read_only {
    ($($op:ident($($ty:ty),*) -> $reply:ty;)*) => {
        $(fn $op(&self, _: &Request, $(_: $ty,)* reply: $reply) {
            reply.error(Errno::EROFS);
        })*
    };
}

impl VccFs {
    fn answer(
        &self,
        span: tracing::Span,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        answer(&self.rt, work.instrument(span));
    }
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
        // Backing files may sit on a stacked filesystem (overlayfs) themselves.
        let passthrough = self.passthrough.enabled()
            && config.set_max_stack_depth(2).is_ok()
            && config
                .add_capabilities(fuser::InitFlags::FUSE_PASSTHROUGH)
                .is_ok();
        if !passthrough {
            self.passthrough.disable();
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ops = Arc::clone(&self.ops);
        let counters = Arc::clone(&self.counters);
        let name = name.to_owned();
        self.answer(span(req, "lookup", parent.0), async move {
            match ops.lookup(parent.0, &name).await {
                Ok(e) => {
                    // Counted (in `ops`) before the kernel can send its forget.
                    counters.set_nodes(ops.node_count());
                    reply.entry(&e.ttl, &e.attr, Generation(0));
                }
                Err(e) => reply.error(report(&counters, e)),
            }
        });
    }

    /// Also answers `batch_forget`: fuser's default calls this once per inode (its
    /// `ForgetOne` type is not exported, so that method cannot be written here).
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.ops.forget(ino.0, nlookup);
        self.counters.set_nodes(self.ops.node_count());
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ops = Arc::clone(&self.ops);
        let counters = Arc::clone(&self.counters);
        self.answer(span(req, "getattr", ino.0), async move {
            match ops.getattr(ino.0).await {
                Ok(e) => reply.attr(&e.ttl, &e.attr),
                Err(e) => reply.error(report(&counters, e)),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let _span = span(req, "readlink", ino.0).entered();
        let counters = &*self.counters;
        match self.ops.readlink(ino.0) {
            Ok(target) => reply.data(target.as_bytes()),
            Err(e) => reply.error(report(counters, e)),
        }
    }

    /// Passthrough when the disk tier holds the file whole (see `passthrough`); the
    /// check of a local file runs on the runtime, never on this thread.
    /// The open runs on the runtime too: the file's day may have left memory
    /// (`--catalog-memory`) and come back from disk or the API first.
    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let span = span(req, "open", ino.0);
        let counters = Arc::clone(&self.counters);
        // Who asked, read now (the caller's process name) while it waits for us.
        let caller = self.audit.as_ref().map(|_| audit::caller_of(req));
        let (ops, pt) = (Arc::clone(&self.ops), Arc::clone(&self.passthrough));
        let audit = self.audit.clone();
        self.answer(span, async move {
            let opened = ops.open_resident(ino.0, flags.0).await;
            let logged = opened.as_ref().map(|o| o.0).map_err(errno_of);
            audit::on_open(audit.as_deref(), &ops, caller, ino.0, logged);
            let (fh, keep) = match opened {
                Ok(x) => x,
                Err(e) => return reply.error(report(&counters, e)),
            };
            // Pages cached of this inode may be of another version: the kernel drops them.
            let flags = match keep {
                true => FopenFlags::FOPEN_KEEP_CACHE,
                false => FopenFlags::empty(),
            };
            // The open failed after all: its line says why.
            let failed = |errno: Errno| {
                if let Some(a) = &audit {
                    a.failed_open(fh, errno_name(errno.code()));
                }
                errno
            };
            let offer = if pt.enabled() {
                match ops.offer(fh).await {
                    Ok(offer) => offer,
                    Err(e) => {
                        ops.release(fh);
                        return reply.error(failed(report(&counters, e)));
                    }
                }
            } else {
                Default::default()
            };
            let mut deciding = pt.lock();
            match deciding.decide(ino.0, offer, |f| reply.open_backing(f)) {
                Via::Daemon => reply.opened(FileHandle(fh), flags),
                Via::Kernel(backing) => {
                    counters.passthrough_open();
                    if let Some(a) = &audit {
                        a.passthrough(fh);
                    }
                    // Never with FOPEN_KEEP_CACHE: the kernel fails such an open (EIO).
                    reply.opened_passthrough(FileHandle(fh), FopenFlags::empty(), backing)
                }
                Via::Busy => {
                    ops.release(fh);
                    reply.error(failed(Errno::EBUSY))
                }
            }
        });
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let ops = Arc::clone(&self.ops);
        let counters = Arc::clone(&self.counters);
        let started = std::time::Instant::now();
        let logged = audit::on_read(self.audit.as_ref(), &self.ops, fh.0, offset);
        self.answer(span(req, "read", ino.0), async move {
            match ops.read(fh.0, offset, size).await {
                Ok(bytes) => {
                    if let Some(log) = logged {
                        log(Ok(bytes.len()));
                    }
                    reply.data(&bytes)
                }
                Err(e) => {
                    let errno = report(&counters, e);
                    if let Some(log) = logged {
                        log(Err(errno_name(errno.code())));
                    }
                    reply.error(errno)
                }
            }
            counters.read(started.elapsed());
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.ops.release(fh.0);
        self.passthrough.release(ino.0);
        if let Some(a) = &self.audit {
            a.released(fh.0);
        }
        reply.ok();
    }

    /// Directories need no handle: `ENOSYS` tells the kernel once, and from then on it
    /// opens directories itself (two round trips less per directory: no `opendir`, no
    /// `releasedir`) with `FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR`, its default then — so a
    /// listing is kept until a re-list invalidates it, and a second `ls -R` or `rsync`
    /// makes no readdir calls. `readdir` checks that the inode is a directory.
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let ops = Arc::clone(&self.ops);
        let counters = Arc::clone(&self.counters);
        self.answer(span(req, "readdir", ino.0), async move {
            match ops.readdir(ino.0, offset).await {
                Ok(entries) => {
                    for e in entries {
                        if reply.add(INodeNo(e.ino), e.next, e.kind, &e.name) {
                            break;
                        }
                    }
                    reply.ok();
                }
                Err(e) => reply.error(report(&counters, e)),
            }
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.ops.statfs();
        reply.statfs(s.blocks, 0, 0, s.files, 0, 4096, NAME_MAX as u32, 4096);
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let _span = span(req, "getxattr", ino.0).entered();
        let counters = &*self.counters;
        let who = Caller {
            uid: req.uid(),
            gid: req.gid(),
            pid: req.pid(),
        };
        match self.ops.getxattr(ino.0, name, &who) {
            Ok(v) => reply_bytes(v.as_bytes(), size, reply),
            Err(e) => reply.error(report(counters, e)),
        }
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let _span = span(req, "listxattr", ino.0).entered();
        match self.ops.listxattr(ino.0) {
            Ok(names) => reply_bytes(&names, size, reply),
            Err(e) => reply.error(report(&self.counters, e)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.ops.access(ino.0, mask.contains(AccessFlags::W_OK)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.errno()),
        }
    }

    /// Nothing is ever written, so there is nothing to flush: `ENOSYS` tells the kernel
    /// once, and it sends no `flush` on any later `close` (one round trip less per file
    /// for `grep -r`, `rsync`, a player).
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
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

    read_only! {
        setattr(
            INodeNo, Option<u32>, Option<u32>, Option<u32>, Option<u64>,
            Option<fuser::TimeOrNow>, Option<fuser::TimeOrNow>, Option<std::time::SystemTime>,
            Option<FileHandle>, Option<std::time::SystemTime>, Option<std::time::SystemTime>,
            Option<std::time::SystemTime>, Option<fuser::BsdFileFlags>
        ) -> ReplyAttr;
        mknod(INodeNo, &OsStr, u32, u32, u32) -> ReplyEntry;
        mkdir(INodeNo, &OsStr, u32, u32) -> ReplyEntry;
        unlink(INodeNo, &OsStr) -> ReplyEmpty;
        rmdir(INodeNo, &OsStr) -> ReplyEmpty;
        symlink(INodeNo, &OsStr, &std::path::Path) -> ReplyEntry;
        rename(INodeNo, &OsStr, INodeNo, &OsStr, fuser::RenameFlags) -> ReplyEmpty;
        link(INodeNo, INodeNo, &OsStr) -> ReplyEntry;
        write(
            INodeNo, FileHandle, u64, &[u8], fuser::WriteFlags, OpenFlags,
            Option<fuser::LockOwner>
        ) -> fuser::ReplyWrite;
        create(INodeNo, &OsStr, u32, u32, i32) -> fuser::ReplyCreate;
        setxattr(INodeNo, &OsStr, &[u8], i32, u32) -> ReplyEmpty;
        removexattr(INodeNo, &OsStr) -> ReplyEmpty;
        fallocate(INodeNo, FileHandle, u64, u64, i32) -> ReplyEmpty;
    }
}
