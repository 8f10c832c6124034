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
//! Invariants every source keeps:
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

use crate::api::ApiError;
use crate::memory::BlockPool;
use crate::version::{ContentVersion, Validator};

pub(crate) mod disk;
mod origin;
mod tiered;
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

/// Fetches runs of blocks of one content version (see the module essay).
pub trait BlockSource: Send + Sync + Debug {
    /// Exactly the blocks of `req`, or an error.
    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>>;
}
