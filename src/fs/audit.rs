//! The filesystem's side of the access audit log (`--audit-log`): one record per
//! open of a content or metadata file, kept while the handle lives and logged as one
//! line at its release (or at unmount, [`FsAudit::finish`], for handles still open).
//!
//! Invariants:
//! - **Per open, not per read.** Each successful open of a file (`.interaction.json`
//!   included) gets exactly one line; an open that fails gets one line with its errno.
//!   Directories, symlinks and opens of anything else are not logged.
//! - **Cheap on the read path.** A read costs one map lookup under a read lock and
//!   one atomic add; only the handle's first successful read determines its tier (an
//!   `AtomicU8` set once, [`Open::first_read`]), with one look at the memory cache
//!   before the read and one at the `source::Served` table after it. Pushing the line
//!   never waits (`audit::AuditLog::push`).
//! - **What the tier means.** `memory`: the first byte read was in the block cache
//!   when the read came (or the metadata, always held in memory); `disk`, `redis`,
//!   `api`: the tier that delivered that block to the cache for this read (a block
//!   the table no longer remembers — it keeps the last 64k blocks — is reported as
//!   `memory`, the most likely case: bytes the size probe of a lookup fetched);
//!   `passthrough`: the kernel reads the disk tier's file itself and vccfs sees no
//!   bytes; `none`: nothing was read.
//! - **`bytes` are those vccfs served**: reads answered from the kernel's page cache
//!   (a second read of cached pages, `mmap`) and passthrough reads are not seen.
//! - `result` is `ok`, or the errno name of the failed open or of the first failed
//!   read (later failures do not replace it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use time::OffsetDateTime;

use crate::audit::line::OpenLine;
use crate::audit::{AuditLog, Caller, Tier};
use crate::source::Served;

/// One open file's record.
#[derive(Debug)]
pub(crate) struct Open {
    time: OffsetDateTime,
    caller: Caller,
    guid: String,
    key: String,
    tier: AtomicU8,
    bytes: AtomicU64,
    failed: OnceLock<&'static str>,
}

impl Open {
    /// True until the handle's tier is known (then this read decides it).
    pub(crate) fn first_read(&self) -> bool {
        self.tier.load(Relaxed) == Tier::None as u8
    }

    /// A read served `n` bytes; `tier()` says from where, asked only on the first.
    pub(crate) fn served(&self, n: usize, tier: impl FnOnce() -> Tier) {
        if n > 0 && self.first_read() {
            let _ = self
                .tier
                .compare_exchange(Tier::None as u8, tier() as u8, Relaxed, Relaxed);
        }
        self.bytes.fetch_add(n as u64, Relaxed);
    }

    /// A read failed with `errno` (only the first failure is kept).
    pub(crate) fn failed(&self, errno: &'static str) {
        let _ = self.failed.set(errno);
    }

    fn line(&self) -> Option<String> {
        crate::audit::line::to_line(&OpenLine {
            time: self.time,
            event: "open",
            caller: &self.caller,
            guid: &self.guid,
            key: &self.key,
            tier: Tier::from_u8(self.tier.load(Relaxed)).name(),
            bytes: self.bytes.load(Relaxed),
            result: self.failed.get().copied().unwrap_or("ok"),
        })
    }
}

/// The open files' records, and where their lines go.
#[derive(Debug)]
pub struct FsAudit {
    log: Arc<AuditLog>,
    /// Which tier delivered recent blocks (kept by the chain's wrappers).
    served: Arc<Served>,
    open: RwLock<HashMap<u64, Arc<Open>>>,
}

impl FsAudit {
    pub fn new(log: Arc<AuditLog>, served: Arc<Served>) -> FsAudit {
        FsAudit {
            log,
            served,
            open: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn served_table(&self) -> &Served {
        &self.served
    }

    /// The table the chain's wrappers keep (see `source::Served`).
    pub fn served(&self) -> &Arc<Served> {
        &self.served
    }

    /// The log lines go to.
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    fn record(caller: Caller, guid: String, key: String) -> Open {
        Open {
            time: OffsetDateTime::now_utc(),
            caller,
            guid,
            key,
            tier: AtomicU8::new(Tier::None as u8),
            bytes: AtomicU64::new(0),
            failed: OnceLock::new(),
        }
    }

    /// File `key` of `guid` was opened as `fh` by `caller`.
    pub(crate) fn opened(&self, fh: u64, caller: Caller, guid: String, key: String) {
        let open = Arc::new(Self::record(caller, guid, key));
        self.open.write().insert(fh, open);
    }

    /// An open of file `key` of `guid` failed with `errno`: logged now.
    pub(crate) fn refused(&self, caller: Caller, guid: String, key: String, errno: &'static str) {
        let open = Self::record(caller, guid, key);
        open.failed(errno);
        if let Some(l) = open.line() {
            self.log.push(l);
        }
    }

    /// The record of open handle `fh`, if it is logged.
    pub(crate) fn get(&self, fh: u64) -> Option<Arc<Open>> {
        self.open.read().get(&fh).cloned()
    }

    /// The open of `fh` failed after its handle was made (`errno`): logged now.
    pub(crate) fn failed_open(&self, fh: u64, errno: &'static str) {
        if let Some(o) = self.get(fh) {
            o.failed(errno);
        }
        self.released(fh);
    }

    /// The kernel reads `fh` itself (passthrough): no bytes will be seen.
    pub(crate) fn passthrough(&self, fh: u64) {
        if let Some(o) = self.get(fh) {
            o.tier.store(Tier::Passthrough as u8, Relaxed);
        }
    }

    /// Handle `fh` is released: its line is logged.
    pub(crate) fn released(&self, fh: u64) {
        let open = self.open.write().remove(&fh);
        if let Some(l) = open.and_then(|o| o.line()) {
            self.log.push(l);
        }
    }

    /// The mount ends: lines of the handles still open, then the log is closed.
    pub fn finish(&self) {
        let open: Vec<(u64, Arc<Open>)> = self.open.write().drain().collect();
        let mut open = open;
        open.sort_by_key(|(fh, _)| *fh);
        for (_, o) in open {
            if let Some(l) = o.line() {
                self.log.push(l);
            }
        }
        self.log.finish();
    }
}

/// Who sent the kernel's request `req`, read when it arrives.
pub(super) fn caller_of(req: &fuser::Request) -> Caller {
    Caller::of(req.uid(), req.gid(), req.pid())
}

/// The adapter's hook at open: `opened` is the handle, or the errno name of the
/// failure; `caller` who asked ([`caller_of`], taken when there is an audit log).
pub(super) fn on_open(
    audit: Option<&FsAudit>,
    ops: &super::ops::Ops,
    caller: Option<Caller>,
    ino: u64,
    opened: Result<u64, &'static str>,
) {
    let (Some(audit), Some(caller)) = (audit, caller) else {
        return;
    };
    let Some((guid, key)) = ops.audit_names(ino) else {
        return;
    };
    match opened {
        Ok(fh) => audit.opened(fh, caller, guid, key),
        Err(errno) => audit.refused(caller, guid, key, errno),
    }
}

/// The adapter's hook around a read of `fh` at `offset`: call before the read; the
/// returned closure takes the read's outcome (bytes served, or the errno name).
pub(super) fn on_read(
    audit: Option<&Arc<FsAudit>>,
    ops: &super::ops::Ops,
    fh: u64,
    offset: u64,
) -> Option<impl FnOnce(Result<usize, &'static str>) + Send + 'static> {
    let audit = Arc::clone(audit?);
    let open = audit.get(fh)?;
    let before = open.first_read().then(|| ops.audit_before(fh, offset));
    Some(move |outcome: Result<usize, &'static str>| match outcome {
        Ok(n) => open.served(n, || {
            before.map_or(Tier::Memory, |b| b.tier(audit.served_table()))
        }),
        Err(errno) => open.failed(errno),
    })
}
