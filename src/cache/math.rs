//! Block arithmetic: which blocks cover a byte range, and where a block lies.

/// Fixed-size block geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMath {
    block_size: u64,
}

impl BlockMath {
    pub fn new(block_size: u64) -> Self {
        BlockMath {
            block_size: block_size.max(1),
        }
    }

    pub fn block_size(self) -> u64 {
        self.block_size
    }

    /// Index of the block holding byte `offset`.
    pub fn block_of(self, offset: u64) -> u64 {
        offset / self.block_size
    }

    /// Number of blocks of a file of `size` bytes.
    pub fn block_count(self, size: u64) -> u64 {
        size.div_ceil(self.block_size)
    }

    /// Byte range `[start, end)` of block `index` in a file of `size` bytes.
    pub fn block_range(self, index: u64, size: u64) -> (u64, u64) {
        let start = index.saturating_mul(self.block_size).min(size);
        let end = start.saturating_add(self.block_size).min(size);
        (start, end)
    }

    /// Blocks `[first, last]` covering bytes `[offset, offset+len)` of a file of `size`
    /// bytes, or `None` when the range is empty or past the end.
    pub fn blocks_for(self, offset: u64, len: u64, size: u64) -> Option<(u64, u64)> {
        let end = offset.saturating_add(len).min(size);
        (offset < end).then(|| (self.block_of(offset), self.block_of(end - 1)))
    }

    /// Blocks `[from, to)` lying entirely inside bytes `[offset, end)` of a file of
    /// `size` bytes (the short last block counts when `end` reaches the file's end);
    /// empty (`from >= to`) when there are none.
    pub fn whole_blocks(self, offset: u64, end: u64, size: u64) -> (u64, u64) {
        let end = end.min(size);
        let from = offset.div_ceil(self.block_size);
        let to = if end == size {
            self.block_count(size)
        } else {
            end / self.block_size
        };
        (from, to.max(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        let m = BlockMath::new(4096);
        assert_eq!(m.blocks_for(0, 1, 10), Some((0, 0)));
        assert_eq!(m.blocks_for(4095, 2, 10_000), Some((0, 1)));
        assert_eq!(m.blocks_for(10, 5, 10), None);
        assert_eq!(m.block_range(2, 10_000), (8192, 10_000));
        assert_eq!(m.block_count(8193), 3);
        assert_eq!(m.block_count(0), 0);
    }

    proptest! {
        #[test]
        fn blocks_cover_exactly(offset in 0u64..100_000, len in 0u64..50_000, size in 0u64..120_000) {
            let m = BlockMath::new(4096);
            match m.blocks_for(offset, len, size) {
                None => prop_assert!(offset >= size || len == 0),
                Some((a, b)) => {
                    prop_assert!(a <= b);
                    let (s, _) = m.block_range(a, size);
                    let (_, e) = m.block_range(b, size);
                    prop_assert!(s <= offset);
                    prop_assert!(e >= (offset + len).min(size));
                    prop_assert!(e - s < (b - a + 1) * 4096 + 1);
                }
            }
        }

        #[test]
        fn whole_blocks_are_inside_and_all_there(offset in 0u64..100_000, len in 0u64..50_000, size in 0u64..120_000) {
            let m = BlockMath::new(4096);
            let end = (offset + len).min(size);
            let (from, to) = m.whole_blocks(offset, end, size);
            for i in 0..m.block_count(size) {
                let (s, e) = m.block_range(i, size);
                let inside = offset <= s && e <= end && s < e;
                prop_assert_eq!(inside, (from..to).contains(&i), "block {}", i);
            }
        }
    }
}
