//! The block cache: fixed-size blocks of file content in an LRU bounded by bytes, and a
//! registry of blocks being fetched so that concurrent readers share one fetch.
//!
//! Blocks are keyed by a [`ContentId`] — one per version of one file — so a new version
//! never sees the old one's blocks: they just age out.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use parking_lot::Mutex;

use crate::api::ApiError;
use crate::memory::BlockPool;

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

/// A fetch of consecutive blocks, shared by everyone who needs one of them.
pub type BlockFetch = Shared<BoxFuture<'static, Result<Arc<Vec<Bytes>>, ApiError>>>;

/// What the cache knows about a block.
#[derive(Debug)]
pub enum Lookup {
    /// Cached.
    Hit(Bytes),
    /// Being fetched: block number `index` of the fetch's result.
    Pending { fetch: BlockFetch, index: usize },
    /// Neither.
    Miss,
}

#[derive(Debug)]
struct State {
    lru: lru::LruCache<BlockId, Bytes>,
    used: u64,
    capacity: u64,
    inflight: HashMap<BlockId, (BlockFetch, usize)>,
    inflight_bytes: u64,
    /// Where the blocks live: its free but resident memory counts against `capacity`.
    pool: BlockPool,
}

/// Counters for tests and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub cached_bytes: u64,
    pub cached_blocks: u64,
    pub inflight_bytes: u64,
    pub capacity: u64,
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
            Some((fetch, index)) => Lookup::Pending {
                fetch: fetch.clone(),
                index: *index,
            },
            None => Lookup::Miss,
        }
    }

    /// True when the block is cached or being fetched (no LRU update).
    pub fn is_present(&self, id: BlockId) -> bool {
        let s = self.state.lock();
        s.lru.contains(&id) || s.inflight.contains_key(&id)
    }

    /// Bytes being fetched right now (read-ahead uses this as its memory budget).
    pub fn inflight_bytes(&self) -> u64 {
        self.state.lock().inflight_bytes
    }

    /// Fetch blocks `first..first+count` of `content` with `fetch`, which must return
    /// exactly their bytes, concatenated (`len` bytes). The fetch runs on its own task, so
    /// it completes (and fills the cache) even if nobody waits for it. Blocks already
    /// cached or in flight are the caller's to skip: this registers all of them.
    pub fn start_fetch<F>(
        &self,
        rt: &tokio::runtime::Handle,
        content: ContentId,
        first: u64,
        count: u64,
        len: u64,
        fetch: F,
    ) -> BlockFetch
    where
        F: std::future::Future<Output = Result<Vec<Bytes>, ApiError>> + Send + 'static,
    {
        let math = self.math;
        let state = Arc::clone(&self.state);
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<Arc<Vec<Bytes>>, ApiError>>();
        let shared: BlockFetch = async move {
            rx.await.unwrap_or_else(|_| {
                Err(ApiError::Transport {
                    what: "block fetch".into(),
                    detail: "fetch task ended without a result".into(),
                })
            })
        }
        .boxed()
        .shared();
        {
            let mut s = self.state.lock();
            for i in 0..count {
                s.inflight.insert(
                    BlockId {
                        content,
                        index: first + i,
                    },
                    (shared.clone(), i as usize),
                );
            }
            s.inflight_bytes += len;
            evict_locked(&mut s);
        }
        rt.spawn(async move {
            let result = fetch.await.and_then(|blocks| {
                let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
                let shaped = blocks.len() as u64 == count
                    && blocks.iter().rev().skip(1).all(|b| b.len() as u64 == math.block_size());
                if total != len || !shaped {
                    return Err(ApiError::Protocol {
                        what: "block fetch".into(),
                        detail: format!("got {} buffers, {total} bytes, for {count} blocks of a {len}-byte range", blocks.len()),
                    });
                }
                Ok(Arc::new(blocks))
            });
            {
                let mut s = state.lock();
                s.inflight_bytes = s.inflight_bytes.saturating_sub(len);
                for i in 0..count {
                    let id = BlockId {
                        content,
                        index: first + i,
                    };
                    s.inflight.remove(&id);
                    if let Ok(blocks) = &result {
                        if let Some(b) = blocks.get(i as usize) {
                            insert_locked(&mut s, id, b.clone());
                        }
                    }
                }
            }
            let _ = tx.send(result);
        });
        shared
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

    pub fn stats(&self) -> CacheStats {
        let s = self.state.lock();
        CacheStats {
            cached_bytes: s.used,
            cached_blocks: s.lru.len() as u64,
            inflight_bytes: s.inflight_bytes,
            capacity: s.capacity,
        }
    }
}

/// Insert, then evict least recently used blocks until cached plus in-flight bytes fit
/// the capacity (so memory stays bounded by it whatever read-ahead is doing).
fn insert_locked(s: &mut State, id: BlockId, data: Bytes) {
    let len = data.len() as u64;
    if len > s.capacity {
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
            Some((_, b)) => s.used -= b.len() as u64,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_pool_memory_counts_against_the_capacity() {
        const B: usize = 256 << 10;
        let c = BlockCache::new(8 * B as u64, B as u64);
        let content = ContentId(1);
        for (i, mut buf) in c.pool().run(8).into_iter().enumerate() {
            assert!(buf.is_pooled());
            buf.extend_from_slice(&[i as u8; B]);
            c.insert(
                BlockId {
                    content,
                    index: i as u64,
                },
                buf.freeze(),
            );
        }
        assert_eq!(c.stats().cached_bytes, 8 * B as u64);
        c.forget(content, 0..8);
        assert_eq!(c.pool().idle_resident_bytes(), 8 * B, "kept for reuse");
        // Small files (heap blocks) now fill the cache: the idle pool memory makes
        // room instead of adding up with them.
        for i in 0..6u64 {
            c.insert(id(100 + i), Bytes::from(vec![1u8; B]));
            let used = c.stats().cached_bytes as usize;
            assert!(used + c.pool().idle_resident_bytes() <= 8 * B, "after {i}");
        }
        assert_eq!(c.stats().cached_blocks, 6, "nothing cached was evicted");
        assert_eq!(c.pool().idle_resident_bytes(), 2 * B);
    }

    fn id(i: u64) -> BlockId {
        BlockId {
            content: ContentId(1),
            index: i,
        }
    }

    #[test]
    fn lru_evicts_by_bytes() {
        let c = BlockCache::new(10, 4);
        c.insert(id(0), Bytes::from_static(b"aaaa"));
        c.insert(id(1), Bytes::from_static(b"bbbb"));
        assert!(matches!(c.lookup(id(0)), Lookup::Hit(_)));
        c.insert(id(2), Bytes::from_static(b"cccc"));
        // 12 > 10: the least recently used (block 1) goes.
        assert!(matches!(c.lookup(id(1)), Lookup::Miss));
        assert!(matches!(c.lookup(id(0)), Lookup::Hit(_)));
        assert_eq!(c.stats().cached_bytes, 8);
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_fetch() {
        let c = BlockCache::new(1 << 20, 4);
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let calls2 = Arc::clone(&calls);
        let rt = tokio::runtime::Handle::current();
        let f = c.start_fetch(&rt, ContentId(1), 0, 2, 8, async move {
            calls2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(vec![
                Bytes::from_static(b"aaaa"),
                Bytes::from_static(b"bbbb"),
            ])
        });
        let Lookup::Pending { fetch, index } = c.lookup(id(1)) else {
            panic!("block 1 must be pending");
        };
        assert_eq!(index, 1);
        let (a, b) = tokio::join!(f, fetch);
        assert_eq!(&a.expect("fetch")[0][..], b"aaaa");
        assert_eq!(&b.expect("fetch")[1][..], b"bbbb");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(matches!(c.lookup(id(1)), Lookup::Hit(_)));
        assert_eq!(c.inflight_bytes(), 0);
    }

    #[tokio::test]
    async fn wrong_length_is_an_error_not_a_block() {
        let c = BlockCache::new(1 << 20, 4);
        let rt = tokio::runtime::Handle::current();
        let f = c.start_fetch(&rt, ContentId(1), 0, 2, 8, async {
            Ok(vec![Bytes::from_static(b"short")])
        });
        assert!(f.await.is_err());
        assert!(matches!(c.lookup(id(0)), Lookup::Miss));
    }
}
