//! Which blocks of one open file the kernel's page cache now holds whole.
//!
//! With `FOPEN_KEEP_CACHE` the kernel keeps every byte a read returns, across opens,
//! until memory pressure. A block it holds whole is dead weight in the block cache: a
//! file streamed once would sit in memory twice, and read-ahead would fill fresh
//! memory instead of reusing the buffers the reader just consumed. Reads usually cover
//! whole blocks (the kernel reads ahead in aligned 1 MiB requests); smaller or
//! unaligned reads are added up per block until the block is complete.

use crate::cache::BlockMath;

/// Partially delivered blocks remembered per open file; older ones are forgotten
/// (they then simply age out of the cache).
const PARTIAL_MAX: usize = 32;

/// Delivery bookkeeping for one open file.
#[derive(Debug, Default)]
pub struct Handover {
    /// (block index, bytes of it delivered so far), oldest first.
    partial: Vec<(u64, u64)>,
}

impl Handover {
    /// Bytes `[offset, end)` of a file of `size` bytes went to the kernel. Returns the
    /// blocks now delivered whole: a run `[from, to)` plus up to two blocks completed
    /// by this read's ragged edges.
    pub fn delivered(
        &mut self,
        math: BlockMath,
        offset: u64,
        end: u64,
        size: u64,
    ) -> ((u64, u64), Vec<u64>) {
        let end = end.min(size);
        let whole = math.whole_blocks(offset, end, size);
        // Blocks delivered whole now need no partial count (re-reads overlap).
        self.partial
            .retain(|(i, _)| !(whole.0..whole.1).contains(i));
        let mut done = Vec::new();
        if offset >= end {
            return (whole, done);
        }
        // Blocks between the first and the last are whole; the edges may be ragged.
        let (first, last) = (math.block_of(offset), math.block_of(end - 1));
        let edges = if first == last {
            vec![first]
        } else {
            vec![first, last]
        };
        for index in edges {
            if (whole.0..whole.1).contains(&index) {
                continue;
            }
            let (bstart, bend) = math.block_range(index, size);
            let got = end.min(bend) - offset.max(bstart);
            if let Some(block) = self.add(index, got, bend - bstart) {
                done.push(block);
            }
        }
        (whole, done)
    }

    /// Count `got` more bytes of block `index` (`len` bytes long); the index when that
    /// completes it.
    fn add(&mut self, index: u64, got: u64, len: u64) -> Option<u64> {
        let pos = self.partial.iter().position(|(i, _)| *i == index);
        let total = got + pos.map_or(0, |p| self.partial[p].1);
        if let Some(p) = pos {
            self.partial.remove(p);
        }
        if total >= len {
            return Some(index);
        }
        if self.partial.len() == PARTIAL_MAX {
            self.partial.remove(0);
        }
        self.partial.push((index, total));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: u64 = 4096;

    fn all(h: &mut Handover, offset: u64, end: u64, size: u64) -> Vec<u64> {
        let ((from, to), mut more) = h.delivered(BlockMath::new(B), offset, end, size);
        more.extend(from..to);
        more.sort_unstable();
        more
    }

    #[test]
    fn aligned_reads_hand_over_their_blocks_at_once() {
        let mut h = Handover::default();
        assert_eq!(all(&mut h, 0, 4 * B, 100 * B), vec![0, 1, 2, 3]);
        assert_eq!(all(&mut h, 8 * B, 9 * B, 100 * B), vec![8]);
        assert!(h.partial.is_empty());
    }

    #[test]
    fn halves_add_up_in_any_order() {
        let mut h = Handover::default();
        assert_eq!(all(&mut h, B / 2, B + B / 2, 100 * B), Vec::<u64>::new());
        assert_eq!(all(&mut h, B + B / 2, 2 * B, 100 * B), vec![1]);
        assert_eq!(all(&mut h, 0, B / 2, 100 * B), vec![0]);
        assert!(h.partial.is_empty());
    }

    #[test]
    fn a_block_read_whole_drops_its_partial_count() {
        let mut h = Handover::default();
        assert_eq!(all(&mut h, 0, B / 2, 100 * B), Vec::<u64>::new());
        assert_eq!(h.partial.len(), 1);
        assert_eq!(all(&mut h, 0, 2 * B, 100 * B), vec![0, 1]);
        assert!(h.partial.is_empty());
    }

    #[test]
    fn the_short_last_block_counts_at_end_of_file() {
        let mut h = Handover::default();
        let size = 2 * B + 100;
        assert_eq!(all(&mut h, 2 * B, size + 50, size), vec![2]);
        assert_eq!(all(&mut h, B + 10, size, size), vec![2]);
        assert_eq!(all(&mut h, B, B + 10, size), vec![1]);
    }

    proptest! {
        #[test]
        fn small_sequential_reads_hand_over_every_block_once(step in 1u64..3 * B, size in 1u64..40 * B) {
            let mut h = Handover::default();
            let mut seen = Vec::new();
            let mut off = 0;
            while off < size {
                seen.extend(all(&mut h, off, off + step, size));
                off += step;
            }
            let count = BlockMath::new(B).block_count(size);
            prop_assert_eq!(seen, (0..count).collect::<Vec<_>>());
        }

        #[test]
        fn nothing_is_handed_over_before_it_was_delivered(reads in proptest::collection::vec((0u64..20 * B, 1u64..3 * B), 1..30)) {
            let size = 20 * B;
            let mut h = Handover::default();
            let mut covered = [0u64; 20];
            for (off, len) in reads {
                let end = (off + len).min(size);
                let done = all(&mut h, off, end, size);
                for i in 0..20u64 {
                    let (s, e) = (i * B, (i + 1) * B);
                    covered[i as usize] += end.min(e).saturating_sub(off.max(s));
                }
                for i in done {
                    prop_assert!(covered[i as usize] >= B, "block {} handed over early", i);
                }
            }
        }
    }
}
