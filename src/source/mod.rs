//! The source seam: where blocks come from, below the memory cache.
//!
//! A [`BlockSource`] fetches a run of consecutive blocks of one [`ContentVersion`].
//! The HTTP client is one ([`origin`]); a tier that keeps blocks (disk, a shared Redis)
//! is a [`BlockStore`] composed in front of another source with [`Tiered`], so the
//! whole chain — memory → disk → shared → API — is one `Arc<dyn BlockSource>` that
//! `prefetch` and `fs` hold without knowing what is behind it.
//!
//! The read path, end to end: `fs` asks `prefetch::Prefetcher::read` for bytes; it
//! asks the memory cache (`cache::BlockCache`) which blocks are missing, and the cache
//! registers each missing run as in flight (single-flight lives there, so two readers
//! never fetch one block twice) and runs `BlockSource::fetch` for it on a runtime
//! task; the chain answers from the nearest tier that holds the blocks, else the API.
//!
//! Blocks are delivered as they arrive ([`BlockSource::stream`]): a run of a whole
//! 16 MiB file is one request, yet its reader gets block 0 when block 0 has come,
//! not when the whole body has. A source that cannot stream (a store answering at
//! once) keeps the default, which fetches the run and hands it over whole.
//!
//! Invariants every source keeps:
//! - **In order, once.** `stream` hands each block of the run to the sink at most
//!   once, in index order, each whole; `Ok` means every block was handed over.
//!   Blocks handed over before an error stay good (a retry resumes after them).
//! - **Exact shape.** `fetch` returns exactly `req.count` blocks, each `block_size`
//!   bytes except the file's last, or an error — never a short or shifted run. The
//!   cache checks this again and turns a violation into an error, not a block.
//! - **One version.** Blocks come with the validator they were served under; a tier's
//!   blocks whose validator differs from the version's pin are a miss, and a tier
//!   seeds an unpinned version from its own (see `version`).
//! - **A broken tier is a miss.** Errors are [`SourceError::Tier`] ("this tier could
//!   not answer: ask the next one") or [`SourceError::Origin`] ("the API says no":
//!   not found, forbidden, changed). [`Tiered`] never lets a tier error escape: the
//!   next source answers instead. Only the origin's answer reaches a reader's errno.

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::api::{ApiError, RequestKind};
use crate::memory::BlockPool;
use crate::version::{ContentVersion, Validator};

pub(crate) mod disk;
mod origin;
mod served;
mod tiered;
pub use served::{Served, TaggedSource, TaggedStore};
pub use tiered::{BlockStore, StoreError, Tiered};

#[cfg(test)]
pub(crate) mod mock;

/// A run of blocks to fetch: blocks `first..first + count` of `version`.
#[derive(Debug, Clone)]
pub struct BlockRequest {
    pub version: Arc<ContentVersion>,
    pub first: u64,
    pub count: u64,
    pub block_size: u64,
    /// Where the blocks' buffers come from.
    pub pool: BlockPool,
    /// What the request is for (named to the API, counted by purpose).
    pub purpose: Purpose,
}

/// Why a run is fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A reader waits for (part of) it.
    Demand,
    /// Nobody waits yet: read-ahead, a scan's siblings.
    ReadAhead,
}

impl Purpose {
    /// How the API client counts and names it.
    pub fn kind(self) -> RequestKind {
        match self {
            Purpose::Demand => RequestKind::Content,
            Purpose::ReadAhead => RequestKind::ReadAhead,
        }
    }
}

impl BlockRequest {
    /// Byte range `[start, end)` of block `index` (the last block may be short).
    pub fn block_range(&self, index: u64) -> (u64, u64) {
        let start = index.saturating_mul(self.block_size).min(self.version.size);
        let end = start.saturating_add(self.block_size).min(self.version.size);
        (start, end)
    }

    /// First byte of the run.
    pub fn offset(&self) -> u64 {
        self.block_range(self.first).0
    }

    /// Bytes in the run.
    pub fn bytes(&self) -> u64 {
        self.block_range(self.first + self.count.saturating_sub(1))
            .1
            - self.offset()
    }

    /// The same request for blocks `first..first + count` only.
    pub fn sub(&self, first: u64, count: u64) -> BlockRequest {
        BlockRequest {
            first,
            count,
            ..self.clone()
        }
    }
}

/// What a fetch returns: the blocks, and the validator they were served under.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub blocks: Vec<Bytes>,
    pub validator: Option<Validator>,
}

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// This tier could not answer (broken, unreachable, corrupt): ask the next one.
    #[error("{tier} tier: {detail}")]
    Tier { tier: &'static str, detail: String },
    /// The API's answer (or its failure after retries): final for this read.
    #[error(transparent)]
    Origin(#[from] ApiError),
}

/// Where a streamed run's blocks go as they arrive (see [`BlockSource::stream`]).
pub trait BlockSink: Send + Sync {
    /// Block `index` of the run, whole.
    fn put(&self, index: u64, block: Bytes);
    /// Blocks `first..first + count` at once, as a non-streaming source returns them:
    /// taken only if there are exactly `count` (else none is: a shape error).
    fn put_all(&self, first: u64, count: u64, blocks: Vec<Bytes>);
}

/// Fetches runs of blocks of one content version (see the module essay).
pub trait BlockSource: Send + Sync + Debug {
    /// A local file holding exactly `version`'s bytes, offset for offset, checked in
    /// full against what the tier recorded of them and seeding the version's pin —
    /// for the kernel to read directly (FUSE passthrough). Default: none.
    fn local_file(
        &self,
        _version: &Arc<ContentVersion>,
    ) -> BoxFuture<'static, Option<std::fs::File>> {
        Box::pin(futures::future::ready(None))
    }

    /// Exactly the blocks of `req`, or an error.
    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>>;

    /// The blocks of `req` handed to `sink` as they arrive; the validator they came
    /// under. Default: [`BlockSource::fetch`], then the run whole.
    fn stream(
        &self,
        req: BlockRequest,
        sink: Arc<dyn BlockSink>,
    ) -> BoxFuture<'static, Result<Option<Validator>, SourceError>> {
        let (first, count) = (req.first, req.count);
        let fetch = self.fetch(req);
        Box::pin(async move {
            let fetched = fetch.await?;
            sink.put_all(first, count, fetched.blocks);
            Ok(fetched.validator)
        })
    }
}

/// A sink that keeps what it is given.
#[derive(Debug, Default)]
pub struct Collect(parking_lot::Mutex<Vec<(u64, Bytes)>>);

impl Collect {
    /// The blocks kept from `first` on, in order, up to the first one missing (all of
    /// them after a stream that succeeded; what arrived, after one that failed).
    pub fn prefix(&self, first: u64) -> Vec<Bytes> {
        let mut got = std::mem::take(&mut *self.0.lock());
        got.sort_by_key(|(at, _)| *at);
        (first..)
            .zip(got)
            .take_while(|(i, (at, _))| i == at)
            .map(|(_, (_, b))| b)
            .collect()
    }
}

impl BlockSink for Collect {
    fn put(&self, index: u64, block: Bytes) {
        self.0.lock().push((index, block));
    }
    fn put_all(&self, first: u64, count: u64, blocks: Vec<Bytes>) {
        if blocks.len() as u64 == count {
            self.0.lock().extend((first..).zip(blocks));
        }
    }
}
