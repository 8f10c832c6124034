//! When synthetic interaction `i` starts: a deterministic, non-decreasing function of
//! `i`, computed in integers, so the interactions of any time window are a range of
//! indices found by binary search, without building the others.
//!
//! Calls are busier during business hours: each second of a UTC day has a weight,
//! [`QUIET`] outside 08:00–18:00 and [`BUSY`] inside (so about 88% of the calls fall in
//! business hours, as before). The `n` interactions of the initial span
//! `[anchor - days, anchor)` share its total weight (`days` whole days, so exactly
//! `days * DAY_WEIGHT`): interaction `i` sits at weight `(i + u_i) * span / n` from the
//! span's start, `u_i` a per-index fraction in [0, 1), and starts in the second holding
//! that weight. Indices `i >= n` continue the same function after the anchor: the same
//! average rate, `n / days` a day, for as long as the emulator runs.

use super::super::record::mix;

const DAY: i64 = 86_400;
/// Business hours, seconds of the UTC day.
const OPEN: u64 = 8 * 3600;
const CLOSE: u64 = 18 * 3600;
/// Weight of one second outside and inside business hours.
const QUIET: u64 = 1;
const BUSY: u64 = 10;
/// Weight of a whole day.
const DAY_WEIGHT: u64 = QUIET * (DAY as u64 - (CLOSE - OPEN)) + BUSY * (CLOSE - OPEN);
/// Weight from midnight to business hours' end.
const CLOSE_WEIGHT: u64 = QUIET * OPEN + BUSY * (CLOSE - OPEN);
/// Bits of the per-index fraction `u_i`.
const FRACTION_BITS: u32 = 32;
/// Seed tag of the fractions.
const TAG_FRACTION: u64 = 0x71e1_11e5;

/// Weight from midnight to second `s` of the day (`0..=DAY`).
fn weight_of_second(s: u64) -> u64 {
    if s <= OPEN {
        s * QUIET
    } else if s <= CLOSE {
        QUIET * OPEN + (s - OPEN) * BUSY
    } else {
        CLOSE_WEIGHT + (s - CLOSE) * QUIET
    }
}

/// The second of the day holding weight `w` (`w < DAY_WEIGHT`): the largest `s` with
/// `weight_of_second(s) <= w`.
fn second_of_weight(w: u64) -> u64 {
    if w < QUIET * OPEN {
        w / QUIET
    } else if w < CLOSE_WEIGHT {
        OPEN + (w - QUIET * OPEN) / BUSY
    } else {
        CLOSE + (w - CLOSE_WEIGHT) / QUIET
    }
}

/// The start times of one synthetic tenant.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    seed: u64,
    /// Interactions in the initial span.
    n: u64,
    /// UTC midnight on or before the span's start, unix seconds.
    origin: i64,
    /// The span's start, unix seconds.
    first_second: i64,
    /// Weight from `origin` to the span's start.
    first: u128,
    /// Weight of the initial span.
    span: u128,
}

impl Timeline {
    /// `n` interactions over the `days` days before `anchor` (unix seconds).
    pub fn new(seed: u64, n: u64, days: u32, anchor: i64) -> Self {
        let first_second = anchor - i64::from(days) * DAY;
        let origin = first_second - first_second.rem_euclid(DAY);
        let mut t = Self {
            seed,
            n,
            origin,
            first_second,
            first: 0,
            span: u128::from(days) * u128::from(DAY_WEIGHT),
        };
        t.first = t.weight_at(first_second);
        t
    }

    /// Weight from `origin` to unix second `t` (0 before `origin`).
    fn weight_at(&self, t: i64) -> u128 {
        let Ok(rel) = u64::try_from(t - self.origin) else {
            return 0;
        };
        let days = u128::from(rel / DAY as u64);
        days * u128::from(DAY_WEIGHT) + u128::from(weight_of_second(rel % DAY as u64))
    }

    /// Start of interaction `i`, unix seconds; non-decreasing in `i`, before the anchor
    /// for `i < n`.
    pub fn start(&self, i: u64) -> i64 {
        if self.n == 0 {
            return self.first_second;
        }
        let fraction = u128::from(mix(self.seed ^ TAG_FRACTION, i) >> (64 - FRACTION_BITS));
        let scaled = (u128::from(i) << FRACTION_BITS) | fraction;
        let pos = self.first + scaled * self.span / (u128::from(self.n) << FRACTION_BITS);
        let day = (pos / u128::from(DAY_WEIGHT)) as i64;
        let w = (pos % u128::from(DAY_WEIGHT)) as u64;
        self.origin + day * DAY + second_of_weight(w) as i64
    }

    /// The first index whose start is at or after `t`: interactions `0..first_at(t)`
    /// start before `t`.
    pub fn first_at(&self, t: i64) -> u64 {
        if self.n == 0 || t <= self.first_second {
            return 0;
        }
        // start(i) >= t once i's weight passes t's: i > (weight - first) * n / span.
        let w = self.weight_at(t) - self.first;
        let bound = w * u128::from(self.n) / self.span + 2;
        let (mut lo, mut hi) = (0u64, u64::try_from(bound).unwrap_or(u64::MAX));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.start(mid) >= t {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANCHOR: i64 = 1_700_002_800; // 2023-11-14T23:00:00Z

    #[test]
    fn weights_invert() {
        assert_eq!(weight_of_second(DAY as u64), DAY_WEIGHT);
        for s in (0..DAY as u64)
            .step_by(97)
            .chain([OPEN - 1, OPEN, CLOSE - 1, CLOSE])
        {
            let w = weight_of_second(s);
            assert_eq!(second_of_weight(w), s, "{s}");
            let next = weight_of_second(s + 1);
            assert_eq!(second_of_weight(next - 1), s, "{s}");
        }
    }

    #[test]
    fn initial_span_then_the_same_rate() {
        let n = 10_000;
        let t = Timeline::new(42, n, 30, ANCHOR);
        let span_start = ANCHOR - 30 * DAY;
        let starts: Vec<i64> = (0..3 * n).map(|i| t.start(i)).collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "non-decreasing");
        assert!(starts[..n as usize]
            .iter()
            .all(|s| (span_start..ANCHOR).contains(s)));
        assert!(starts[n as usize..].iter().all(|s| *s >= ANCHOR));
        // After the anchor: 30 more days for the next n, at the same rate.
        let second = starts[2 * n as usize - 1] - ANCHOR;
        assert!((29 * DAY..=31 * DAY).contains(&second), "{second}");
        // Mostly business hours.
        let busy = starts
            .iter()
            .filter(|s| (OPEN as i64..CLOSE as i64).contains(&s.rem_euclid(DAY)))
            .count();
        let share = busy as f64 / starts.len() as f64;
        assert!((0.85..0.91).contains(&share), "{share}");
    }

    #[test]
    fn first_at_is_the_partition_point() {
        for (n, days) in [(1, 1), (7, 3), (120, 30), (5000, 2), (1_000_000, 30)] {
            let t = Timeline::new(9, n, days, ANCHOR);
            let lo = ANCHOR - i64::from(days) * DAY - 10;
            for k in 0..200 {
                let at = lo + k * (i64::from(days) * 2 * DAY) / 200 + k % 7;
                let i = t.first_at(at);
                assert!(i == 0 || t.start(i - 1) < at, "{n} {days} {at}");
                assert!(t.start(i) >= at, "{n} {days} {at}");
            }
        }
        let t = Timeline::new(9, 0, 30, ANCHOR);
        assert_eq!(t.first_at(ANCHOR), 0);
    }
}
