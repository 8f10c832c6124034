//! vccfs: the Vonage Contact Center Interaction Content API as a read-only FUSE filesystem.
//!
//! Layers, each with one job (modelled on mountpoint-s3):
//! - [`api`]: the HTTP client (tokens, search, ranged content, retries, rate budget);
//! - [`emulator`]: a faithful local API server, also the demo's backend;
//! - [`cache`]: the block cache (block math, LRU, single-flight fetches);
//! - [`memory`]: block buffers from recycled huge-page slabs;
//! - [`prefetch`]: read-ahead for sequential readers and directory scans;
//! - [`fs`]: the FUSE adapter (inodes, attributes, tree, reply mapping);
//! - [`cli`]: clap commands.

pub mod api;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod emulator;
pub mod fs;
pub mod memory;
pub mod model;
pub mod mount;
pub mod prefetch;
pub mod source;
pub mod util;
pub mod version;
