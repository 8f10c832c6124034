//! A pool of fixed-size block buffers.
//!
//! Buffers are carved from slabs of 2 MiB, mapped 2 MiB-aligned and advised
//! for transparent huge pages: filling a fresh slab costs one page fault per 2 MiB
//! instead of one per 4 KiB (a cold 256 MiB read used to spend close to half of the
//! daemon's CPU in page faults). A buffer whose last reference drops goes back to the
//! pool and is reused without any fault at all. Slabs are never unmapped while the pool
//! lives; the pool stops growing at `max_bytes` and hands out ordinary heap buffers
//! beyond it, so it cannot hold more than the cache it feeds plus a margin.

use std::ptr::NonNull;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

/// Slabs are this big and aligned to it (the x86-64 and aarch64 huge page).
const HUGE_PAGE: usize = 2 << 20;
/// A slab's free blocks are one bitmap word, so blocks are at least this big; smaller
/// blocks come from the heap.
const MAX_BLOCKS_PER_SLAB: usize = 64;

/// Recycled block buffers. Cloning shares the pool.
#[derive(Clone)]
pub struct BlockPool {
    inner: Arc<Inner>,
}

struct Inner {
    block_size: usize,
    /// Blocks per slab; 0 when blocks are too small or too big to pool.
    per_slab: usize,
    max_slabs: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slabs: Vec<Slab>,
}

/// One mapped slab and which of its blocks are free.
struct Slab {
    base: NonNull<u8>,
    /// Bit i set: block i is free.
    free: u64,
}

// SAFETY: `base` is the start of a private anonymous mapping owned by the pool; which
// thread holds the address does not matter, and each block is written only through
// the one `BlockBuf` that owns it.
unsafe impl Send for Slab {}

impl std::fmt::Debug for BlockPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockPool")
            .field("block_size", &self.inner.block_size)
            .field("mapped_bytes", &self.mapped_bytes())
            .field("free_blocks", &self.free_blocks())
            .finish()
    }
}

impl BlockPool {
    /// A pool of `block_size`-byte buffers mapping at most `max_bytes` of slabs.
    pub fn new(block_size: u64, max_bytes: u64) -> Self {
        let block_size = usize::try_from(block_size).unwrap_or(usize::MAX).max(1);
        let per_slab = if HUGE_PAGE % block_size == 0 {
            HUGE_PAGE / block_size
        } else {
            0
        };
        let per_slab = if per_slab <= MAX_BLOCKS_PER_SLAB {
            per_slab
        } else {
            0
        };
        BlockPool {
            inner: Arc::new(Inner {
                block_size,
                per_slab,
                max_slabs: usize::try_from(max_bytes).unwrap_or(usize::MAX) / HUGE_PAGE,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A pool that never maps anything: every buffer comes from the heap.
    pub fn heap_only() -> Self {
        Self::new(HUGE_PAGE as u64, 0)
    }

    /// An empty buffer that can take `capacity` bytes. Full-size blocks come from the
    /// pool; anything smaller (file tails, small files) from the heap, so a 3 KiB
    /// transcript never pins a whole block of pool memory.
    pub fn buffer(&self, capacity: usize) -> BlockBuf {
        if capacity == self.inner.block_size {
            if let Some(block) = self.take(1).pop() {
                return BlockBuf::pooled(block);
            }
        }
        BlockBuf::heap(capacity)
    }

    /// `count` empty buffers of `capacity` bytes: a [`BlockPool::run`] for full-size
    /// blocks, heap buffers otherwise.
    pub fn buffers(&self, count: usize, capacity: usize) -> Vec<BlockBuf> {
        if capacity == self.inner.block_size {
            self.run(count)
        } else {
            (0..count).map(|_| BlockBuf::heap(capacity)).collect()
        }
    }

    /// `count` empty full-size buffers, adjacent in memory as far as the pool can
    /// manage (so that a read spanning several of them can be answered without a
    /// copy, see [`BlockPool::join`]).
    pub fn run(&self, count: usize) -> Vec<BlockBuf> {
        let mut out = Vec::with_capacity(count);
        let group = self.inner.per_slab.max(1);
        while out.len() < count {
            let want = (count - out.len()).min(group);
            let got = self.take(want);
            let short = got.len() < want;
            out.extend(got.into_iter().map(BlockBuf::pooled));
            if short {
                break;
            }
        }
        while out.len() < count {
            out.push(BlockBuf::heap(self.inner.block_size));
        }
        out
    }

    /// `parts` (consecutive pieces of consecutive blocks) as one `Bytes` without a
    /// copy, when they lie back to back inside one slab of this pool.
    pub fn join(&self, parts: &[Bytes]) -> Option<Bytes> {
        let first = parts.first()?;
        let start = first.as_ptr() as usize;
        let mut end = start;
        for p in parts {
            if p.is_empty() || p.as_ptr() as usize != end {
                return None;
            }
            end += p.len();
        }
        let base = start - start % HUGE_PAGE;
        if end > base + HUGE_PAGE {
            return None;
        }
        let s = self.inner.state.lock();
        if !s
            .slabs
            .iter()
            .any(|slab| slab.base.as_ptr() as usize == base)
        {
            return None;
        }
        drop(s);
        Some(Bytes::from_owner(Joined {
            parts: parts.to_vec(),
            start: first.as_ptr(),
            len: end - start,
        }))
    }

    /// Bytes of slabs mapped so far.
    pub fn mapped_bytes(&self) -> usize {
        self.inner.state.lock().slabs.len() * HUGE_PAGE
    }

    /// Blocks ready for reuse.
    pub fn free_blocks(&self) -> usize {
        let s = self.inner.state.lock();
        s.slabs.iter().map(|b| b.free.count_ones() as usize).sum()
    }

    /// Up to `n` (at most a slab's worth) blocks: adjacent ones from the first slab
    /// with room for all of them, else a new slab, else whatever single blocks are
    /// free. Fewer (maybe none) when the pool is at its bound.
    fn take(&self, n: usize) -> Vec<PooledBlock> {
        let inner = &self.inner;
        if inner.per_slab == 0 || n == 0 {
            return Vec::new();
        }
        let mut s = inner.state.lock();
        let found = s
            .slabs
            .iter()
            .enumerate()
            .find_map(|(i, slab)| free_run(slab.free, n).map(|pos| (i, pos)));
        let (slab, pos) = match found {
            Some(hit) => hit,
            None if s.slabs.len() < inner.max_slabs => match map_slab() {
                Some(base) => {
                    let all = if inner.per_slab == 64 {
                        u64::MAX
                    } else {
                        (1u64 << inner.per_slab) - 1
                    };
                    s.slabs.push(Slab { base, free: all });
                    (s.slabs.len() - 1, 0)
                }
                None => return Vec::new(),
            },
            None => {
                // No room for a run: single blocks, wherever they are.
                let mut out = Vec::new();
                for i in 0..s.slabs.len() {
                    while out.len() < n && s.slabs[i].free != 0 {
                        let pos = s.slabs[i].free.trailing_zeros() as usize;
                        out.push(self.claim(&mut s, i, pos));
                    }
                }
                return out;
            }
        };
        (pos..pos + n)
            .map(|p| self.claim(&mut s, slab, p))
            .collect()
    }

    fn claim(&self, s: &mut State, slab: usize, pos: usize) -> PooledBlock {
        let sl = &mut s.slabs[slab];
        sl.free &= !(1u64 << pos);
        // SAFETY: pos < per_slab, so the block lies inside the slab's mapping.
        let ptr = unsafe { sl.base.add(pos * self.inner.block_size) };
        PooledBlock {
            ptr,
            slab,
            pos,
            pool: Arc::clone(&self.inner),
        }
    }
}

/// The first position of `n` adjacent set bits in `free`.
fn free_run(free: u64, n: usize) -> Option<usize> {
    let mut run = free;
    for _ in 1..n {
        run &= run >> 1;
    }
    (run != 0).then(|| run.trailing_zeros() as usize)
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every block holds an Arc to us, so none is in use any more.
        for slab in self.state.get_mut().slabs.drain(..) {
            // SAFETY: each slab was mapped by `map_slab` with exactly this length.
            unsafe { libc::munmap(slab.base.as_ptr().cast(), HUGE_PAGE) };
        }
    }
}

/// A `HUGE_PAGE`-byte anonymous mapping aligned to its size, advised for huge pages.
fn map_slab() -> Option<NonNull<u8>> {
    let len = 2 * HUGE_PAGE;
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let addr = p as usize;
    let start = addr.next_multiple_of(HUGE_PAGE);
    let head = start - addr;
    let tail = len - head - HUGE_PAGE;
    // SAFETY: head and tail are the unaligned ends of the mapping just made, outside
    // [start, start + HUGE_PAGE); madvise only advises.
    unsafe {
        if head > 0 {
            libc::munmap(p, head);
        }
        if tail > 0 {
            libc::munmap((start + HUGE_PAGE) as *mut libc::c_void, tail);
        }
        libc::madvise(start as *mut libc::c_void, HUGE_PAGE, libc::MADV_HUGEPAGE);
    }
    NonNull::new(start as *mut u8)
}

/// One block of pool memory, owned; goes back to the pool when dropped.
struct PooledBlock {
    ptr: NonNull<u8>,
    slab: usize,
    pos: usize,
    pool: Arc<Inner>,
}

// SAFETY: the block is memory of a mapping owned by the pool and owned exclusively by
// this value; see `Slab`.
unsafe impl Send for PooledBlock {}

impl Drop for PooledBlock {
    fn drop(&mut self) {
        let mut s = self.pool.state.lock();
        if let Some(slab) = s.slabs.get_mut(self.slab) {
            slab.free |= 1u64 << self.pos;
        }
    }
}

/// The first `len` bytes of a filled pool block, as the owner behind a `Bytes`.
struct FilledBlock {
    block: PooledBlock,
    len: usize,
}

impl AsRef<[u8]> for FilledBlock {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the block is block_size >= len bytes of mapped memory, its first len
        // bytes were written before freezing, and nothing writes to it any more.
        unsafe { std::slice::from_raw_parts(self.block.ptr.as_ptr(), self.len) }
    }
}

/// Back-to-back pieces of pool blocks in one slab, seen as one slice.
struct Joined {
    /// Keep every piece (and so its block) alive and unchanged.
    #[allow(dead_code)]
    parts: Vec<Bytes>,
    start: *const u8,
    len: usize,
}

// SAFETY: `start` points into memory kept alive and immutable by `parts`.
unsafe impl Send for Joined {}

impl AsRef<[u8]> for Joined {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `BlockPool::join` checked that the parts cover [start, start+len)
        // without gaps and that the span lies inside one slab, a single mapping that
        // stays mapped while any block of it lives; each part is frozen, initialized
        // memory held by `parts`.
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }
}

/// A buffer being filled: appends up to its capacity, then freezes into `Bytes`.
pub struct BlockBuf {
    mem: Mem,
}

enum Mem {
    Pooled { block: PooledBlock, len: usize },
    Heap(BytesMut, usize),
}

impl BlockBuf {
    fn pooled(block: PooledBlock) -> Self {
        BlockBuf {
            mem: Mem::Pooled { block, len: 0 },
        }
    }

    fn heap(capacity: usize) -> Self {
        BlockBuf {
            mem: Mem::Heap(BytesMut::with_capacity(capacity), capacity),
        }
    }

    pub fn len(&self) -> usize {
        match &self.mem {
            Mem::Pooled { len, .. } => *len,
            Mem::Heap(b, _) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        match &self.mem {
            Mem::Pooled { block, .. } => block.pool.block_size,
            Mem::Heap(_, cap) => *cap,
        }
    }

    /// Append as much of `data` as fits; returns how many bytes were taken.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.capacity() - self.len());
        match &mut self.mem {
            Mem::Pooled { block, len } => {
                // SAFETY: *len + n <= block_size, so the destination lies inside the
                // block, which this buffer owns exclusively; `data` is ordinary
                // memory and cannot overlap pool memory we own mutably.
                unsafe {
                    std::ptr::copy_nonoverlapping(data.as_ptr(), block.ptr.as_ptr().add(*len), n);
                }
                *len += n;
            }
            Mem::Heap(b, _) => b.extend_from_slice(&data[..n]),
        }
        n
    }

    pub fn freeze(self) -> Bytes {
        match self.mem {
            Mem::Pooled { block, len } => Bytes::from_owner(FilledBlock { block, len }),
            Mem::Heap(b, _) => b.freeze(),
        }
    }

    /// Whether this buffer is pool memory (for tests and stats).
    pub fn is_pooled(&self) -> bool {
        matches!(self.mem, Mem::Pooled { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: usize = 256 << 10;
    const PER_SLAB: usize = HUGE_PAGE / BLOCK;

    fn filled(mut b: BlockBuf, byte: u8) -> Bytes {
        let cap = b.capacity();
        assert_eq!(b.extend_from_slice(&vec![byte; cap]), cap);
        b.freeze()
    }

    #[test]
    fn full_blocks_come_from_slabs_and_are_reused() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20);
        let mut b = pool.buffer(BLOCK);
        assert!(b.is_pooled());
        assert_eq!(pool.mapped_bytes(), HUGE_PAGE);
        assert_eq!(pool.free_blocks(), PER_SLAB - 1);
        let data: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.extend_from_slice(&data[..1000]), 1000);
        assert_eq!(b.extend_from_slice(&data[1000..]), BLOCK - 1000);
        let frozen = b.freeze();
        assert_eq!(&frozen[..], &data[..]);
        let addr = frozen.as_ptr();
        assert_eq!(addr as usize % HUGE_PAGE, 0, "slab is huge-page aligned");
        let view = frozen.slice(10..20);
        drop(frozen);
        assert_eq!(pool.free_blocks(), PER_SLAB - 1, "a view keeps it");
        assert_eq!(&view[..], &data[10..20]);
        drop(view);
        assert_eq!(pool.free_blocks(), PER_SLAB);
        let again = pool.buffer(BLOCK);
        assert_eq!(filled(again, 0).as_ptr(), addr, "the freed block is reused");
        assert_eq!(pool.mapped_bytes(), HUGE_PAGE);
    }

    #[test]
    fn buffers_never_grow_past_capacity() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20);
        let mut pooled = pool.buffer(BLOCK);
        let mut heap = pool.buffer(100);
        assert!(!heap.is_pooled());
        let big = vec![7u8; BLOCK + 10];
        assert_eq!(pooled.extend_from_slice(&big), BLOCK);
        assert_eq!(pooled.extend_from_slice(&big), 0);
        assert_eq!(heap.extend_from_slice(&big), 100);
        assert_eq!(heap.extend_from_slice(&big), 0);
        assert_eq!(heap.freeze().len(), 100);
        assert_eq!(pooled.freeze().len(), BLOCK);
    }

    #[test]
    fn the_pool_stops_at_its_bound_and_falls_back_to_the_heap() {
        let pool = BlockPool::new(BLOCK as u64, (2 * HUGE_PAGE) as u64);
        let held = pool.run(2 * PER_SLAB);
        assert!(held.iter().all(BlockBuf::is_pooled));
        let extra = pool.buffer(BLOCK);
        assert!(!extra.is_pooled());
        assert_eq!(extra.capacity(), BLOCK);
        let more = pool.run(3);
        assert!(more.iter().all(|b| !b.is_pooled() && b.capacity() == BLOCK));
        assert_eq!(pool.mapped_bytes(), 2 * HUGE_PAGE);
        assert!(!BlockPool::heap_only().buffer(BLOCK).is_pooled());
        // Too small or too big to pool: the heap.
        assert!(!BlockPool::new(4096, 64 << 20).buffer(4096).is_pooled());
        assert!(!BlockPool::new(4 << 20, 64 << 20)
            .buffer(4 << 20)
            .is_pooled());
    }

    #[test]
    fn runs_are_adjacent_and_join_without_a_copy() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20);
        let blocks: Vec<Bytes> = pool
            .run(PER_SLAB + 2)
            .into_iter()
            .enumerate()
            .map(|(i, b)| filled(b, i as u8))
            .collect();
        for w in blocks[..PER_SLAB].windows(2) {
            assert_eq!(w[0].as_ptr() as usize + BLOCK, w[1].as_ptr() as usize);
        }
        // Pieces of blocks 1..=3, back to back: one slice, same memory.
        let parts = [
            blocks[1].slice(100..),
            blocks[2].clone(),
            blocks[3].slice(..5),
        ];
        let joined = pool.join(&parts).expect("adjacent parts join");
        assert_eq!(joined.as_ptr(), parts[0].as_ptr());
        assert_eq!(joined.len(), BLOCK - 100 + BLOCK + 5);
        assert!(joined[..BLOCK - 100].iter().all(|&x| x == 1));
        assert!(joined[BLOCK - 100..2 * BLOCK - 100].iter().all(|&x| x == 2));
        assert!(joined[2 * BLOCK - 100..].iter().all(|&x| x == 3));
        // The join keeps its blocks; dropping everything frees them.
        let free = pool.free_blocks();
        drop(parts);
        drop(blocks);
        assert_eq!(pool.free_blocks(), free + PER_SLAB + 2 - 3);
        drop(joined);
        assert_eq!(pool.free_blocks(), 2 * PER_SLAB);
    }

    #[test]
    fn only_back_to_back_pieces_of_one_slab_join() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20);
        let blocks: Vec<Bytes> = pool
            .run(2 * PER_SLAB)
            .into_iter()
            .map(|b| filled(b, 9))
            .collect();
        let gap = [blocks[0].slice(..BLOCK - 1), blocks[1].clone()];
        assert!(pool.join(&gap).is_none(), "a gap");
        let order = [blocks[1].clone(), blocks[0].clone()];
        assert!(pool.join(&order).is_none(), "out of order");
        let last = PER_SLAB - 1;
        let across = [blocks[last].clone(), blocks[last + 1].clone()];
        if across[0].as_ptr() as usize + BLOCK == across[1].as_ptr() as usize {
            assert!(pool.join(&across).is_none(), "two slabs, even if adjacent");
        }
        let heap = Bytes::from(vec![1u8; 10]);
        assert!(
            pool.join(&[heap.slice(..5), heap.slice(5..)]).is_none(),
            "heap"
        );
        assert!(pool.join(&[]).is_none());
        let other = BlockPool::new(BLOCK as u64, 64 << 20);
        assert!(other.join(&blocks[..2]).is_none(), "another pool's slab");
    }

    #[test]
    fn freed_blocks_make_room_for_runs_again() {
        let pool = BlockPool::new(BLOCK as u64, HUGE_PAGE as u64);
        let first = pool.run(PER_SLAB);
        assert!(first.iter().all(BlockBuf::is_pooled));
        drop(first);
        let again = pool.run(4);
        assert!(again.iter().all(BlockBuf::is_pooled));
        assert_eq!(pool.mapped_bytes(), HUGE_PAGE);
        assert_eq!(free_run(0b1110_0110, 2), Some(1));
        assert_eq!(free_run(0b1110_0110, 3), Some(5));
        assert_eq!(free_run(0b1110_0110, 4), None);
        assert_eq!(free_run(u64::MAX, 64), Some(0));
    }

    #[test]
    fn blocks_outlive_the_pool_handle() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20);
        let mut b = pool.buffer(BLOCK);
        b.extend_from_slice(b"kept");
        drop(pool);
        let bytes = b.freeze();
        assert_eq!(&bytes[..], b"kept");
    }
}
