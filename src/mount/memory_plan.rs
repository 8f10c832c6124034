//! How `--cache-size` is shared out, as pure arithmetic: the block cache (blocks cached
//! and in flight) gets 15/16 of it, the rest is headroom for reply and network buffers in
//! transit; read-ahead never holds more than half the cache in flight, nor plans a window
//! bigger than half of it, nor fetch a file whole when it is over an eighth of it.
//!
//! Invariants: every figure is at least one block; with `block_size <= cache_size` (the
//! CLI checks it) the block budget never exceeds the cache size, and read-ahead only
//! lowers its defaults, never raises them.

use crate::prefetch::ReadAheadConfig;

/// The memory figures of one mount.
#[derive(Debug, Clone)]
pub(super) struct MemoryPlan {
    /// Bytes of blocks the cache may hold (cached and in flight).
    pub block_budget: u64,
    pub read_ahead: ReadAheadConfig,
}

/// Share out `cache_size` bytes among `block_size` blocks and read-ahead.
pub(super) fn memory_plan(cache_size: u64, block_size: u64) -> MemoryPlan {
    // --cache-size bounds all content memory: blocks (cached and in flight) get 15/16 of
    // it, the rest is headroom for reply and network buffers in transit.
    let block_budget = (cache_size - cache_size / 16).max(block_size);
    let mut ra = ReadAheadConfig::default();
    // Read-ahead never holds more than half the cache in flight.
    ra.inflight_budget = ra.inflight_budget.min(cache_size / 2).max(block_size);
    ra.max_window = ra.max_window.min(cache_size / 2).max(block_size);
    // One request (a head or tail fetch, a read-ahead run) never takes more than the
    // window, so a small cache still reads ahead (and within its budget).
    ra.max_request = ra.max_request.min(ra.max_window);
    ra.min_request = ra.min_request.min(ra.max_request);
    ra.probe_lead = ra.probe_lead.min(ra.max_request);
    // A whole-file fetch (one request for a small file) fits the read-ahead budget
    // and an eighth of the cache, so a few at once never wipe it.
    ra.whole_file = ra
        .whole_file
        .min(cache_size / 8)
        .min(ra.inflight_budget)
        .max(block_size);
    MemoryPlan {
        block_budget,
        read_ahead: ra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;

    #[test]
    fn default_sizes() {
        let p = memory_plan(256 * M, 256 * K);
        assert_eq!(p.block_budget, 240 * M);
        let d = ReadAheadConfig::default();
        assert_eq!(p.read_ahead.inflight_budget, d.inflight_budget);
        assert_eq!(p.read_ahead.max_window, d.max_window);
        assert_eq!(p.read_ahead.initial_window, d.initial_window);
        assert_eq!(p.read_ahead.max_request, d.max_request);
        assert_eq!(p.read_ahead.min_request, d.min_request);
        assert_eq!(p.read_ahead.parallel, d.parallel);
        assert_eq!(p.read_ahead.whole_file, d.whole_file);
    }

    #[test]
    fn a_small_cache_caps_read_ahead_at_half() {
        let p = memory_plan(64 * M, 256 * K);
        assert_eq!(p.block_budget, 60 * M);
        assert_eq!(p.read_ahead.inflight_budget, 32 * M);
        assert_eq!(p.read_ahead.max_window, 32 * M);
        assert_eq!(p.read_ahead.whole_file, 8 * M);
    }

    #[test]
    fn never_less_than_one_block() {
        let p = memory_plan(256 * K, 256 * K);
        assert_eq!(p.block_budget, 256 * K);
        assert_eq!(p.read_ahead.inflight_budget, 256 * K);
        assert_eq!(p.read_ahead.max_window, 256 * K);
    }

    #[test]
    fn within_the_cache_size() {
        let d = ReadAheadConfig::default();
        for cache in [4 * K, M, 3 * M + 7, 100 * M, 1 << 30, 64 << 30] {
            for block in [4 * K, 256 * K, 64 * M] {
                if block > cache {
                    continue;
                }
                let p = memory_plan(cache, block);
                assert!(p.block_budget <= cache && p.block_budget >= block);
                let ra = &p.read_ahead;
                assert!(ra.inflight_budget <= (cache / 2).max(block));
                assert!(ra.max_window <= (cache / 2).max(block));
                assert!(ra.inflight_budget <= d.inflight_budget.max(block));
                assert!(ra.max_window <= d.max_window.max(block));
                assert!(ra.max_request <= ra.max_window && ra.min_request <= ra.max_request);
                assert!(ra.whole_file <= (cache / 8).max(block));
            }
        }
    }
}
