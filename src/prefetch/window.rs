//! Sequential-access detection and the read-ahead window of one reader.

use crate::cache::BlockMath;

/// Read-ahead tuning.
#[derive(Debug, Clone)]
pub struct ReadAheadConfig {
    /// First read-ahead window once a reader looks sequential.
    pub initial_window: u64,
    /// Largest window.
    pub max_window: u64,
    /// Largest single ranged GET.
    pub max_request: u64,
    /// Smallest read-ahead GET (parallelism never splits finer than this).
    pub min_request: u64,
    /// Read-ahead requests in flight at once per window (parallelism).
    pub parallel: u64,
    /// Bytes of read-ahead in flight across the mount.
    pub inflight_budget: u64,
    /// Files up to this size are fetched whole, in one request, on first touch.
    pub whole_file: u64,
    /// A larger file read this close to its start fetches its head (`max_request`
    /// bytes); read in its last `max_request` bytes, its tail from at most this far
    /// before the end. 0: neither head nor tail fetches.
    pub probe_lead: u64,
}

impl Default for ReadAheadConfig {
    fn default() -> Self {
        ReadAheadConfig {
            initial_window: 1 << 20,
            max_window: 128 << 20,
            max_request: 8 << 20,
            min_request: 8 << 20,
            parallel: 8,
            inflight_budget: 128 << 20,
            whole_file: 16 << 20,
            probe_lead: 1 << 20,
        }
    }
}

impl ReadAheadConfig {
    pub(crate) fn max_request_blocks(&self, math: BlockMath) -> u64 {
        (self.max_request / math.block_size()).max(1)
    }

    /// Request size in bytes for a read-ahead span: split `parallel` ways, but no
    /// request smaller than `min_request` or larger than `max_request`.
    pub(crate) fn chunk_for(&self, span: u64) -> u64 {
        span.div_ceil(self.parallel.max(1))
            .max(self.min_request)
            .min(self.max_request)
    }
}

/// The state of one reader (one open file).
#[derive(Debug, Default, Clone)]
pub struct ReadAhead {
    /// Where the next sequential read would start.
    next: u64,
    /// Current window (0 = not sequential).
    window: u64,
    /// Read-ahead has been requested up to here.
    ahead_until: u64,
    reads: u64,
}

impl ReadAhead {
    /// Record a read of `[offset, end)` and return the span to read ahead, if any.
    pub fn on_read(
        &mut self,
        cfg: &ReadAheadConfig,
        offset: u64,
        end: u64,
        file_size: u64,
    ) -> Option<(u64, u64)> {
        self.reads += 1;
        // The kernel issues read-ahead reads concurrently and they may arrive out of order:
        // anything near where we expected counts as sequential.
        let tolerance = self.window.max(cfg.initial_window).max(2 << 20);
        let sequential = self.reads > 1
            && offset <= self.next.saturating_add(tolerance)
            && offset.saturating_add(tolerance) >= self.next;
        if sequential {
            self.window = if self.window == 0 {
                cfg.initial_window
            } else {
                (self.window * 2).min(cfg.max_window)
            };
            self.next = self.next.max(end);
        } else {
            // A seek: drop back, keep what was fetched.
            self.window = 0;
            self.next = end;
            self.ahead_until = end;
            return None;
        }
        // Spans end on multiples of the smallest request, so that the requests of
        // one span and the next line up and none is a sliver.
        let align = cfg.min_request.max(1);
        let target = end
            .saturating_add(self.window)
            .div_ceil(align)
            .saturating_mul(align)
            .min(file_size);
        // Top up only when less than half the window is still ahead, so read-ahead goes
        // out in large requests rather than a block at a time.
        if self.ahead_until.saturating_sub(end) > self.window / 2 || self.ahead_until >= target {
            return None;
        }
        let start = self.ahead_until.max(end);
        self.ahead_until = target;
        (start < target).then_some((start, target))
    }

    /// Read-ahead from `offset` on was not started (no memory budget left): the next
    /// read asks for it again instead of leaving a gap to be fetched block by block.
    pub fn refused_from(&mut self, offset: u64) {
        self.ahead_until = self.ahead_until.min(offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_reads_grow_the_window_and_seeks_reset_it() {
        let cfg = ReadAheadConfig::default();
        let mut ra = ReadAhead::default();
        let size = 1 << 30;
        assert_eq!(
            ra.on_read(&cfg, 0, 131072, size),
            None,
            "first read: no read-ahead"
        );
        let (a, b) = ra
            .on_read(&cfg, 131072, 262144, size)
            .expect("second sequential read");
        assert_eq!(a, 262144);
        assert!(b - a >= cfg.initial_window);
        assert_eq!(b % cfg.min_request, 0, "spans end on request boundaries");
        let mut off = 262144;
        let mut spans = Vec::new();
        for _ in 0..2000 {
            if let Some((a, b)) = ra.on_read(&cfg, off, off + 131072, size) {
                assert!(a >= off + 131072);
                assert_eq!(b % cfg.min_request, 0, "span {a}..{b}");
                spans.push(b - a);
            }
            off += 131072;
        }
        assert!(
            spans.iter().any(|&s| s >= cfg.max_window / 2),
            "the window grew: {spans:?}"
        );
        assert!(ra.window <= cfg.max_window);
        // A seek far away: no read-ahead, window reset.
        assert_eq!(ra.on_read(&cfg, 900 << 20, (900 << 20) + 4096, size), None);
        assert_eq!(ra.window, 0);
    }

    #[test]
    fn refused_read_ahead_is_asked_for_again() {
        let cfg = ReadAheadConfig::default();
        let mut ra = ReadAhead::default();
        let size = 1 << 30;
        let mut off = 0;
        let mut span = None;
        while span.is_none_or(|(a, b)| b - a < 4 << 20) {
            span = ra.on_read(&cfg, off, off + 131072, size).or(span);
            off += 131072;
        }
        let (a, _) = span.expect("read-ahead");
        // Nothing from just past the next read on was started.
        let refused = a.max(off + 2 * 131072);
        ra.refused_from(refused);
        let (a2, _) = ra
            .on_read(&cfg, off, off + 131072, size)
            .expect("the refused part is asked for on the next read");
        assert_eq!(a2, refused);
    }

    #[test]
    fn out_of_order_kernel_readahead_is_still_sequential() {
        let cfg = ReadAheadConfig::default();
        let mut ra = ReadAhead::default();
        let size = 1 << 30;
        ra.on_read(&cfg, 0, 131072, size);
        ra.on_read(&cfg, 262144, 393216, size);
        ra.on_read(&cfg, 131072, 262144, size);
        assert!(ra.window > 0);
    }
}
