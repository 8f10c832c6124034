//! Data in motion: turns a read at (offset, size) into cached blocks, fetching missing
//! ones from the block source, and reads ahead for sequential readers with a growing
//! window split into several parallel requests. Knows no HTTP and no catalog: it asks
//! the memory cache what is present and hands it fetches to run against an
//! `Arc<dyn BlockSource>` (the tier chain, see `source`).
//!
//! Invariants:
//! - **Exact bytes.** [`Prefetcher::read`] returns exactly `[offset, offset+size)`
//!   clamped to the file, cut from blocks of one version, or a [`ReadError`].
//! - **Needed blocks first.** The blocks a read needs are started before any
//!   read-ahead, so read-ahead never delays the read that triggered it.
//! - **Every request at its floor** (sources stream, so a request's size never delays
//!   its first block):
//!   - a file of at most `ReadAheadConfig::whole_file` bytes (16 MiB) is fetched whole
//!     by the first read that finds blocks of it missing: one request, whatever the
//!     reader does next (header, tail, seeks, a full decode). The whole-file fetch is
//!     held to the read-ahead budget; when the budget refuses it, the read falls back
//!     to fetching what it needs (and read-ahead), as for a large file;
//!   - a larger file read in its first `probe_lead` bytes fetches its head, the first
//!     `max_request` bytes, in one request; read in its last `max_request` bytes, it
//!     fetches from the read (or from `probe_lead` before the end, if later) to the
//!     end: a player's header and tail probes cost two requests;
//!   - a sequential reader's read-ahead goes out in requests of `min_request` (8 MiB)
//!     lined up on multiples of it, in parallel up to the window: a full read of a
//!     file of `n` bytes costs about `n / 8 MiB` requests, plus the tail.
//! - **Read-ahead stays in budget.** Bytes in flight for read-ahead never exceed
//!   `ReadAheadConfig::inflight_budget`; what the budget refuses is asked for again
//!   on the next read, so no gap is left to be fetched block by block.
//! - **The page-cache handover rule.** A file at least 1/8 of the cache, read through
//!   the page cache, is streamed ([`Retention::HandOver`]): blocks the kernel has
//!   received whole leave the block cache, so a recording played once is not held
//!   twice and does not wipe everything else. Small files and `O_DIRECT` readers keep
//!   their blocks (the kernel may drop its copy any time; ours keeps them readable
//!   through an API outage).
//! - Callers may be FUSE threads outside the runtime: fetches are spawned on the
//!   handle given at construction, and nothing here blocks on FUSE.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::TryFutureExt;

use crate::cache::{
    BlockCache, BlockFetch, BlockId, ContentId, FetchError, Lookup, Run, Started, Want,
};
use crate::source::{BlockRequest, BlockSink, BlockSource, Purpose};
use crate::version::ContentVersion;

mod handover;
mod scan;
mod window;
pub use handover::Handover;
pub use scan::ScanDetector;
pub use window::{ReadAhead, ReadAheadConfig};

/// What a read reads: one version of one file.
#[derive(Debug, Clone)]
pub struct OpenVersion {
    pub content: ContentId,
    pub version: Arc<ContentVersion>,
}

/// Why a read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// A block did not have the bytes the read needs (a bug or a broken source).
    #[error("read {guid}/{key}: block {index} {detail}")]
    Block {
        guid: String,
        key: String,
        index: u64,
        detail: String,
    },
}

impl ReadError {
    fn block(src: &OpenVersion, index: u64, detail: String) -> ReadError {
        ReadError::Block {
            guid: src.version.guid.clone(),
            key: src.version.key.clone(),
            index,
            detail,
        }
    }
}

/// What the block cache does with the blocks of one open file once they are read.
#[derive(Debug)]
pub enum Retention {
    /// Keep them until evicted: readers that bypass the page cache (`O_DIRECT`), and
    /// files small enough that a second copy is cheap and keeps them readable when the
    /// kernel drops its copy and the API is down.
    Keep,
    /// Let go of blocks delivered whole: large files read through the kernel's page
    /// cache, which keeps them across opens (`FOPEN_KEEP_CACHE`). A file streamed
    /// once is not held twice, does not wipe the cache of everything else, and its
    /// buffers are reused by the read-ahead that follows.
    HandOver(parking_lot::Mutex<Handover>),
}

/// Files at least this fraction of the cache are streamed ([`Retention::HandOver`]).
const STREAM_FRACTION: u64 = 8;

/// Shared by all reads of one mount.
#[derive(Debug)]
pub struct Prefetcher {
    source: Arc<dyn BlockSource>,
    cache: Arc<BlockCache>,
    cfg: ReadAheadConfig,
    scan: ScanDetector,
    /// Where fetches run (callers may be FUSE threads outside the runtime).
    rt: tokio::runtime::Handle,
    /// Read-ahead state of recently closed files, by file (players close and reopen).
    parked:
        parking_lot::Mutex<std::collections::HashMap<ContentId, (ReadAhead, std::time::Instant)>>,
}

/// How long a closed file's read-ahead state is kept for a reopen.
const PARK_FOR: std::time::Duration = std::time::Duration::from_secs(10);
/// At most this many parked states.
const PARK_MAX: usize = 256;

impl Prefetcher {
    pub fn new(
        source: Arc<dyn BlockSource>,
        cache: Arc<BlockCache>,
        cfg: ReadAheadConfig,
        rt: tokio::runtime::Handle,
    ) -> Self {
        Prefetcher {
            rt,
            source,
            cache,
            cfg,
            scan: ScanDetector::default(),
            parked: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Bytes per block (the unit of caching and of the smallest request).
    pub fn block_size(&self) -> u64 {
        self.cache.math().block_size()
    }

    /// Keep `first`, bytes already fetched as block 0 of `src` (a size probe's).
    pub fn seed(&self, src: &OpenVersion, first: Bytes) {
        let (start, end) = self.cache.math().block_range(0, src.version.size);
        if first.len() as u64 == end - start && end > start {
            self.cache.insert(
                BlockId {
                    content: src.content,
                    index: 0,
                },
                first,
            );
        }
    }

    /// A local file of exactly `version`'s bytes, if a tier has one (for the kernel
    /// to read itself; see `BlockSource::local_file`).
    pub fn local_file(
        &self,
        version: &Arc<ContentVersion>,
    ) -> futures::future::BoxFuture<'static, Option<std::fs::File>> {
        self.source.local_file(version)
    }

    /// How the cache treats a newly opened file of `size` bytes; `direct_io` when
    /// the reader bypasses the page cache.
    pub fn retention(&self, size: u64, direct_io: bool) -> Retention {
        let streamed = size >= self.cache.stats().capacity / STREAM_FRACTION;
        if streamed && !direct_io {
            Retention::HandOver(parking_lot::Mutex::new(Handover::default()))
        } else {
            Retention::Keep
        }
    }

    /// Keep the read-ahead state of a closed file for a while.
    pub fn park(&self, file: ContentId, ra: ReadAhead) {
        let mut parked = self.parked.lock();
        parked.retain(|_, (_, at)| at.elapsed() < PARK_FOR);
        if parked.len() < PARK_MAX {
            parked.insert(file, (ra, std::time::Instant::now()));
        }
    }

    /// The read-ahead state for a newly opened file: a recently parked one, or fresh.
    pub fn resume(&self, file: ContentId) -> ReadAhead {
        match self.parked.lock().remove(&file) {
            Some((ra, at)) if at.elapsed() < PARK_FOR => ra,
            _ => ReadAhead::default(),
        }
    }

    /// File `key` of the interaction at `position` in the listing was opened: if this
    /// continues a scan of one key across the listing, fetch that key of the next
    /// interactions (small files only, within the memory budget). `siblings(from, to)`
    /// gives file `key` of the interactions at positions `[from, to)`.
    pub fn on_open(
        &self,
        key: &str,
        position: usize,
        siblings: impl FnOnce(usize, usize) -> Vec<OpenVersion>,
    ) {
        let Some((from, to)) = self.scan.on_open(key, position) else {
            return;
        };
        for src in siblings(from, to) {
            let size = src.version.size;
            if size == 0 || size > scan::SCAN_MAX_FILE {
                continue;
            }
            let blocks = self.cache.math().block_count(size);
            self.fetch_missing(&src, 0, blocks, Some(blocks), Purpose::ReadAhead);
        }
    }

    /// Exactly bytes `[offset, offset+size)` of `src` (shorter at end of file).
    /// `ra` is the reader's read-ahead state (per open file).
    pub async fn read(
        &self,
        src: &OpenVersion,
        ra: &parking_lot::Mutex<ReadAhead>,
        offset: u64,
        size: u64,
        retention: &Retention,
    ) -> Result<Bytes, ReadError> {
        tracing::trace!(content = ?src.content, offset, size, "read");
        let math = self.cache.math();
        let file_size = src.version.size;
        let Some((first, last)) = math.blocks_for(offset, size, file_size) else {
            return Ok(Bytes::new());
        };
        let end = offset.saturating_add(size).min(file_size);

        // Needed blocks first: start whatever is missing (with the whole file, head
        // or tail around them, see the essay). The reader waits on these fetches
        // themselves, so a fetch that fails is this read's error, not a silent second
        // request.
        let mut demand = self.around(src, offset, first);
        let needed = self.fetch_missing(src, first, last + 1, None, Purpose::Demand);
        demand.runs.extend(needed.runs);

        // Then read-ahead, if the reader looks sequential.
        let plan = ra.lock().on_read(&self.cfg, offset, end, file_size);
        if let Some((ra_start, ra_end)) = plan {
            let (a, b) = (
                math.block_of(ra_start),
                math.block_of(ra_end.saturating_sub(1)),
            );
            if ra_start < ra_end {
                let chunk = (self.cfg.chunk_for(ra_end - ra_start) / math.block_size()).max(1);
                let started = self.fetch_missing(src, a, b + 1, Some(chunk), Purpose::ReadAhead);
                if let Some(block) = started.stopped_at {
                    // Out of memory budget: try again from there on the next read.
                    ra.lock().refused_from(math.block_range(block, file_size).0);
                }
            }
        }

        let out = self
            .assemble(src, &demand.runs, offset, end, first, last)
            .await?;
        if let Retention::HandOver(handover) = retention {
            let ((from, to), edges) = handover.lock().delivered(math, offset, end, file_size);
            self.cache.forget(src.content, (from..to).chain(edges));
        }
        Ok(out)
    }

    /// What a read at `offset` (in block `first`) fetches besides its own blocks: the
    /// whole of a small file, the head or the tail of a large one (see the essay) —
    /// when its first block is neither cached nor in flight (a first touch, or the
    /// cache let go of it), so a read of cached blocks costs one look, not a scan.
    fn around(&self, src: &OpenVersion, offset: u64, first: u64) -> Started {
        let id = BlockId {
            content: src.content,
            index: first,
        };
        if !matches!(self.cache.lookup(id), Lookup::Miss) {
            // Touched already (or being fetched): nothing more than the read needs.
            return Started::default();
        }
        let math = self.cache.math();
        let size = src.version.size;
        let blocks = math.block_count(size);
        let bs = math.block_size();
        if size <= self.cfg.whole_file {
            // Under the read-ahead budget: refused, the read fetches what it needs.
            let want = self.want(src, 0, blocks, blocks, Some(self.cfg.inflight_budget));
            return self.start(src, want, Purpose::Demand);
        }
        if self.cfg.probe_lead == 0 {
            return Started::default();
        }
        let head = (self.cfg.max_request / bs).max(1);
        if offset < self.cfg.probe_lead {
            let want = self.want(src, 0, head, head, None);
            return self.start(src, want, Purpose::Demand);
        }
        if offset >= size.saturating_sub(self.cfg.max_request) {
            let from = first.min(math.block_of(size.saturating_sub(self.cfg.probe_lead)));
            let want = self.want(src, from, blocks, blocks - from, None);
            return self.start(src, want, Purpose::Demand);
        }
        Started::default()
    }

    /// Wait for blocks `first..=last` (those in `started` from those fetches) and
    /// cut bytes `offset..end` out of them.
    async fn assemble(
        &self,
        src: &OpenVersion,
        started: &[(Run, Vec<BlockFetch>)],
        offset: u64,
        end: u64,
        first: u64,
        last: u64,
    ) -> Result<Bytes, ReadError> {
        let math = self.cache.math();
        let file_size = src.version.size;
        let mut parts = Vec::with_capacity((last - first + 1) as usize);
        for index in first..=last {
            let fetch = started
                .iter()
                .find(|(run, _)| (run.first..run.first + run.count).contains(&index))
                .and_then(|(run, fetches)| fetches.get((index - run.first) as usize));
            let block = match fetch {
                Some(fetch) => fetch.clone().await?,
                None => self.block(src, index).await?,
            };
            let (bstart, _) = math.block_range(index, file_size);
            let from = offset.saturating_sub(bstart) as usize;
            let to = ((end - bstart) as usize).min(block.len());
            if from > to || to > block.len() {
                return Err(ReadError::block(
                    src,
                    index,
                    format!("has {} bytes", block.len()),
                ));
            }
            parts.push(block.slice(from..to));
        }
        // One block, or blocks back to back in memory: a view, no copy.
        if let [one] = &parts[..] {
            return Ok(one.clone());
        }
        if let Some(joined) = self.cache.pool().join(&parts) {
            return Ok(joined);
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for p in &parts {
            out.extend_from_slice(p);
        }
        Ok(out.freeze())
    }

    /// One block, from the cache, a fetch in flight, or a new fetch.
    async fn block(&self, src: &OpenVersion, index: u64) -> Result<Bytes, ReadError> {
        let id = BlockId {
            content: src.content,
            index,
        };
        // Another reader can claim the block between our look and our claim: look again.
        for _ in 0..3 {
            let fetch = match self.cache.lookup(id) {
                Lookup::Hit(b) => return Ok(b),
                Lookup::Pending(fetch) => fetch,
                Lookup::Miss => {
                    let started = self.fetch_missing(src, index, index + 1, None, Purpose::Demand);
                    match started
                        .runs
                        .into_iter()
                        .next()
                        .and_then(|(_, f)| f.into_iter().next())
                    {
                        Some(fetch) => fetch,
                        // Someone else's fetch took it in between.
                        None => continue,
                    }
                }
            };
            return Ok(fetch.await?);
        }
        Err(ReadError::block(src, index, "vanished".into()))
    }

    /// Start fetches for the blocks in `[from, to)` that are neither cached nor in
    /// flight, as runs of at most `chunk` blocks each (default: the largest request
    /// size). Read-ahead (`chunk` given) stays within the in-flight memory budget, its
    /// runs lined up on multiples of `chunk`.
    fn fetch_missing(
        &self,
        src: &OpenVersion,
        from: u64,
        to: u64,
        chunk: Option<u64>,
        purpose: Purpose,
    ) -> Started {
        let max_run = chunk.unwrap_or(self.cfg.max_request_blocks(self.cache.math()));
        let budget = chunk.map(|_| self.cfg.inflight_budget);
        let mut want = self.want(src, from, to, max_run, budget);
        want.align = chunk.is_some();
        self.start(src, want, purpose)
    }

    fn want(
        &self,
        src: &OpenVersion,
        from: u64,
        to: u64,
        max_run: u64,
        budget: Option<u64>,
    ) -> Want {
        Want {
            content: src.content,
            file_size: src.version.size,
            blocks: from..to,
            max_run,
            budget,
            align: false,
        }
    }

    /// Start the runs of `want`, each one streaming request to the source.
    fn start(&self, src: &OpenVersion, want: Want, purpose: Purpose) -> Started {
        let math = self.cache.math();
        self.cache
            .fetch_missing(&self.rt, want, |run, sink: Arc<dyn BlockSink>| {
                let req = BlockRequest {
                    version: Arc::clone(&src.version),
                    first: run.first,
                    count: run.count,
                    block_size: math.block_size(),
                    pool: self.cache.pool().clone(),
                    purpose,
                };
                self.source.stream(req, sink).map_ok(|_| ())
            })
    }
}

#[cfg(test)]
mod tests;
