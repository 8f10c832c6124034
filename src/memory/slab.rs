//! Slabs: `HUGE_PAGE`-byte anonymous mappings aligned to their size and advised for
//! transparent huge pages, cut into at most 64 blocks whose state is two bitmap words.
//! Every system call of the pool (`mmap`, `munmap`, `madvise`) is here.
//!
//! Invariant: a slab holds recordings in the clear, so it is advised `MADV_DONTDUMP`
//! (left out of core dumps) when mapped; should the kernel refuse (it does not on
//! Linux ≥ 3.4), the slab is still used and the refusal logged at debug.

use std::ptr::NonNull;

/// Slabs are this big and aligned to it: the PMD-level huge page of x86-64 and of
/// aarch64 with 4 KiB pages. (With 16 KiB or 64 KiB pages aarch64's huge pages are
/// 32 MiB or 512 MiB: there a slab is an aligned mapping without a huge page.)
pub(super) const HUGE_PAGE: usize = 2 << 20;
/// A slab's free blocks are one bitmap word, so blocks are at least this big; smaller
/// blocks come from the heap.
pub(super) const MAX_BLOCKS_PER_SLAB: usize = 64;

/// The system's page size in bytes (`sysconf(_SC_PAGESIZE)`), 0 if unknown.
pub(super) fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(0)
}

/// One mapped slab and which of its blocks are free.
pub(super) struct Slab {
    base: NonNull<u8>,
    block_size: usize,
    /// Number of blocks, `1..=MAX_BLOCKS_PER_SLAB`.
    blocks: usize,
    /// Bit i set: block i is free.
    free: u64,
    /// Bit i set: block i is free and its memory is not resident (never touched, or
    /// given back); reusing it costs page faults.
    cold: u64,
}

// SAFETY: `base` is the start of a private anonymous mapping owned by the pool; which
// thread holds the address does not matter, and each block is written only through
// the one `BlockBuf` that owns it.
unsafe impl Send for Slab {}

impl Slab {
    /// A new slab of `blocks` free, not yet resident blocks of `block_size` bytes;
    /// `None` if they do not fit a slab or the kernel refuses the mapping.
    pub fn map(blocks: usize, block_size: usize) -> Option<Slab> {
        if blocks == 0
            || blocks > MAX_BLOCKS_PER_SLAB
            || blocks.checked_mul(block_size)? > HUGE_PAGE
        {
            return None;
        }
        let all = if blocks == 64 {
            u64::MAX
        } else {
            (1u64 << blocks) - 1
        };
        Some(Slab {
            base: map_slab()?,
            block_size,
            blocks,
            free: all,
            cold: all,
        })
    }

    /// Address of the slab's first byte (a multiple of `HUGE_PAGE`).
    pub fn base_addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// The byte `offset` bytes into the slab; `None` past its end.
    pub fn at(&self, offset: usize) -> Option<NonNull<u8>> {
        if offset >= HUGE_PAGE {
            return None;
        }
        // SAFETY: offset < HUGE_PAGE: inside the slab. Derived from the slab's own
        // pointer, which covers the whole mapping (the pointers of the blocks' `Bytes`
        // each cover only their own piece).
        Some(unsafe { self.base.add(offset) })
    }

    /// Blocks ready for reuse.
    pub fn free_count(&self) -> usize {
        self.free.count_ones() as usize
    }

    /// The first free block.
    pub fn first_free(&self) -> Option<usize> {
        (self.free != 0).then(|| self.free.trailing_zeros() as usize)
    }

    /// The first free block whose memory is resident.
    pub fn first_warm_free(&self) -> Option<usize> {
        let warm = self.free & !self.cold;
        (warm != 0).then(|| warm.trailing_zeros() as usize)
    }

    /// The first of `n` adjacent free blocks (all resident if `warm_only`).
    pub fn free_run(&self, n: usize, warm_only: bool) -> Option<usize> {
        let free = if warm_only {
            self.free & !self.cold
        } else {
            self.free
        };
        free_run(free, n)
    }

    /// Marks free block `pos` in use; returns its first byte and whether its memory
    /// was resident.
    ///
    /// # Panics
    /// If `pos` is not a free block of this slab (a bug of the pool).
    pub fn claim(&mut self, pos: usize) -> (NonNull<u8>, bool) {
        assert!(
            pos < self.blocks && self.free & (1u64 << pos) != 0,
            "claim of a block that is not free"
        );
        let bit = 1u64 << pos;
        let was_warm = self.cold & bit == 0;
        self.free &= !bit;
        self.cold &= !bit;
        // SAFETY: pos < blocks, so the block lies inside the slab's mapping.
        let ptr = unsafe { self.base.add(pos * self.block_size) };
        (ptr, was_warm)
    }

    /// Marks block `pos` free again, its memory resident.
    pub fn put(&mut self, pos: usize) {
        if pos < self.blocks {
            self.free |= 1u64 << pos;
        }
    }

    /// Gives the memory of free block `pos` back to the kernel (`MADV_DONTNEED` of
    /// `block_size` bytes, a multiple of the page size: see
    /// `BlockPool::with_page_size`); its next user sees zeros, then writes. Does
    /// nothing for a block in use.
    ///
    /// # Safety
    /// The free bits are honest: if block `pos` is marked free, no `BlockBuf` or
    /// `Bytes` refers to it (the pool sets the bit only when the last one is gone, under
    /// its lock, which the caller holds).
    pub unsafe fn release(&mut self, pos: usize) {
        let bit = 1u64 << pos;
        if pos >= self.blocks || self.free & bit == 0 {
            return;
        }
        self.cold |= bit;
        let block = self.base.as_ptr().wrapping_add(pos * self.block_size);
        // SAFETY: the block is marked free, so per the contract nobody uses it; a range
        // inside a live private anonymous mapping (pos < blocks).
        unsafe { libc::madvise(block.cast(), self.block_size, libc::MADV_DONTNEED) };
    }

    /// Unmaps the slab.
    ///
    /// # Safety
    /// None of its blocks is in use any more.
    pub unsafe fn unmap(self) {
        // SAFETY: the slab was mapped by `map_slab` with exactly this length, and per
        // the contract nothing refers to it.
        unsafe { libc::munmap(self.base.as_ptr().cast(), HUGE_PAGE) };
    }
}

/// The first position of `n` adjacent set bits in `free`.
pub(super) fn free_run(free: u64, n: usize) -> Option<usize> {
    let mut run = free;
    for _ in 1..n {
        run &= run >> 1;
    }
    (run != 0).then(|| run.trailing_zeros() as usize)
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
            libc::munmap(p.cast::<u8>().add(head + HUGE_PAGE).cast(), tail);
        }
        libc::madvise(
            p.cast::<u8>().add(head).cast(),
            HUGE_PAGE,
            libc::MADV_HUGEPAGE,
        );
    }
    // SAFETY: head < HUGE_PAGE: inside the mapping.
    let base = NonNull::new(unsafe { p.cast::<u8>().add(head) })?;
    // SAFETY: [base, base + HUGE_PAGE) is the mapping just made and kept; MADV_DONTDUMP
    // only marks it to be left out of core dumps, and touches no memory.
    let rc = unsafe { libc::madvise(base.as_ptr().cast(), HUGE_PAGE, libc::MADV_DONTDUMP) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        tracing::debug!(%error, "slab: madvise(MADV_DONTDUMP) refused; blocks may be dumped");
    }
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slabs_are_left_out_of_core_dumps() {
        let s = Slab::map(1, 4096).expect("a slab");
        let base = s.base_addr();
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut lines = smaps.lines().skip_while(|l| {
            let start = l
                .split('-')
                .next()
                .and_then(|a| usize::from_str_radix(a, 16).ok());
            start != Some(base)
        });
        assert!(lines.next().is_some(), "the slab's mapping is in smaps");
        let flags = lines
            .find(|l| l.starts_with("VmFlags:"))
            .expect("VmFlags of the slab");
        assert!(flags.split_whitespace().any(|f| f == "dd"), "{flags}");
        // SAFETY: no block of this slab was handed out.
        unsafe { s.unmap() };
    }

    #[test]
    fn the_page_size_is_a_power_of_two_dividing_a_slab() {
        let page = page_size();
        assert!(page.is_power_of_two() && HUGE_PAGE % page == 0, "{page}");
    }

    #[test]
    fn free_runs() {
        assert_eq!(free_run(0b1110_0110, 2), Some(1));
        assert_eq!(free_run(0b1110_0110, 3), Some(5));
        assert_eq!(free_run(0b1110_0110, 4), None);
        assert_eq!(free_run(u64::MAX, 64), Some(0));
    }

    #[test]
    fn bitmaps_follow_claims_and_releases() {
        let block = HUGE_PAGE / 8;
        assert!(Slab::map(9, block).is_none(), "does not fit");
        assert!(Slab::map(65, 4096).is_none(), "too many blocks");
        let mut s = Slab::map(8, block).expect("map");
        assert_eq!(s.base_addr() % HUGE_PAGE, 0);
        assert_eq!((s.free_count(), s.first_warm_free()), (8, None), "all cold");
        let (p0, warm) = s.claim(0);
        assert!(!warm);
        assert_eq!(p0.as_ptr() as usize, s.base_addr());
        let (p1, _) = s.claim(1);
        assert_eq!(p1.as_ptr() as usize, s.base_addr() + block);
        assert_eq!(s.first_free(), Some(2));
        s.put(0);
        assert_eq!(s.first_warm_free(), Some(0));
        assert_eq!(
            s.free_run(2, false),
            Some(2),
            "0 and 2.. are free, 1 is not"
        );
        assert_eq!(s.free_run(1, true), Some(0));
        // SAFETY: nothing refers to any block of this slab (none was handed out).
        unsafe { s.release(0) };
        assert_eq!(s.first_warm_free(), None);
        // SAFETY: as above; block 1 is marked in use, so release leaves it alone.
        unsafe { s.release(1) };
        assert_eq!(s.free_count(), 7);
        let (_, warm) = s.claim(0);
        assert!(!warm, "given back");
        s.put(1);
        assert_eq!(s.first_warm_free(), Some(1), "block 1 was left resident");
        assert_eq!(s.at(HUGE_PAGE), None);
        // SAFETY: the blocks claimed here were never handed to anyone.
        unsafe { s.unmap() };
    }
}
