//! The pool's policy: which free blocks a request gets (adjacent runs, resident
//! blocks first), when a new slab is mapped (up to `max_bytes`), when a free block keeps
//! its memory (up to `idle_bytes`) and when it is given back; the heap beyond that.
//! The mapping itself is `slab`, the buffers and their `Bytes` are `buf`.
//!
//! Buffers are carved from slabs of 2 MiB, mapped 2 MiB-aligned and advised
//! for transparent huge pages: filling a fresh slab costs one page fault per 2 MiB
//! instead of one per 4 KiB (a cold 256 MiB read used to spend close to half of the
//! daemon's CPU in page faults). A buffer whose last reference drops goes back to the
//! pool and is reused without any fault at all. The pool stops growing at `max_bytes`
//! and hands out ordinary heap buffers beyond it; free blocks beyond `idle_bytes` give
//! their memory back to the kernel (`MADV_DONTNEED`), so pool memory nobody uses
//! cannot add up with a cache refilled from the heap (small files) to twice its size.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::buf::{self, BlockBuf, PooledBlock};
use super::slab::{self, Slab, HUGE_PAGE, MAX_BLOCKS_PER_SLAB};

/// Recycled block buffers. Cloning shares the pool.
#[derive(Clone)]
pub struct BlockPool {
    inner: Arc<Inner>,
}

/// The pool proper, shared by its handles and by every block it handed out.
pub(super) struct Inner {
    block_size: usize,
    /// Blocks per slab; 0 when blocks are too small or too big to pool.
    per_slab: usize,
    max_slabs: usize,
    /// Free blocks allowed to keep their memory.
    max_warm: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slabs: Vec<Slab>,
    /// Free blocks whose memory is resident.
    warm: usize,
}

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
    /// A pool of `block_size`-byte buffers mapping at most `max_bytes` of slabs and
    /// keeping at most `idle_bytes` of free blocks resident.
    pub fn new(block_size: u64, max_bytes: u64, idle_bytes: u64) -> Self {
        Self::with_page_size(block_size, max_bytes, idle_bytes, slab::page_size())
    }

    /// [`BlockPool::new`] on a system whose pages are `page_size` bytes (0: unknown).
    ///
    /// Blocks are pooled only if `block_size` is a multiple of the page size. A free
    /// block gives its memory back with `madvise(MADV_DONTNEED)` of `block_size` bytes,
    /// which the kernel applies to whole pages: with blocks smaller than a page (32 KiB
    /// blocks on a 64 KiB-page aarch64 kernel) releasing one block would zero its
    /// neighbours in the same page, live cached blocks, or fail on a block that does
    /// not start a page. Such pools (and pools on a system whose page size is unknown)
    /// hand out heap buffers only.
    fn with_page_size(block_size: u64, max_bytes: u64, idle_bytes: u64, page_size: usize) -> Self {
        let block_size = usize::try_from(block_size).unwrap_or(usize::MAX).max(1);
        let whole_pages = page_size > 0 && block_size % page_size == 0;
        let per_slab = if whole_pages && HUGE_PAGE % block_size == 0 {
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
                max_warm: usize::try_from(idle_bytes).unwrap_or(usize::MAX) / block_size,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// A pool that never maps anything: every buffer comes from the heap.
    pub fn heap_only() -> Self {
        Self::new(HUGE_PAGE as u64, 0, 0)
    }

    /// An empty buffer that can take `capacity` bytes. Full-size blocks come from the
    /// pool; anything smaller (file tails, small files) from the heap, so a 3 KiB
    /// transcript never pins a whole block of pool memory.
    pub fn buffer(&self, capacity: usize) -> BlockBuf {
        self.buffers(1, capacity)
            .pop()
            .unwrap_or_else(|| BlockBuf::heap(capacity))
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
        let start_ptr = {
            let s = self.inner.state.lock();
            s.slabs
                .iter()
                .find(|slab| slab.base_addr() == base)?
                .at(start - base)?
        };
        // SAFETY: the parts are back to back from `start` to `end` (checked above),
        // inside the one slab of this pool that starts at `base`, and `start_ptr` is
        // derived from that slab's pointer. Every part is a non-empty `Bytes` inside
        // the slab, so a frozen pool block or a piece of one.
        Some(unsafe { buf::joined(parts.to_vec(), start_ptr, end - start) })
    }

    /// Bytes of slabs mapped so far.
    pub fn mapped_bytes(&self) -> usize {
        self.inner.state.lock().slabs.len() * HUGE_PAGE
    }

    /// Blocks ready for reuse.
    pub fn free_blocks(&self) -> usize {
        let s = self.inner.state.lock();
        s.slabs.iter().map(Slab::free_count).sum()
    }

    /// Bytes of free blocks whose memory is resident.
    pub fn idle_resident_bytes(&self) -> usize {
        self.inner.state.lock().warm * self.inner.block_size
    }

    /// Give the memory of free blocks back to the kernel until `bytes` are released
    /// or none is left; returns the bytes released.
    pub fn give_back(&self, bytes: usize) -> usize {
        let inner = &self.inner;
        let mut s = inner.state.lock();
        let mut released = 0;
        let State { slabs, warm } = &mut *s;
        for slab in slabs.iter_mut() {
            while released < bytes {
                let Some(pos) = slab.first_warm_free() else {
                    break;
                };
                // SAFETY: the block is free, and the pool lock keeps anyone from
                // claiming it until this is done.
                unsafe { slab.release(pos) };
                *warm -= 1;
                released += inner.block_size;
            }
        }
        released
    }

    /// Up to `n` (at most a slab's worth) blocks: adjacent ones from the first slab
    /// with room for all of them (resident ones first), else a new slab, else whatever
    /// single blocks are free. Fewer (maybe none) when the pool is at its bound.
    fn take(&self, n: usize) -> Vec<PooledBlock> {
        let inner = &self.inner;
        if inner.per_slab == 0 || n == 0 {
            return Vec::new();
        }
        let mut s = inner.state.lock();
        let find = |s: &State, warm_only: bool| {
            s.slabs
                .iter()
                .enumerate()
                .find_map(|(i, slab)| slab.free_run(n, warm_only).map(|pos| (i, pos)))
        };
        let mut hit = find(&s, true).or_else(|| find(&s, false));
        if hit.is_none() && s.slabs.len() < inner.max_slabs {
            if let Some(slab) = Slab::map(inner.per_slab, inner.block_size) {
                s.slabs.push(slab);
                hit = Some((s.slabs.len() - 1, 0));
            }
        }
        if let Some((slab, pos)) = hit {
            return (pos..pos + n)
                .map(|p| self.claim(&mut s, slab, p))
                .collect();
        }
        // No room for a run: single blocks, wherever they are.
        let mut out = Vec::new();
        for i in 0..s.slabs.len() {
            while out.len() < n {
                let Some(pos) = s.slabs[i].first_free() else {
                    break;
                };
                out.push(self.claim(&mut s, i, pos));
            }
        }
        out
    }

    fn claim(&self, s: &mut State, slab: usize, pos: usize) -> PooledBlock {
        let (ptr, was_warm) = s.slabs[slab].claim(pos);
        if was_warm {
            s.warm -= 1;
        }
        // SAFETY: block `pos` of slab `slab` of this pool was free and is now marked in
        // use, under the lock: the new value is its only owner.
        unsafe { PooledBlock::new(ptr, slab, pos, Arc::clone(&self.inner)) }
    }
}

impl Inner {
    pub(super) fn block_size(&self) -> usize {
        self.block_size
    }

    /// Block `pos` of slab `slab` is free again (its last owner is gone): it keeps its
    /// memory while fewer than `max_warm` free blocks do, else gives it back.
    pub(super) fn put_back(&self, slab: usize, pos: usize) {
        let mut s = self.state.lock();
        let give_back = s.warm >= self.max_warm;
        let Some(slab) = s.slabs.get_mut(slab) else {
            return;
        };
        slab.put(pos);
        if give_back {
            // SAFETY: nobody holds the block: its bit is set only now, under the lock.
            unsafe { slab.release(pos) };
        } else {
            s.warm += 1;
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every block holds an Arc to us, so none is in use any more.
        for slab in self.state.get_mut().slabs.drain(..) {
            // SAFETY: no block is in use (see above).
            unsafe { slab.unmap() };
        }
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
        let pool = BlockPool::new(BLOCK as u64, 64 << 20, 64 << 20);
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
    fn the_pool_stops_at_its_bound_and_falls_back_to_the_heap() {
        let pool = BlockPool::new(BLOCK as u64, (2 * HUGE_PAGE) as u64, 64 << 20);
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
        assert!(!BlockPool::new(4096, 64 << 20, 0).buffer(4096).is_pooled());
        assert!(!BlockPool::new(4 << 20, 64 << 20, 0)
            .buffer(4 << 20)
            .is_pooled());
    }

    #[test]
    fn runs_are_adjacent_and_join_without_a_copy() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20, 64 << 20);
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
        let pool = BlockPool::new(BLOCK as u64, 64 << 20, 64 << 20);
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
        let other = BlockPool::new(BLOCK as u64, 64 << 20, 64 << 20);
        assert!(other.join(&blocks[..2]).is_none(), "another pool's slab");
    }

    #[test]
    fn freed_blocks_make_room_for_runs_again() {
        let pool = BlockPool::new(BLOCK as u64, HUGE_PAGE as u64, 0);
        let first = pool.run(PER_SLAB);
        assert!(first.iter().all(BlockBuf::is_pooled));
        drop(first);
        let again = pool.run(4);
        assert!(again.iter().all(BlockBuf::is_pooled));
        assert_eq!(pool.mapped_bytes(), HUGE_PAGE);
    }

    /// Pages of `[ptr, ptr+len)` in memory, as the kernel reports them.
    fn resident_pages(ptr: *const u8, len: usize) -> usize {
        let mut vec = vec![0u8; len.div_ceil(slab::page_size())];
        // SAFETY: ptr is page-aligned (blocks are) and the range is mapped.
        let rc = unsafe { libc::mincore(ptr as *mut libc::c_void, len, vec.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore");
        vec.iter().filter(|&&v| v & 1 == 1).count()
    }

    #[test]
    fn free_blocks_beyond_the_idle_bound_give_their_memory_back() {
        let pool = BlockPool::new(BLOCK as u64, 64 << 20, (3 * BLOCK) as u64);
        let blocks: Vec<Bytes> = pool
            .run(PER_SLAB)
            .into_iter()
            .map(|b| filled(b, 5))
            .collect();
        assert_eq!(pool.idle_resident_bytes(), 0);
        let addr = blocks[7].as_ptr();
        let ptrs: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
        assert!(resident_pages(addr, BLOCK) > 0);
        drop(blocks);
        assert_eq!(pool.free_blocks(), PER_SLAB);
        assert_eq!(
            pool.idle_resident_bytes(),
            3 * BLOCK,
            "only 3 stay resident"
        );
        let resident: usize = ptrs
            .iter()
            .map(|&p| resident_pages(p as *const u8, BLOCK))
            .sum();
        assert_eq!(
            resident,
            3 * BLOCK / slab::page_size(),
            "the kernel has the rest back"
        );
        // Resident blocks are reused first; a given-back block reads as zeros until
        // written, and is written before anyone sees it.
        let warm = pool.run(3);
        assert_eq!(pool.idle_resident_bytes(), 0);
        assert_eq!(pool.give_back(usize::MAX), 0, "nothing idle");
        let again: Vec<Bytes> = pool
            .run(PER_SLAB - 3)
            .into_iter()
            .map(|b| filled(b, 6))
            .collect();
        assert!(again.iter().all(|b| b.iter().all(|&x| x == 6)));
        assert!(again.iter().any(|b| b.as_ptr() == addr));
        drop(warm);
        assert_eq!(pool.idle_resident_bytes(), 3 * BLOCK);
        assert_eq!(pool.give_back(1), BLOCK, "whole blocks");
        assert_eq!(pool.give_back(usize::MAX), 2 * BLOCK);
        assert_eq!(pool.idle_resident_bytes(), 0);
        assert_eq!(pool.mapped_bytes(), HUGE_PAGE, "no new slab");
    }

    #[test]
    fn blocks_smaller_than_a_page_are_not_pooled() {
        // 32 KiB blocks on a kernel with 64 KiB pages: giving one back would zero its
        // neighbour, so the pool declines.
        let pool = BlockPool::with_page_size(32 << 10, 64 << 20, 64 << 20, 64 << 10);
        assert!(!pool.buffer(32 << 10).is_pooled());
        let run = pool.run(8);
        assert!(run
            .iter()
            .all(|b| !b.is_pooled() && b.capacity() == 32 << 10));
        assert_eq!(pool.mapped_bytes(), 0);
        let unknown = BlockPool::with_page_size(32 << 10, 64 << 20, 64 << 20, 0);
        assert!(!unknown.buffer(32 << 10).is_pooled(), "page size unknown");
        // The same blocks are pooled where they are whole pages.
        for page in [4 << 10, 16 << 10, 32 << 10] {
            let pool = BlockPool::with_page_size(32 << 10, 64 << 20, 64 << 20, page);
            assert!(pool.buffer(32 << 10).is_pooled(), "{page}-byte pages");
        }
    }

    #[test]
    fn giving_a_block_back_leaves_its_neighbours_alone() {
        // The smallest block the pool takes on this system: 64 to a slab.
        let block = (HUGE_PAGE / MAX_BLOCKS_PER_SLAB).max(slab::page_size());
        let pattern = |i: usize| -> Vec<u8> {
            (0..block)
                .map(|j| (j % 251) as u8 ^ (0x55 + 16 * i as u8))
                .collect()
        };
        // Given back by give_back (idle memory allowed), or as it is dropped (none).
        for idle in [64 << 20, 0] {
            let pool = BlockPool::new(block as u64, 64 << 20, idle);
            let mut blocks: Vec<Option<Bytes>> = pool
                .run(5)
                .into_iter()
                .enumerate()
                .map(|(i, mut b)| {
                    assert!(b.is_pooled());
                    assert_eq!(b.extend_from_slice(&pattern(i)), block);
                    Some(b.freeze())
                })
                .collect();
            let ptrs: Vec<usize> = blocks
                .iter()
                .flatten()
                .map(|b| b.as_ptr() as usize)
                .collect();
            assert!(
                ptrs.windows(2).all(|w| w[0] + block == w[1]),
                "one slab, adjacent"
            );
            let victim = ptrs[2] as *const u8;
            blocks[2] = None;
            if idle > 0 {
                assert_eq!(pool.give_back(usize::MAX), block, "idle {idle}");
            }
            assert_eq!(pool.idle_resident_bytes(), 0, "idle {idle}");
            assert_eq!(resident_pages(victim, block), 0, "released, idle {idle}");
            for (i, b) in blocks.iter().enumerate() {
                if let Some(b) = b {
                    assert!(b[..] == pattern(i)[..], "block {i} intact, idle {idle}");
                }
            }
        }
    }
}
