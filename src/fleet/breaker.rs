//! The circuit breaker in front of Redis: after `threshold` consecutive failures
//! (connection errors, timeouts) it opens for `cooldown`, during which no operation
//! touches Redis; then it is half-open: operations go through again, the first
//! success closes it and the first failure opens it for another cool-down.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Debug)]
struct State {
    /// Consecutive failures since the last success.
    failures: u32,
    /// Open (skip Redis) until then; half-open once it has passed.
    open_until: Option<Instant>,
    /// Times the breaker opened.
    trips: u64,
}

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    Closed,
    /// Cooling down: operations are skipped.
    Open,
    /// Cooled down: operations go through, and the next outcome decides.
    HalfOpen,
}

#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State {
                failures: 0,
                open_until: None,
                trips: 0,
            }),
        }
    }

    pub(super) fn position(&self, now: Instant) -> Position {
        match self.state.lock().open_until {
            None => Position::Closed,
            Some(until) if now < until => Position::Open,
            Some(_) => Position::HalfOpen,
        }
    }

    /// May an operation touch Redis now?
    pub(super) fn allows(&self, now: Instant) -> bool {
        self.position(now) != Position::Open
    }

    pub(super) fn success(&self) {
        let mut s = self.state.lock();
        s.failures = 0;
        s.open_until = None;
    }

    /// Record a failure at `now`; true if this one opened the breaker.
    pub(super) fn failure(&self, now: Instant) -> bool {
        let mut s = self.state.lock();
        s.failures = s.failures.saturating_add(1);
        let half_open = s.open_until.is_some_and(|u| now >= u);
        let closed = s.open_until.is_none();
        if half_open || (closed && s.failures >= self.threshold) {
            s.open_until = Some(now + self.cooldown);
            s.trips += 1;
            return true;
        }
        false
    }

    pub(super) fn trips(&self) -> u64 {
        self.state.lock().trips
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_cools_down_and_closes_on_success() {
        let b = Breaker::new(3, Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(!b.failure(t0));
        assert!(!b.failure(t0));
        assert_eq!(b.position(t0), Position::Closed);
        assert!(b.failure(t0), "the third failure opens it");
        assert!(!b.allows(t0 + Duration::from_secs(4)));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.position(later), Position::HalfOpen);
        assert!(b.allows(later));
        assert!(b.failure(later), "a failed probe opens it again");
        assert_eq!(b.position(later + Duration::from_secs(1)), Position::Open);
        assert_eq!(b.trips(), 2);
        b.success();
        assert_eq!(b.position(later), Position::Closed);
        assert!(!b.failure(later), "the count starts again after a success");
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(!b.failure(t0));
        b.success();
        assert!(!b.failure(t0));
        assert_eq!(b.position(t0), Position::Closed);
    }
}
