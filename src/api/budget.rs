//! The client-wide request budget: at most N requests in any 60 s window (the API's
//! fair-use limit is shared by all of a tenant's users), at most M in flight, and a pause
//! for everyone when the server says 429. Requests queue; they never fail here.
//!
//! With a fleet ([`FleetPacer`], the shared Redis schedule of `--redis`), the per-minute
//! limit is the fleet's: every request (tokens included) waits for its turn in the
//! shared schedule instead of this window, and a 429 pushes the whole fleet back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const WINDOW: Duration = Duration::from_secs(60);
/// The server counts a request when it arrives, which can be a while after we counted it
/// (a busy machine, a slow connect): keep each request in our window this much longer.
const WINDOW_MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Window {
    /// Current allowance per window; shrinks on 429, creeps back up.
    limit: Option<u32>,
    /// Configured ceiling.
    ceiling: Option<u32>,
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
    last_shrink: Option<Instant>,
}

/// A request schedule shared with other hosts.
pub trait FleetPacer: Send + Sync + std::fmt::Debug {
    /// Wait for this host's next turn to send one request.
    fn wait_turn(&self) -> futures::future::BoxFuture<'_, ()>;
    /// The API said 429: push everyone's schedule back by `retry_after`.
    fn push_back(&self, retry_after: Duration) -> futures::future::BoxFuture<'static, ()>;
}

/// Shared by every request of one client.
#[derive(Debug)]
pub struct RequestBudget {
    window: Mutex<Window>,
    in_flight: Arc<Semaphore>,
    fleet: std::sync::OnceLock<Arc<dyn FleetPacer>>,
}

/// Held while a request is in flight.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

impl RequestBudget {
    pub fn new(max_rpm: Option<u32>, max_concurrency: usize) -> Self {
        let max_rpm = max_rpm.map(|r| r.max(1));
        RequestBudget {
            window: Mutex::new(Window {
                limit: max_rpm,
                ceiling: max_rpm,
                sent: VecDeque::new(),
                paused_until: None,
                last_shrink: None,
            }),
            in_flight: Arc::new(Semaphore::new(max_concurrency.max(1))),
            fleet: std::sync::OnceLock::new(),
        }
    }

    /// Take turns with a fleet from now on (once; later calls are ignored).
    pub fn join_fleet(&self, fleet: Arc<dyn FleetPacer>) {
        let _ = self.fleet.set(fleet);
    }

    /// Requests sent in the last minute.
    pub fn sent_last_minute(&self) -> usize {
        let now = Instant::now();
        let w = self.window.lock();
        w.sent
            .iter()
            .filter(|t| now.duration_since(**t) < WINDOW)
            .count()
    }

    /// Wait until one more request fits the budget, then take a slot for it.
    pub async fn acquire(&self) -> Permit {
        let slot = Arc::clone(&self.in_flight)
            .acquire_owned()
            .await
            .expect("the request semaphore is never closed");
        if let Some(fleet) = self.fleet.get() {
            fleet.wait_turn().await;
            self.record(Instant::now());
            return Permit { _slot: slot };
        }
        loop {
            let wait = self.try_take(Instant::now());
            match wait {
                None => return Permit { _slot: slot },
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    /// Note a send at `now` (for the count of the last minute).
    fn record(&self, now: Instant) {
        let mut w = self.window.lock();
        while w
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW + WINDOW_MARGIN)
        {
            w.sent.pop_front();
        }
        w.sent.push_back(now);
    }

    /// Record a send at `now` if allowed, else say how long to wait.
    fn try_take(&self, now: Instant) -> Option<Duration> {
        let mut w = self.window.lock();
        if let Some(until) = w.paused_until {
            if now < until {
                return Some(until - now);
            }
            w.paused_until = None;
        }
        while w
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW + WINDOW_MARGIN)
        {
            w.sent.pop_front();
        }
        // Recover one step of allowance per quiet window after a shrink.
        if let (Some(limit), Some(ceiling), Some(shrunk)) = (w.limit, w.ceiling, w.last_shrink) {
            if limit < ceiling && now.duration_since(shrunk) >= WINDOW {
                w.limit = Some((limit + limit / 10 + 1).min(ceiling));
                w.last_shrink = Some(now);
            }
        }
        match w.limit {
            Some(limit) if w.sent.len() >= limit as usize => {
                let oldest = w.sent.front().copied().unwrap_or(now);
                Some((oldest + WINDOW + WINDOW_MARGIN).saturating_duration_since(now))
            }
            _ => {
                w.sent.push_back(now);
                None
            }
        }
    }

    /// The server said 429: everyone waits `retry_after`, and a limited budget shrinks.
    pub fn on_rate_limited(&self, retry_after: Duration) {
        if let Some(fleet) = self.fleet.get() {
            tokio::spawn(fleet.push_back(retry_after));
        }
        let now = Instant::now();
        let mut w = self.window.lock();
        let until = now + retry_after;
        if w.paused_until.is_none_or(|p| p < until) {
            w.paused_until = Some(until);
        }
        if let Some(limit) = w.limit {
            w.limit = Some((limit * 9 / 10).max(1));
            w.last_shrink = Some(now);
        }
    }

    /// The current per-minute allowance (None = unlimited).
    #[cfg(test)]
    pub fn current_limit(&self) -> Option<u32> {
        self.window.lock().limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_caps_requests() {
        let b = RequestBudget::new(Some(3), 4);
        let t0 = Instant::now();
        assert!(b.try_take(t0).is_none());
        assert!(b.try_take(t0).is_none());
        assert!(b.try_take(t0).is_none());
        let wait = b.try_take(t0).expect("fourth must wait");
        assert!(wait > Duration::from_secs(61) && wait <= Duration::from_secs(62));
        assert!(b.try_take(t0 + Duration::from_secs(62)).is_none());
    }

    #[test]
    fn rate_limited_pauses_and_shrinks() {
        let b = RequestBudget::new(Some(100), 4);
        b.on_rate_limited(Duration::from_secs(2));
        assert_eq!(b.current_limit(), Some(90));
        assert!(b.try_take(Instant::now()).is_some());
    }

    #[test]
    fn unlimited_never_waits() {
        let b = RequestBudget::new(None, 4);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert!(b.try_take(t0).is_none());
        }
    }
}
