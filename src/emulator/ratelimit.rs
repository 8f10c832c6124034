//! `--rate-limit RPM`: a sliding 60-second window over `/interaction-content` requests.
//! A refused request is not counted; `Retry-After` says when the oldest admitted request
//! leaves the window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The window length.
const WINDOW: Duration = Duration::from_secs(60);

/// Admission times of the requests in the current window.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    admitted: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// Admits a request at `now` if fewer than `rpm` were admitted in the last 60 s
    /// (`rpm` 0 = unlimited); otherwise returns the whole seconds to wait (at least 1).
    pub fn admit(&self, rpm: u32, now: Instant) -> Result<(), u64> {
        if rpm == 0 {
            return Ok(());
        }
        let mut q = self.admitted.lock();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() < rpm as usize {
            q.push_back(now);
            return Ok(());
        }
        let oldest = q.front().copied().unwrap_or(now);
        let wait = WINDOW.saturating_sub(now.duration_since(oldest));
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Err(secs.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        assert!(rl.admit(2, t0).is_ok());
        assert!(rl.admit(2, t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(rl.admit(2, t0 + Duration::from_secs(20)), Err(40));
        assert_eq!(rl.admit(2, t0 + Duration::from_millis(59_500)), Err(1));
        assert!(rl.admit(2, t0 + Duration::from_secs(60)).is_ok());
        assert!(rl.admit(0, t0).is_ok());
    }
}
