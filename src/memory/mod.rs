//! Memory for block data: a pool of block-sized buffers carved from huge-page slabs
//! and recycled, so that filling and refilling the cache costs neither a page fault
//! per 4 KiB nor a trip through malloc.
//!
//! # Design and invariants
//!
//! **One memory budget.** The block cache (`crate::cache`) owns the pool and keeps
//! `cached + in flight + idle pool <= capacity`, where "idle pool" is the memory of free
//! blocks the pool keeps resident for reuse ([`BlockPool::idle_resident_bytes`]). When
//! the sum is over, idle pool memory is given back to the kernel first
//! ([`BlockPool::give_back`], `MADV_DONTNEED`), and only then are cached blocks
//! evicted: memory nobody uses never costs a cached block. The pool itself maps at
//! most `max_bytes` of slabs (the cache allows 1/16 over its capacity, for evicted
//! blocks that readers still hold) and keeps at most `idle_bytes` of free blocks
//! resident (it releases any block freed beyond that at once); past its bound it hands
//! out ordinary heap buffers, so it never fails a request.
//!
//! **Slabs.** Pool memory comes in slabs of 2 MiB, private anonymous mappings aligned
//! to 2 MiB and advised `MADV_HUGEPAGE`: where the kernel backs them with transparent
//! huge pages (x86-64, and aarch64 with 4 KiB pages) a fresh slab costs one page fault
//! instead of 512. A slab holds `2 MiB / block_size` blocks, at most 64 (its free and
//! not-resident blocks are one bitmap word each), so only block sizes that divide
//! 2 MiB into at most 64 pieces are pooled. Slabs stay mapped until the pool and every
//! block it handed out are gone (each block holds the pool).
//!
//! **Page-size rule.** A block is pooled only if `block_size` is a multiple of the
//! system page size (`sysconf(_SC_PAGESIZE)`). Releasing a free block is
//! `madvise(MADV_DONTNEED)` of `block_size` bytes, which the kernel applies to whole
//! pages: 32 KiB blocks on a 64 KiB-page kernel would zero a live neighbour. Otherwise
//! (or if the page size is unknown) every buffer comes from the heap.
//!
//! **Adjacency and joins.** [`BlockPool::run`] hands out consecutive blocks of one slab
//! where it can (resident ones first). [`BlockPool::join`] turns pieces of blocks into
//! one `Bytes` without a copy only if they are non-empty, back to back and all inside
//! one slab of this pool; pieces in two slabs never join, even if the mappings happen
//! to be adjacent (they are separate mappings). A joined `Bytes` keeps every piece,
//! and so every block, alive.
//!
//! **Contents.** A buffer exposes only the bytes written into it; a block given back
//! reads as zeros until its next user writes it, so no stale or uninitialised memory is
//! ever visible. A block is written only through the one [`BlockBuf`] that owns it, and
//! is immutable once frozen.
//!
//! **Where the unsafe code is.** `slab` holds every system call (`mmap`, `munmap`,
//! `madvise`, `sysconf`) and the pointer arithmetic inside a slab; `buf` every read and
//! write of pool memory through a raw pointer; `pool` is the policy and only upholds
//! their contracts (a block's free bit is set, under the pool lock, only once nothing
//! refers to it).

mod buf;
mod pool;
mod slab;

pub use buf::BlockBuf;
pub use pool::BlockPool;
