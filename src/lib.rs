//! vccfs: the Vonage Contact Center Interaction Content API as a read-only FUSE filesystem.
//!
//! Layers, each with one job (modelled on mountpoint-s3):
//! - [`api`]: the HTTP client (tokens, search, ranged content, retries, rate budget);
//! - `catalog`: what exists (listings, lookups, refresh);
//! - `version`: the stable name of a content version and its validator pin;
//! - `source`: the seam where blocks come from (tiers in front of the API);
//! - `cache`: the memory tier (block LRU, single-flight fetches);
//! - `memory`: block buffers from recycled huge-page slabs, one memory budget;
//! - `prefetch`: read-ahead for sequential readers and directory scans;
//! - `fs`: the tree and reads as async ops, behind a thin fuser adapter;
//! - `mount`: serving a mount; [`cli`]: clap commands; `doctor`: how a real tenant behaves;
//! - [`emulator`]: a faithful local API server, also the demo's backend.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod api;
mod audit;
mod cache;
mod catalog;
pub mod cli;
mod control;
mod doctor;
pub mod emulator;
pub mod erase;
mod fleet;
mod fs;
mod memory;
pub mod meta;
pub mod model;
mod mount;
mod prefetch;
mod safe_fs;
pub mod seal;
mod source;
mod sync;
pub mod util;
mod version;

/// The layers below the mount that the integration tests drive directly.
pub mod testing {
    pub use crate::cache::{BlockCache, ContentId};
    pub use crate::prefetch::{OpenVersion, Prefetcher, ReadAhead, ReadAheadConfig, Retention};
    pub use crate::version::{ContentVersion, TenantId};
}
