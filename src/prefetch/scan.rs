//! Scan read-ahead: when a reader opens the same content key in one interaction
//! directory after another (grep -r, rsync, batch jobs), fetch that key of the next
//! directories in listing order before it gets there.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Opens of one key in a row before scan read-ahead starts.
const STREAK_TO_START: u32 = 2;
/// How many directories ahead to fetch.
pub const SCAN_DEPTH: usize = 48;
/// Only files up to this size are fetched whole ahead of the reader.
pub const SCAN_MAX_FILE: u64 = 4 << 20;

#[derive(Debug, Default, Clone, Copy)]
struct KeyScan {
    last_pos: usize,
    streak: u32,
    /// Positions up to here were already fetched ahead.
    ahead_until: usize,
}

/// Per-mount scan detector.
#[derive(Debug, Default)]
pub struct ScanDetector {
    keys: Mutex<HashMap<String, KeyScan>>,
}

impl ScanDetector {
    /// Record an open of `key` in the directory at listing position `pos`; returns the
    /// positions `(from, to)` (exclusive end) whose `key` should be fetched now, if any.
    pub fn on_open(&self, key: &str, pos: usize) -> Option<(usize, usize)> {
        let mut keys = self.keys.lock();
        let s = keys.entry(key.to_string()).or_default();
        let forward = pos > s.last_pos && pos - s.last_pos <= 3;
        s.streak = if forward { s.streak + 1 } else { 0 };
        s.last_pos = pos;
        if !forward {
            s.ahead_until = pos + 1;
        }
        if s.streak < STREAK_TO_START {
            return None;
        }
        let target = pos + 1 + SCAN_DEPTH;
        // Top up when half the lead is used, in batches.
        if s.ahead_until > pos + SCAN_DEPTH / 2 {
            return None;
        }
        let from = s.ahead_until.max(pos + 1);
        s.ahead_until = target;
        (from < target).then_some((from, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_after_a_streak_and_stops_on_a_jump() {
        let d = ScanDetector::default();
        assert_eq!(d.on_open("transcript", 0), None);
        assert_eq!(d.on_open("transcript", 1), None);
        let (a, b) = d
            .on_open("transcript", 2)
            .expect("third in a row starts scanning");
        assert_eq!((a, b), (3, 3 + SCAN_DEPTH));
        // Other keys do not disturb it.
        assert_eq!(d.on_open("callRecording", 3), None);
        assert_eq!(d.on_open("transcript", 3), None, "still well ahead");
        // A jump back stops it.
        assert_eq!(d.on_open("transcript", 0), None);
        assert_eq!(d.on_open("transcript", 100), None);
    }
}
