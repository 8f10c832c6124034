//! Memory for block data: a pool of block-sized buffers carved from huge-page slabs
//! and recycled, so that filling and refilling the cache costs neither a page fault
//! per 4 KiB nor a trip through malloc.

mod buf;
mod pool;
mod slab;

pub use buf::BlockBuf;
pub use pool::BlockPool;
