//! The memory tier: fixed-size blocks of file content in an LRU bounded by bytes, and a
//! registry of blocks being fetched so that concurrent readers share one fetch.
//!
//! Invariants:
//! - **Keys.** Blocks are keyed by a [`ContentId`] — the in-memory handle of one
//!   version of one file (`version::ContentKey` is its stable name) — so a new version
//!   never sees the old one's blocks: they just age out.
//! - **Single-flight lives here**, not in the sources: which blocks of a range are
//!   missing is decided, and their runs registered as in flight, under the one lock
//!   that also guards the LRU ([`BlockCache::fetch_missing`]). Two readers can
//!   therefore never both see a miss and fetch a block twice, whatever tiers are
//!   below. A fetch runs on its own task, so it fills the cache even if its reader
//!   gave up; a fetch that dies clears its registration (a drop guard), so its blocks
//!   are fetched again rather than pending forever.
//! - **Block by block.** A run is one request, but each of its blocks is a
//!   [`BlockFetch`] of its own, completed (cached, its waiters woken, its in-flight
//!   bytes released) the moment the source hands it over ([`BlockSink`]): the reader
//!   of block 0 of a 16 MiB run waits for block 0 only.
//! - **Shape.** A block must have exactly its length, and a run handed over whole
//!   exactly its blocks; anything else is a [`FetchError::Shape`], never a cached
//!   block. A block the source never hands over fails with the source's error (or
//!   a shape error when it claimed success).
//! - **One memory budget.** Cached bytes + bytes in flight + idle pool memory ≤ the
//!   capacity: idle pool memory is given back to the kernel first, then the least
//!   recently used blocks go.
//! - **Erased content stays out.** [`BlockCache::erase`] drops every cached block of
//!   the given versions and remembers their ids, so a fetch still in flight never
//!   puts one back (ids are never reused: one tombstone per erased file).

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::memory::BlockPool;
use crate::source::{BlockSink, SourceError};
use crate::sync::Mutex;

mod math;
pub use math::BlockMath;

/// One version of one file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentId(pub u64);

/// One block of one content version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockId {
    pub content: ContentId,
    pub index: u64,
}

/// Why a shared fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The source returned blocks that do not fit the run.
    #[error("block fetch: {0}")]
    Shape(String),
    /// The fetch task ended (panicked, or the runtime shut down) without a result.
    #[error("block fetch: the fetch task ended without a result")]
    Abandoned,
}

/// The fetch of one block (part of a run's request), shared by everyone who needs it.
pub type BlockFetch = Shared<BoxFuture<'static, Result<Bytes, FetchError>>>;

/// Blocks `first..first + count` of one file: bytes `offset..offset + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub first: u64,
    pub count: u64,
    pub offset: u64,
    pub len: u64,
}

/// Blocks of one file to fetch ([`BlockCache::fetch_missing`]).
#[derive(Debug, Clone)]
pub struct Want {
    pub content: ContentId,
    pub file_size: u64,
    pub blocks: Range<u64>,
    /// Longest run (one request).
    pub max_run: u64,
    /// Read-ahead: start no run that would take the bytes in flight past this.
    pub budget: Option<u64>,
    /// Also end runs at multiples of `max_run` blocks, so that read-ahead requests
    /// line up with each other (and with a head fetch of `max_run` blocks).
    pub align: bool,
}

/// What [`BlockCache::fetch_missing`] started.
#[derive(Debug, Default)]
pub struct Started {
    /// The runs now being fetched, with the fetch of each of their blocks.
    pub runs: Vec<(Run, Vec<BlockFetch>)>,
    /// Where the read-ahead budget stopped it: the first missing block not started.
    pub stopped_at: Option<u64>,
}

type BlockSender = tokio::sync::oneshot::Sender<Result<Bytes, FetchError>>;

/// A run registered as in flight, filled block by block by its source (it is the
/// run's [`BlockSink`]). Each block handed over is checked, cached and sent to its
/// waiters; [`Filling::finish`] fails the blocks never handed over; dropping it
/// unfinished (the fetch panicked, the runtime shut down) still clears their
/// registration, so they are fetched again rather than failing forever.
struct Filling {
    state: Arc<Mutex<State>>,
    math: BlockMath,
    content: ContentId,
    run: Run,
    slots: Mutex<Slots>,
}

struct Slots {
    /// By position in the run; `None` once handed over (or failed).
    senders: Vec<Option<BlockSender>>,
    /// What was wrong with what the source handed over, if anything.
    shape: Option<String>,
}

impl Filling {
    /// Bytes in block `index` of the run (the file's last may be short).
    fn block_len(&self, index: u64) -> u64 {
        let start = (index - self.run.first) * self.math.block_size();
        self.math
            .block_size()
            .min(self.run.len.saturating_sub(start))
    }

    fn contains(&self, index: u64) -> bool {
        (self.run.first..self.run.first + self.run.count).contains(&index)
    }

    /// Take block `index`'s registration out of the in-flight map; cache `block`.
    fn settle(&self, index: u64, block: Option<&Bytes>) {
        let mut s = self.state.lock();
        self.unregister_locked(&mut s, index);
        if let Some(b) = block {
            let id = BlockId {
                content: self.content,
                index,
            };
            insert_locked(&mut s, id, b.clone());
        }
    }

    /// Take block `index`'s registration (and its in-flight bytes) out of `s`.
    fn unregister_locked(&self, s: &mut State, index: u64) {
        s.inflight_bytes = s.inflight_bytes.saturating_sub(self.block_len(index));
        s.inflight.remove(&BlockId {
            content: self.content,
            index,
        });
    }

    /// Deliver block `index`: cached and sent, or (wrong length) failed.
    fn deliver(&self, slots: &mut Slots, index: u64, block: Bytes) {
        if !self.contains(index) {
            slots.shape = Some(format!("block {index} is not in the run"));
            return;
        }
        let Some(tx) = slots.senders[(index - self.run.first) as usize].take() else {
            return; // handed over already: the first copy stands
        };
        let want = self.block_len(index);
        let result = if block.len() as u64 == want {
            self.settle(index, Some(&block));
            Ok(block)
        } else {
            self.settle(index, None);
            Err(FetchError::Shape(format!(
                "block {index} has {} bytes, not {want}",
                block.len()
            )))
        };
        let _ = tx.send(result);
    }

    /// The fetch ended: fail every block it did not hand over. Their registrations
    /// all go under one lock before anyone hears of the failure, so a reader who
    /// tries again never finds one of them still pending on this dead fetch.
    fn finish(&self, result: Result<(), SourceError>) {
        let mut slots = self.slots.lock();
        let shape = slots.shape.take();
        let failed: Vec<(u64, BlockSender)> = (self.run.first..)
            .zip(slots.senders.iter_mut())
            .filter_map(|(index, tx)| tx.take().map(|tx| (index, tx)))
            .collect();
        {
            let mut s = self.state.lock();
            for &(index, _) in &failed {
                self.unregister_locked(&mut s, index);
            }
        }
        for (index, tx) in failed {
            let err = match &result {
                Err(e) => FetchError::Source(e.clone()),
                Ok(()) => FetchError::Shape(shape.clone().unwrap_or_else(|| {
                    format!(
                        "the source ended without block {index} of {} blocks from {}",
                        self.run.count, self.run.first
                    )
                })),
            };
            let _ = tx.send(Err(err));
        }
    }
}

impl BlockSink for Filling {
    fn put(&self, index: u64, block: Bytes) {
        let mut slots = self.slots.lock();
        self.deliver(&mut slots, index, block);
    }

    fn put_all(&self, first: u64, count: u64, blocks: Vec<Bytes>) {
        let mut slots = self.slots.lock();
        let fits = blocks.len() as u64 == count
            && count > 0
            && self.contains(first)
            && self.contains(first + count - 1)
            && (first..)
                .zip(&blocks)
                .all(|(i, b)| b.len() as u64 == self.block_len(i));
        if !fits {
            let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
            slots.shape = Some(format!(
                "got {} buffers, {total} bytes, for {count} blocks from {first} of a {}-byte run",
                blocks.len(),
                self.run.len
            ));
            return;
        }
        for (index, b) in (first..).zip(blocks) {
            self.deliver(&mut slots, index, b);
        }
    }
}

impl Drop for Filling {
    /// As in [`Filling::finish`]: every registration left goes under one lock before
    /// any waiter hears (its sender is dropped) that the fetch died, so a reader who
    /// tries again never waits on this dead fetch a second time.
    fn drop(&mut self) {
        let senders = std::mem::take(&mut self.slots.get_mut().senders);
        {
            let mut s = self.state.lock();
            for (index, tx) in (self.run.first..).zip(&senders) {
                if tx.is_some() {
                    self.unregister_locked(&mut s, index);
                }
            }
        }
        drop(senders);
    }
}

/// What the cache knows about a block.
#[derive(Debug)]
pub enum Lookup {
    /// Cached.
    Hit(Bytes),
    /// Being fetched.
    Pending(BlockFetch),
    /// Neither.
    Miss,
}

#[derive(Debug)]
struct State {
    lru: lru::LruCache<BlockId, Bytes>,
    used: u64,
    capacity: u64,
    inflight: HashMap<BlockId, BlockFetch>,
    inflight_bytes: u64,
    /// Where the blocks live: its free but resident memory counts against `capacity`.
    pool: BlockPool,
    /// Blocks asked for that were cached or in flight / missing; blocks evicted.
    hits: u64,
    misses: u64,
    evictions: u64,
    /// Erased versions: never cached again.
    erased: std::collections::HashSet<ContentId>,
}

/// Counters for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub cached_bytes: u64,
    pub cached_blocks: u64,
    pub inflight_bytes: u64,
    pub capacity: u64,
    /// Blocks asked for that were cached (or already being fetched).
    pub hits: u64,
    /// Blocks asked for that had to be fetched.
    pub misses: u64,
    /// Blocks evicted to stay within the capacity.
    pub evictions: u64,
}

/// The block cache. Shared by all files of one mount.
#[derive(Debug)]
pub struct BlockCache {
    math: BlockMath,
    state: Arc<Mutex<State>>,
    pool: BlockPool,
}

impl BlockCache {
    /// A cache of at most `capacity` bytes of blocks of `block_size` bytes.
    /// Its full blocks live in a pool of recycled buffers that may map up to 1/16 more
    /// than `capacity` (blocks evicted while a reader still holds them); free blocks
    /// the pool keeps resident for reuse count against `capacity` like cached ones.
    pub fn new(capacity: u64, block_size: u64) -> Self {
        let pool = BlockPool::new(block_size, capacity.saturating_add(capacity / 16), capacity);
        BlockCache {
            math: BlockMath::new(block_size),
            pool: pool.clone(),
            state: Arc::new(Mutex::new(State {
                lru: lru::LruCache::unbounded(),
                used: 0,
                capacity,
                inflight: HashMap::new(),
                inflight_bytes: 0,
                pool,
                hits: 0,
                misses: 0,
                evictions: 0,
                erased: std::collections::HashSet::new(),
            })),
        }
    }

    pub fn math(&self) -> BlockMath {
        self.math
    }

    /// Where fetches put the blocks they receive.
    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    /// Is the block cached, being fetched, or neither? A hit refreshes its LRU position.
    pub fn lookup(&self, id: BlockId) -> Lookup {
        let mut s = self.state.lock();
        if let Some(b) = s.lru.get(&id) {
            return Lookup::Hit(b.clone());
        }
        match s.inflight.get(&id) {
            Some(fetch) => Lookup::Pending(fetch.clone()),
            None => Lookup::Miss,
        }
    }

    /// Start fetching the blocks of `want` that are neither cached nor in flight, as
    /// runs of consecutive blocks, `fetch(run, sink)` fetching one run and handing
    /// its blocks to `sink` as they arrive. What is missing is decided and registered
    /// under one lock, so concurrent readers never fetch a block twice; blocks
    /// already cached count as just used. Each fetch runs on its own task, so it
    /// completes (and fills the cache) even if nobody waits for it.
    pub fn fetch_missing<F, Fut>(
        &self,
        rt: &tokio::runtime::Handle,
        want: Want,
        fetch: F,
    ) -> Started
    where
        F: Fn(Run, Arc<dyn BlockSink>) -> Fut,
        Fut: Future<Output = Result<(), SourceError>> + Send + 'static,
    {
        let (started, tasks) = self.start_missing(want, fetch);
        for task in tasks {
            rt.spawn(task);
        }
        started
    }

    /// [`BlockCache::fetch_missing`] less the spawning: the fetch of each run started,
    /// as a task to run on its own (one dropped unfinished is a fetch that died).
    fn start_missing<F, Fut>(
        &self,
        want: Want,
        fetch: F,
    ) -> (Started, Vec<impl Future<Output = ()> + Send + 'static>)
    where
        F: Fn(Run, Arc<dyn BlockSink>) -> Fut,
        Fut: Future<Output = Result<(), SourceError>> + Send + 'static,
    {
        let mut started = Started::default();
        let mut senders = Vec::new();
        {
            let mut s = self.state.lock();
            for run in missing_runs(&mut s, self.math, &want) {
                if want.budget.is_some_and(|b| s.inflight_bytes + run.len > b) {
                    started.stopped_at = Some(run.first);
                    break;
                }
                let (tx, shared) = register_locked(&mut s, want.content, run);
                started.runs.push((run, shared));
                senders.push(tx);
            }
            evict_locked(&mut s);
        }
        let mut tasks = Vec::with_capacity(senders.len());
        for (&(run, _), senders) in started.runs.iter().zip(senders) {
            let filling = Arc::new(Filling {
                state: Arc::clone(&self.state),
                math: self.math,
                content: want.content,
                run,
                slots: Mutex::new(Slots {
                    senders: senders.into_iter().map(Some).collect(),
                    shape: None,
                }),
            });
            let fetch = fetch(run, Arc::clone(&filling) as Arc<dyn BlockSink>);
            tasks.push(async move {
                let result = fetch.await;
                filling.finish(result);
            });
        }
        (started, tasks)
    }

    /// Put a block in the cache (evicting least recently used ones to stay in budget).
    pub fn insert(&self, id: BlockId, data: Bytes) {
        insert_locked(&mut self.state.lock(), id, data);
    }

    /// Drop cached blocks `blocks` of `content` (a reader's kernel page cache holds
    /// them now); their memory goes back to the pool once no reader holds it.
    pub fn forget(&self, content: ContentId, blocks: impl IntoIterator<Item = u64>) {
        let mut s = self.state.lock();
        for index in blocks {
            if let Some(b) = s.lru.pop(&BlockId { content, index }) {
                s.used -= b.len() as u64;
            }
        }
    }

    /// Drop every cached block of `contents` (erased versions) and refuse them from
    /// now on; returns how many blocks were dropped.
    pub fn erase(&self, contents: &[ContentId]) -> u64 {
        if contents.is_empty() {
            return 0;
        }
        let mut s = self.state.lock();
        s.erased.extend(contents.iter().copied());
        let doomed: Vec<BlockId> = s
            .lru
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| contents.contains(&id.content))
            .collect();
        for id in &doomed {
            if let Some(b) = s.lru.pop(id) {
                s.used -= b.len() as u64;
            }
        }
        doomed.len() as u64
    }

    pub fn stats(&self) -> CacheStats {
        let s = self.state.lock();
        CacheStats {
            cached_bytes: s.used,
            cached_blocks: s.lru.len() as u64,
            inflight_bytes: s.inflight_bytes,
            capacity: s.capacity,
            hits: s.hits,
            misses: s.misses,
            evictions: s.evictions,
        }
    }
}

/// The blocks of `want` neither cached nor in flight, as runs of at most `max_run`.
/// Cached ones count as just used.
fn missing_runs(s: &mut State, math: BlockMath, want: &Want) -> Vec<Run> {
    let mut present = |index| {
        let id = BlockId {
            content: want.content,
            index,
        };
        s.lru.get(&id).is_some() || s.inflight.contains_key(&id)
    };
    let max_run = want.max_run.max(1);
    let mut runs: Vec<Run> = Vec::new();
    let mut open = false;
    let end = want.blocks.end.min(math.block_count(want.file_size));
    let (mut hits, mut misses) = (0, 0);
    for index in want.blocks.start..end {
        if present(index) {
            hits += 1;
            open = false;
            continue;
        }
        misses += 1;
        let (start, end) = math.block_range(index, want.file_size);
        let boundary = want.align && index % max_run == 0;
        match runs.last_mut() {
            Some(run) if open && run.count < max_run && !boundary => {
                run.count += 1;
                run.len = end - run.offset;
            }
            _ => runs.push(Run {
                first: index,
                count: 1,
                offset: start,
                len: end - start,
            }),
        }
        open = true;
    }
    s.hits += hits;
    s.misses += misses;
    runs
}

/// Register `run` as in flight: each block a shared fetch of its own, completed
/// through the returned senders.
fn register_locked(
    s: &mut State,
    content: ContentId,
    run: Run,
) -> (Vec<BlockSender>, Vec<BlockFetch>) {
    let mut senders = Vec::with_capacity(run.count as usize);
    let mut fetches = Vec::with_capacity(run.count as usize);
    for index in run.first..run.first + run.count {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared: BlockFetch = async move { rx.await.unwrap_or(Err(FetchError::Abandoned)) }
            .boxed()
            .shared();
        s.inflight
            .insert(BlockId { content, index }, shared.clone());
        senders.push(tx);
        fetches.push(shared);
    }
    s.inflight_bytes += run.len;
    (senders, fetches)
}

/// Insert, then evict least recently used blocks until cached plus in-flight bytes fit
/// the capacity (so memory stays bounded by it whatever read-ahead is doing).
fn insert_locked(s: &mut State, id: BlockId, data: Bytes) {
    let len = data.len() as u64;
    if len > s.capacity || s.erased.contains(&id.content) {
        return;
    }
    if let Some(old) = s.lru.put(id, data) {
        s.used -= old.len() as u64;
    }
    s.used += len;
    evict_locked(s);
}

/// Make cached, in-flight and idle pool bytes fit the capacity: idle pool memory goes
/// back to the kernel first (cheaper than losing cached data), then the least recently
/// used blocks go.
fn evict_locked(s: &mut State) {
    loop {
        let idle = s.pool.idle_resident_bytes() as u64;
        let over = (s.used + s.inflight_bytes + idle).saturating_sub(s.capacity);
        if over == 0 {
            return;
        }
        if idle > 0
            && s.pool
                .give_back(usize::try_from(over).unwrap_or(usize::MAX))
                > 0
        {
            continue;
        }
        if s.lru.len() <= 1 {
            return;
        }
        match s.lru.pop_lru() {
            Some((_, b)) => {
                s.used -= b.len() as u64;
                s.evictions += 1;
            }
            None => return,
        }
    }
}

#[cfg(all(feature = "shuttle", test))]
mod shuttle_tests;
#[cfg(test)]
mod tests;
