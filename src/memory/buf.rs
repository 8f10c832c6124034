//! Buffers: [`BlockBuf`] (being filled), and the owners behind the `Bytes` it freezes
//! into (one filled pool block; back-to-back pieces of several, joined). Every access to
//! pool memory through a raw pointer is here.

use std::ptr::NonNull;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::pool::Inner;

/// One block of pool memory, owned; goes back to the pool when dropped.
pub(super) struct PooledBlock {
    ptr: NonNull<u8>,
    slab: usize,
    pos: usize,
    pool: Arc<Inner>,
}

// SAFETY: the block is memory of a mapping owned by the pool and owned exclusively by
// this value; see `Slab`.
unsafe impl Send for PooledBlock {}

impl PooledBlock {
    /// Block `pos` of slab `slab` of `pool`, starting at `ptr`.
    ///
    /// # Safety
    /// The block is `pool.block_size()` bytes of a live slab of `pool`, just claimed
    /// (marked in use) for this value alone.
    pub unsafe fn new(ptr: NonNull<u8>, slab: usize, pos: usize, pool: Arc<Inner>) -> Self {
        PooledBlock {
            ptr,
            slab,
            pos,
            pool,
        }
    }

    fn size(&self) -> usize {
        self.pool.block_size()
    }
}

impl Drop for PooledBlock {
    fn drop(&mut self) {
        self.pool.put_back(self.slab, self.pos);
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
    _parts: Vec<Bytes>,
    start: *const u8,
    len: usize,
}

// SAFETY: `start` points into memory kept alive and immutable by `_parts`.
unsafe impl Send for Joined {}

impl AsRef<[u8]> for Joined {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `BlockPool::join` checked that the parts cover [start, start+len)
        // without gaps and that the span lies inside one slab, a single mapping that
        // stays mapped while any block of it lives; each part is frozen, initialized
        // memory held by `_parts`.
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }
}

/// `parts` seen as the one slice of `len` bytes at `start`, without a copy.
///
/// # Safety
/// `start` is derived from the pointer of the slab the parts lie in (so that it covers
/// the whole span), and `parts`, frozen pool blocks or pieces of them, cover
/// `[start, start + len)` back to back, without gaps, inside that one slab.
pub(super) unsafe fn joined(parts: Vec<Bytes>, start: NonNull<u8>, len: usize) -> Bytes {
    Bytes::from_owner(Joined {
        _parts: parts,
        start: start.as_ptr(),
        len,
    })
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
    pub(super) fn pooled(block: PooledBlock) -> Self {
        BlockBuf {
            mem: Mem::Pooled { block, len: 0 },
        }
    }

    pub(super) fn heap(capacity: usize) -> Self {
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
            Mem::Pooled { block, .. } => block.size(),
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
    use super::super::BlockPool;

    const BLOCK: usize = 256 << 10;

    #[test]
    fn buffers_never_grow_past_capacity() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20, 64 << 20);
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
    fn blocks_outlive_the_pool_handle() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20, 64 << 20);
        let mut b = pool.buffer(BLOCK);
        b.extend_from_slice(b"kept");
        drop(pool);
        let bytes = b.freeze();
        assert_eq!(&bytes[..], b"kept");
    }
}
