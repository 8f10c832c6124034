//! A tier that keeps blocks ([`BlockStore`]) in front of the next source: a run is
//! answered block by block from the store, the gaps are fetched from the next source
//! as runs of their own, and what comes back is handed to the store to keep.
//!
//! Invariants:
//! - A store error, a block of the wrong length, or a block whose validator is not the
//!   version's pin is a miss: the block is fetched from the next source (and a
//!   mismatched one is discarded from the store). Nothing a store holds can fail a read
//!   or change its bytes.
//! - A store's validator seeds an unpinned version, so blocks of one read come from
//!   one version whichever tier served them: the next source then asks with
//!   `If-Range` for that validator and fails with "changed" rather than mix.
//! - `put` never waits for the store's I/O (write-behind is the store's job).
//! - **Streams in order.** [`BlockSource::stream`] hands held blocks on at once, and
//!   each gap's blocks as the next source streams them, but never a block before
//!   those ahead of it in the run. A gap is handed to the store when its stream
//!   ends — what arrived of it, even if the stream then failed.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{join_all, BoxFuture};
use futures::FutureExt;

use super::{BlockRequest, BlockSink, BlockSource, Collect, Fetched, SourceError};
use crate::version::{ContentVersion, Validator};

/// Why a store could not answer (always treated as a miss).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// A block held by a store, with the validator it was fetched under.
pub type Stored = (Bytes, Option<Validator>);

/// A tier that keeps blocks by content version and index.
pub trait BlockStore: Send + Sync + std::fmt::Debug {
    /// Short name for logs and counters (`disk`, `shared`).
    fn name(&self) -> &'static str;
    /// Block `index` of `version`, if held intact.
    fn get(
        &self,
        version: &Arc<ContentVersion>,
        index: u64,
        req: &BlockRequest,
    ) -> BoxFuture<'static, Result<Option<Stored>, StoreError>>;
    /// Keep blocks `first..` of `version`, just fetched from the next source.
    fn put(&self, version: &Arc<ContentVersion>, first: u64, fetched: &Fetched);
    /// Resolves when a `put` of `bytes` is likely to be kept rather than dropped for
    /// want of queue room (or when waiting longer is not worth it): backpressure on
    /// whoever fetches faster than the store writes. The reader has its bytes already.
    fn room(&self, _bytes: u64) -> BoxFuture<'static, ()> {
        futures::future::ready(()).boxed()
    }
    /// Drop block `index` of `version`: it belongs to another version of the bytes.
    fn discard(&self, version: &Arc<ContentVersion>, index: u64);
    /// A local file of exactly `version`'s bytes, checked, if this store keeps one
    /// (see [`BlockSource::local_file`]). Default: none.
    fn local_file(&self, _version: &Arc<ContentVersion>) -> BoxFuture<'static, Option<File>> {
        futures::future::ready(None).boxed()
    }
}

/// Counters of one tier.
#[derive(Debug, Default)]
pub struct TierCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
    pub discarded: AtomicU64,
}

/// A snapshot of [`TierCounters`].
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub discarded: u64,
}

/// `store` in front of `next`.
#[derive(Debug)]
pub struct Tiered {
    store: Arc<dyn BlockStore>,
    next: Arc<dyn BlockSource>,
    counters: Arc<TierCounters>,
}

impl Tiered {
    pub fn new(store: Arc<dyn BlockStore>, next: Arc<dyn BlockSource>) -> Tiered {
        Tiered {
            store,
            next,
            counters: Arc::default(),
        }
    }

    /// The counters now (the disk and shared tiers report their own to operators).
    #[cfg(test)]
    pub fn stats(&self) -> TierStats {
        let c = &self.counters;
        TierStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
        }
    }
}

/// Is `stored` block `index` of `req`'s version, whole?
fn usable(req: &BlockRequest, index: u64, stored: &Stored) -> Result<(), &'static str> {
    let (start, end) = req.block_range(index);
    if stored.0.len() as u64 != end - start {
        return Err("wrong length");
    }
    match (&stored.1, req.version.pinned()) {
        (Some(v), _) if req.version.pin(v) => Ok(()),
        (Some(_), _) => Err("another version"),
        (None, None) => Ok(()),
        (None, Some(_)) => Err("no validator"),
    }
}

impl BlockSource for Tiered {
    /// The store's file, else the next source's.
    fn local_file(&self, version: &Arc<ContentVersion>) -> BoxFuture<'static, Option<File>> {
        let mine = self.store.local_file(version);
        let next = Arc::clone(&self.next);
        let version = Arc::clone(version);
        async move {
            match mine.await {
                Some(f) => Some(f),
                None => next.local_file(&version).await,
            }
        }
        .boxed()
    }

    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>> {
        let (first, count) = (req.first, req.count);
        let name = self.store.name();
        let sink = Arc::new(Collect::default());
        let stream = self.stream(req, sink.clone());
        async move {
            let validator = stream.await?;
            let blocks = sink.prefix(first);
            if blocks.len() as u64 != count {
                return Err(fewer(name));
            }
            Ok(Fetched { blocks, validator })
        }
        .boxed()
    }

    /// Held blocks go to `sink` at once up to the first gap; the gaps stream from the
    /// next source all at once, each block passed on as soon as those before it are
    /// (the sink sees the run in index order), and each gap is handed to the store to
    /// keep — what arrived of it, even when its stream then fails.
    fn stream(
        &self,
        req: BlockRequest,
        sink: Arc<dyn BlockSink>,
    ) -> BoxFuture<'static, Result<Option<Validator>, SourceError>> {
        let store = Arc::clone(&self.store);
        let next = Arc::clone(&self.next);
        let counters = Arc::clone(&self.counters);
        async move {
            let version = Arc::clone(&req.version);
            let looks = (req.first..req.first + req.count).map(|i| store.get(&version, i, &req));
            let mut blocks: Vec<Option<Bytes>> = Vec::with_capacity(req.count as usize);
            for (index, got) in (req.first..).zip(join_all(looks).await) {
                let block = match got {
                    Ok(Some(stored)) => match usable(&req, index, &stored) {
                        Ok(()) => Some(stored.0),
                        Err(why) => {
                            tracing::debug!(tier = store.name(), %why, index, "stored block refused");
                            counters.discarded.fetch_add(1, Ordering::Relaxed);
                            store.discard(&version, index);
                            None
                        }
                    },
                    Ok(None) => None,
                    Err(e) => {
                        tracing::debug!(tier = store.name(), error = %e, "tier failed: a miss");
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                };
                let counter = if block.is_some() {
                    &counters.hits
                } else {
                    &counters.misses
                };
                counter.fetch_add(1, Ordering::Relaxed);
                blocks.push(block);
            }
            let gaps = gaps(req.first, &blocks);
            let order = Arc::new(InOrder {
                to: sink,
                state: parking_lot::Mutex::new((req.first, BTreeMap::new())),
            });
            for (index, b) in (req.first..).zip(blocks) {
                if let Some(b) = b {
                    order.put(index, b);
                }
            }
            // The gaps, as runs of consecutive missing blocks, from the next source.
            let kept: Vec<Arc<Collect>> = gaps.iter().map(|_| Arc::default()).collect();
            let fetches = gaps.iter().zip(&kept).map(|(&(first, count), kept)| {
                let tee = Arc::new(Tee {
                    kept: Arc::clone(kept),
                    to: Arc::clone(&order),
                });
                next.stream(req.sub(first, count), tee)
            });
            let results = join_all(fetches).await;
            let mut outcome = Ok(());
            for ((&(first, count), kept), result) in gaps.iter().zip(kept).zip(results) {
                let got = kept.prefix(first);
                let whole = got.len() as u64 == count;
                if !got.is_empty() {
                    store.room(got.iter().map(|b| b.len() as u64).sum()).await;
                    let validator = result.as_ref().ok().cloned().flatten();
                    let validator = validator.or_else(|| version.pinned().cloned());
                    store.put(&version, first, &Fetched { blocks: got, validator });
                }
                let this = match result {
                    Err(e) => Err(e),
                    Ok(_) if !whole => Err(fewer(store.name())),
                    Ok(_) => Ok(()),
                };
                outcome = outcome.and(this);
            }
            outcome?;
            Ok(version.pinned().cloned())
        }
        .boxed()
    }
}

fn fewer(tier: &'static str) -> SourceError {
    SourceError::Tier {
        tier,
        detail: "the next source returned fewer blocks than asked".into(),
    }
}

/// Passes blocks on in index order from `next` on, holding back those that come early.
struct InOrder {
    to: Arc<dyn BlockSink>,
    state: parking_lot::Mutex<(u64, BTreeMap<u64, Bytes>)>,
}

impl InOrder {
    fn put(&self, index: u64, block: Bytes) {
        let mut s = self.state.lock();
        let (next, early) = &mut *s;
        if index < *next {
            return; // delivered already
        }
        early.insert(index, block);
        while let Some(b) = early.remove(next) {
            self.to.put(*next, b);
            *next += 1;
        }
    }
}

/// The sink of one gap: keeps its blocks for the store and passes them on in order.
struct Tee {
    kept: Arc<Collect>,
    to: Arc<InOrder>,
}

impl BlockSink for Tee {
    fn put(&self, index: u64, block: Bytes) {
        self.kept.put(index, block.clone());
        self.to.put(index, block);
    }
    fn put_all(&self, first: u64, count: u64, blocks: Vec<Bytes>) {
        if blocks.len() as u64 != count {
            return; // not the gap's blocks: none of it (the gap comes back short)
        }
        for (index, b) in (first..).zip(blocks) {
            self.put(index, b);
        }
    }
}

/// Runs `(first, count)` of the `None`s in `blocks` (block `first` at position 0).
fn gaps(first: u64, blocks: &[Option<Bytes>]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut open = false;
    for (index, b) in (first..).zip(blocks) {
        match (b, out.last_mut()) {
            (Some(_), _) => open = false,
            (None, Some(run)) if open => run.1 += 1,
            (None, _) => {
                out.push((index, 1));
                open = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::mock::{file_version, MemStore, MockSource};
    use super::*;

    fn req(source: &MockSource, first: u64, count: u64) -> BlockRequest {
        BlockRequest {
            version: source.version(),
            first,
            count,
            block_size: 4,
            pool: crate::memory::BlockPool::heap_only(),
            purpose: super::super::Purpose::Demand,
        }
    }

    #[test]
    fn gaps_are_runs_of_missing_blocks() {
        let b =
            |s: &[bool]| -> Vec<Option<Bytes>> { s.iter().map(|&h| h.then(Bytes::new)).collect() };
        assert_eq!(gaps(3, &b(&[false, false, true, false])), [(3, 2), (6, 1)]);
        assert_eq!(gaps(0, &b(&[true, true])), []);
        assert_eq!(gaps(0, &b(&[false, true, false, false])), [(0, 1), (2, 2)]);
    }

    #[tokio::test]
    async fn a_store_answers_what_it_holds_and_the_next_source_the_gaps() {
        let origin = Arc::new(MockSource::new(30));
        let store = Arc::new(MemStore::default());
        let tiered = Tiered::new(store.clone(), origin.clone());
        let first = tiered.fetch(req(&origin, 0, 8)).await.expect("fetch");
        assert_eq!(first.blocks.concat(), origin.bytes().to_vec());
        assert_eq!(origin.requests(), [(0, 8)]);
        store.forget(2);
        store.forget(3);
        store.forget(6);
        let again = tiered.fetch(req(&origin, 0, 8)).await.expect("fetch");
        assert_eq!(again.blocks.concat(), origin.bytes().to_vec());
        assert_eq!(origin.requests(), [(0, 8), (2, 2), (6, 1)], "only the gaps");
        assert_eq!(tiered.stats().hits, 5);
    }

    #[tokio::test]
    async fn a_broken_store_is_a_miss_never_an_error() {
        let origin = Arc::new(MockSource::new(30));
        let store = Arc::new(MemStore::default());
        let tiered = Tiered::new(store.clone(), origin.clone());
        tiered.fetch(req(&origin, 0, 8)).await.expect("fill");
        store.set_broken(true);
        let got = tiered.fetch(req(&origin, 0, 8)).await.expect("fetch");
        assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
        assert_eq!(tiered.stats().errors, 8);
        assert_eq!(origin.requests().len(), 2);
    }

    #[tokio::test]
    async fn stored_blocks_of_another_version_or_length_are_refused() {
        let origin = Arc::new(MockSource::new(30));
        let store = Arc::new(MemStore::default());
        let tiered = Tiered::new(store.clone(), origin.clone());
        tiered.fetch(req(&origin, 0, 8)).await.expect("fill");
        // Block 1 from another version; block 2 truncated.
        let v = origin.version();
        store.set(
            &v,
            1,
            Bytes::from_static(b"XXXX"),
            Some(Validator::ETag("\"old\"".into())),
        );
        store.set(&v, 2, Bytes::from_static(b"ab"), v.pinned().cloned());
        let got = tiered.fetch(req(&origin, 0, 8)).await.expect("fetch");
        assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
        assert_eq!(tiered.stats().discarded, 2);
        assert_eq!(origin.requests(), [(0, 8), (1, 2)]);
    }

    #[tokio::test]
    async fn a_stored_validator_pins_an_unpinned_version() {
        let origin = Arc::new(MockSource::new(30));
        let store = Arc::new(MemStore::default());
        let v = file_version(30);
        store.set(
            &v,
            0,
            Bytes::from_static(b"abcd"),
            Some(Validator::ETag("\"disk\"".into())),
        );
        let tiered = Tiered::new(store, origin.clone());
        let r = BlockRequest {
            version: Arc::clone(&v),
            ..req(&origin, 0, 1)
        };
        let got = tiered.fetch(r).await.expect("fetch");
        assert_eq!(&got.blocks[0][..], b"abcd");
        assert_eq!(v.pinned(), Some(&Validator::ETag("\"disk\"".into())));
    }
}
