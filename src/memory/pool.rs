//! A pool of fixed-size block buffers.
//!
//! Buffers are carved from slabs of at least 2 MiB, mapped 2 MiB-aligned and advised
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

/// Slabs are at least this big and aligned to it (the x86-64 and aarch64 huge page).
const HUGE_PAGE: usize = 2 << 20;

/// Recycled block buffers. Cloning shares the pool.
#[derive(Clone)]
pub struct BlockPool {
    inner: Arc<Inner>,
}

struct Inner {
    block_size: usize,
    slab_size: usize,
    max_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    free: Vec<BlockPtr>,
    slabs: Vec<BlockPtr>,
}

/// The start of a block (or slab) of pool memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct BlockPtr(NonNull<u8>);

// SAFETY: a BlockPtr is an address inside a private anonymous mapping owned by the
// pool; which thread holds the address does not matter, and each block is written
// only through the one `BlockBuf` that owns it.
unsafe impl Send for BlockPtr {}

impl std::fmt::Debug for BlockPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.inner.state.lock();
        f.debug_struct("BlockPool")
            .field("block_size", &self.inner.block_size)
            .field("slab_bytes", &(s.slabs.len() * self.inner.slab_size))
            .field("free_blocks", &s.free.len())
            .finish()
    }
}

impl BlockPool {
    /// A pool of `block_size`-byte buffers holding at most `max_bytes` of slabs.
    pub fn new(block_size: u64, max_bytes: u64) -> Self {
        let block_size = usize::try_from(block_size).unwrap_or(usize::MAX).max(1);
        let slab_size = if block_size >= HUGE_PAGE {
            block_size
        } else {
            // Block sizes are powers of two, so this is a whole number of blocks.
            HUGE_PAGE - HUGE_PAGE % block_size
        };
        BlockPool {
            inner: Arc::new(Inner {
                block_size,
                slab_size,
                max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
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
            if let Some(block) = self.take() {
                return BlockBuf {
                    mem: Mem::Pooled { block, len: 0 },
                };
            }
        }
        BlockBuf {
            mem: Mem::Heap(BytesMut::with_capacity(capacity), capacity),
        }
    }

    /// Bytes of slabs mapped so far.
    pub fn mapped_bytes(&self) -> usize {
        self.inner.state.lock().slabs.len() * self.inner.slab_size
    }

    /// Blocks ready for reuse.
    pub fn free_blocks(&self) -> usize {
        self.inner.state.lock().free.len()
    }

    fn take(&self) -> Option<PooledBlock> {
        let inner = &self.inner;
        let mut s = inner.state.lock();
        let ptr = match s.free.pop() {
            Some(p) => p,
            None => {
                let mapped = s.slabs.len() * inner.slab_size;
                if mapped + inner.slab_size > inner.max_bytes {
                    return None;
                }
                let slab = map_slab(inner.slab_size)?;
                s.slabs.push(slab);
                let blocks = inner.slab_size / inner.block_size;
                // Hand out the slab front to back: the most recently freed block is
                // reused first, and the next one taken is the next one in memory.
                for i in (1..blocks).rev() {
                    // SAFETY: i * block_size < slab_size, inside the mapping.
                    let p = unsafe { slab.0.add(i * inner.block_size) };
                    s.free.push(BlockPtr(p));
                }
                slab
            }
        };
        Some(PooledBlock {
            ptr,
            pool: Arc::clone(inner),
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every block holds an Arc to us, so none is in use any more.
        for slab in self.state.get_mut().slabs.drain(..) {
            // SAFETY: each slab was mapped by `map_slab` with exactly this length.
            unsafe { libc::munmap(slab.0.as_ptr().cast(), self.slab_size) };
        }
    }
}

/// A `size`-byte anonymous mapping aligned to `HUGE_PAGE`, advised for huge pages.
fn map_slab(size: usize) -> Option<BlockPtr> {
    let len = size.checked_add(HUGE_PAGE)?;
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
    let tail = len - head - size;
    // SAFETY: head and tail are the unaligned ends of the mapping just made, outside
    // [start, start + size); madvise only advises.
    unsafe {
        if head > 0 {
            libc::munmap(p, head);
        }
        if tail > 0 {
            libc::munmap((start + size) as *mut libc::c_void, tail);
        }
        libc::madvise(start as *mut libc::c_void, size, libc::MADV_HUGEPAGE);
    }
    NonNull::new(start as *mut u8).map(BlockPtr)
}

/// One block of pool memory, owned; goes back to the pool when dropped.
struct PooledBlock {
    ptr: BlockPtr,
    pool: Arc<Inner>,
}

impl Drop for PooledBlock {
    fn drop(&mut self) {
        self.pool.state.lock().free.push(self.ptr);
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
        unsafe { std::slice::from_raw_parts(self.block.ptr.0.as_ptr(), self.len) }
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
                    std::ptr::copy_nonoverlapping(data.as_ptr(), block.ptr.0.as_ptr().add(*len), n);
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

    #[test]
    fn full_blocks_come_from_slabs_and_are_reused() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20);
        let mut b = pool.buffer(BLOCK);
        assert!(b.is_pooled());
        assert_eq!(pool.mapped_bytes(), HUGE_PAGE);
        assert_eq!(pool.free_blocks(), HUGE_PAGE / BLOCK - 1);
        let data: Vec<u8> = (0..BLOCK).map(|i| (i % 251) as u8).collect();
        assert_eq!(b.extend_from_slice(&data[..1000]), 1000);
        assert_eq!(b.extend_from_slice(&data[1000..]), BLOCK - 1000);
        let frozen = b.freeze();
        assert_eq!(&frozen[..], &data[..]);
        let addr = frozen.as_ptr();
        assert_eq!(addr as usize % HUGE_PAGE, 0, "slab is huge-page aligned");
        let view = frozen.slice(10..20);
        drop(frozen);
        assert_eq!(pool.free_blocks(), HUGE_PAGE / BLOCK - 1, "a view keeps it");
        assert_eq!(&view[..], &data[10..20]);
        drop(view);
        assert_eq!(pool.free_blocks(), HUGE_PAGE / BLOCK);
        let again = pool.buffer(BLOCK);
        assert_eq!(
            again.freeze().as_ptr(),
            addr,
            "the freed block is reused first"
        );
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
        let held: Vec<BlockBuf> = (0..2 * HUGE_PAGE / BLOCK)
            .map(|_| pool.buffer(BLOCK))
            .collect();
        assert!(held.iter().all(BlockBuf::is_pooled));
        let extra = pool.buffer(BLOCK);
        assert!(!extra.is_pooled());
        assert_eq!(extra.capacity(), BLOCK);
        assert_eq!(pool.mapped_bytes(), 2 * HUGE_PAGE);
        assert!(!BlockPool::heap_only().buffer(BLOCK).is_pooled());
    }

    #[test]
    fn blocks_bigger_than_a_huge_page_get_a_slab_each() {
        let big = 4 * HUGE_PAGE;
        let pool = BlockPool::new(big as u64, (8 * HUGE_PAGE) as u64);
        let mut b = pool.buffer(big);
        assert!(b.is_pooled());
        assert_eq!(b.extend_from_slice(&vec![1u8; big]), big);
        assert_eq!(pool.mapped_bytes(), big);
        let bytes = b.freeze();
        assert!(bytes.iter().all(|&x| x == 1));
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
