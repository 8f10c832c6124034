//! The fleet's one request budget: a schedule of slots whose state lives in Redis and
//! is only ever read and written by scripts that take `now` from the server's `TIME`.
//!
//! It is GCRA's virtual scheduling (each caller reserves a slot and learns how long to
//! wait) with a whole window as its burst, the shape of the API's own limit ("about
//! 160 requests per minute") and of the single-host limiter in `api::budget`: slot `k`
//! is `max(now, slot[k - N] + window)`, with `N` the fleet's `--max-rpm` and `window`
//! a minute plus a margin for requests that reach the server late. So a fleet may send
//! a minute's worth at once, like one host, and no window of 60 s ever holds more than
//! `N` slots (a plain GCRA cannot do both: a burst of `B` admits `B + N - 1` in a
//! minute). The last `N` slots are a Redis list (`budget:log`); slots are handed out
//! in arrival order at the server, so hosts are served first come, first served.
//!
//! A 429 (`push_back`) sets `until`: no slot is earlier, and for one window after it
//! the schedule is also paced at one slot per `window / N` (`tat`), so the fleet does
//! not burst into a limit that just told it to stop.
//!
//! Presence: each host adds itself to a sorted set scored by the server's clock every
//! few seconds; members older than a minute are dropped, so [`Fleet::hosts_seen`] is
//! the number of hosts alive lately, from which a host that lost Redis computes its
//! share of the budget ([`fallback_rpm`]).

use std::collections::VecDeque;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::Script;

use super::{bump, Fleet, FleetError, Lane, PRESENCE_MAX_AGE};

/// A control value further ahead than this is corrupt (no legitimate queue or
/// `Retry-After` is an hour long).
const HORIZON_US: u64 = 3_600_000_000;

/// The fleet's window: a minute, plus the margin the single-host limiter keeps for
/// requests the server counts a while after we did.
pub const FLEET_WINDOW: Duration = Duration::from_secs(62);

/// Reads `now` (µs, server clock) and the budget hash and log, resetting whatever is
/// not what these scripts write. KEYS: the hash, the log; ARGV[1] horizon µs, ARGV[2]
/// window µs. Leaves `now`, `horizon`, `window`, `tat`, `untl`, `reset` in scope.
const PRELUDE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local horizon = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local reset = 0
local kind = redis.call('TYPE', KEYS[1])['ok']
local tat = now
local untl = 0
if kind ~= 'hash' and kind ~= 'none' then
  reset = 1
elseif kind == 'hash' then
  local raw = redis.call('HMGET', KEYS[1], 'tat', 'until')
  for i = 1, 2 do
    local v = raw[i]
    if v then
      local n = tonumber(v)
      if n == nil or n ~= n or n < 0 or n > now + horizon then
        reset = 1
      elseif i == 1 then
        tat = n
      else
        untl = n
      end
    end
  end
end
if reset == 1 then
  redis.call('DEL', KEYS[1])
  tat = now
  untl = 0
end
local lkind = redis.call('TYPE', KEYS[2])['ok']
if lkind ~= 'list' and lkind ~= 'none' then
  redis.call('DEL', KEYS[2])
  reset = 1
end
if tat < now then tat = now end
local function store()
  if untl + window > now then
    redis.call('HSET', KEYS[1], 'tat', string.format('%d', tat))
    redis.call('HSET', KEYS[1], 'until', string.format('%d', untl))
    redis.call('PEXPIRE', KEYS[1], math.floor((untl + window - now) / 1000) + 60000)
  else
    redis.call('DEL', KEYS[1])
  end
end
"#;

/// ARGV[3] period µs (`window / N`), ARGV[4] `N`. Returns {wait µs, now µs, reset}.
const RESERVE: &str = r#"
local period = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local slot = now
if redis.call('LLEN', KEYS[2]) >= n then
  local v = tonumber(redis.call('LINDEX', KEYS[2], -n))
  if v == nil or v ~= v or v < 0 or v > now + horizon then
    redis.call('DEL', KEYS[2])
    reset = 1
  elseif v + window > slot then
    slot = v + window
  end
end
if untl > 0 and now < untl + window then
  if tat < untl then tat = untl end
  if tat > slot then slot = tat end
  tat = slot + period
end
redis.call('RPUSH', KEYS[2], string.format('%d', slot))
redis.call('LTRIM', KEYS[2], -n, -1)
redis.call('PEXPIRE', KEYS[2], math.floor((slot - now + window) / 1000) + 1000)
store()
return {slot - now, now, reset}
"#;

/// ARGV[3] retry-after µs. Returns {until µs, now µs, reset}.
const PUSH_BACK: &str = r#"
local target = now + math.min(tonumber(ARGV[3]), horizon)
if untl < target then untl = target end
if tat < target then tat = target end
store()
return {untl, now, reset}
"#;

/// KEYS[1]: the hosts set; ARGV: host id, max age ms. Returns the hosts seen.
const PRESENCE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local age = tonumber(ARGV[2])
local kind = redis.call('TYPE', KEYS[1])['ok']
local reset = 0
if kind ~= 'zset' and kind ~= 'none' then
  redis.call('DEL', KEYS[1])
  reset = 1
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - age))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now + age), '+inf')
redis.call('PEXPIRE', KEYS[1], age * 2)
return {redis.call('ZCARD', KEYS[1]), reset}
"#;

struct Scripts {
    reserve: Script,
    push_back: Script,
    presence: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    reserve: Script::new(&format!("{PRELUDE}{RESERVE}")),
    push_back: Script::new(&format!("{PRELUDE}{PUSH_BACK}")),
    presence: Script::new(PRESENCE),
});

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One reservation, with the server's clock (for tests of the schedule).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reservation {
    pub wait: Duration,
    /// The server's clock when the slot was reserved, µs since the epoch.
    #[cfg_attr(not(test), allow(dead_code))]
    pub now_us: u64,
}

impl Fleet {
    /// Reserve a slot for one request under the fleet's budget of `n` requests in any
    /// `window` (in production [`FLEET_WINDOW`]), and say how long to wait before
    /// sending it. An `Err` means Redis could not be asked: use the local limiter.
    pub async fn reserve(&self, n: u32, window: Duration) -> Result<Duration, FleetError> {
        self.reserve_slot(n, window).await.map(|r| r.wait)
    }

    pub(super) async fn reserve_slot(
        &self,
        n: u32,
        window: Duration,
    ) -> Result<Reservation, FleetError> {
        let keys = (
            self.inner.keys.budget.clone(),
            self.inner.keys.budget_log.clone(),
        );
        let n = n.max(1);
        let window_us = micros(window).max(1);
        let period_us = (window_us / u64::from(n)).max(1);
        let got = self
            .run(Lane::Control, move |mut c| {
                let (hash, log) = keys.clone();
                async move {
                    SCRIPTS
                        .reserve
                        .key(hash)
                        .key(log)
                        .arg(HORIZON_US)
                        .arg(window_us)
                        .arg(period_us)
                        .arg(n)
                        .invoke_async::<(u64, u64, u8)>(&mut c)
                        .await
                }
            })
            .await;
        let c = self.counters();
        match got {
            Ok((wait, now_us, reset)) => {
                bump(&c.budget_reserved);
                if reset != 0 {
                    bump(&c.resets);
                    tracing::warn!("shared budget: the control key was corrupt and was reset");
                }
                if wait > 0 {
                    bump(&c.budget_waits);
                }
                Ok(Reservation {
                    wait: Duration::from_micros(wait),
                    now_us,
                })
            }
            Err(e) => {
                bump(&c.budget_fallbacks);
                Err(e)
            }
        }
    }

    /// The API said 429 with `retry_after`: no host's next reservation is before then,
    /// and the window after it is paced. (Slots reserved before this call are not
    /// taken back.)
    pub async fn push_back(&self, retry_after: Duration) {
        let keys = (
            self.inner.keys.budget.clone(),
            self.inner.keys.budget_log.clone(),
        );
        let got = self
            .run(Lane::Control, move |mut c| {
                let (hash, log) = keys.clone();
                async move {
                    SCRIPTS
                        .push_back
                        .key(hash)
                        .key(log)
                        .arg(HORIZON_US)
                        .arg(micros(FLEET_WINDOW))
                        .arg(micros(retry_after))
                        .invoke_async::<(u64, u64, u8)>(&mut c)
                        .await
                }
            })
            .await;
        match got {
            Ok((_, _, reset)) => {
                bump(&self.counters().push_backs);
                if reset != 0 {
                    bump(&self.counters().resets);
                }
            }
            Err(e) => tracing::debug!(error = %e, "shared budget: push-back not shared"),
        }
    }

    /// Say this host is alive; the number of hosts seen lately.
    pub(super) async fn register(&self) -> Result<u32, FleetError> {
        let key = self.inner.keys.hosts.clone();
        let host = self.inner.host.clone();
        let age = u64::try_from(PRESENCE_MAX_AGE.as_millis()).unwrap_or(u64::MAX);
        let (n, reset) = self
            .run(Lane::Control, move |mut c| {
                let (key, host) = (key.clone(), host.clone());
                async move {
                    SCRIPTS
                        .presence
                        .key(key)
                        .arg(host)
                        .arg(age)
                        .invoke_async::<(u32, u8)>(&mut c)
                        .await
                }
            })
            .await?;
        if reset != 0 {
            bump(&self.counters().resets);
        }
        self.inner
            .hosts
            .store(n, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    /// Hosts of the fleet seen in the last minute (this one included): asked now, or
    /// the last answer if Redis cannot be asked; `None` if it never answered.
    #[cfg(test)]
    pub async fn hosts_seen(&self) -> Option<u32> {
        match self.register().await {
            Ok(n) => Some(n),
            Err(_) => self.stats().hosts,
        }
    }
}

/// The local rate when Redis is out of reach: `max_rpm` shared by the hosts last seen
/// (at least 1 a minute). Never having seen Redis, a host assumes it is alone.
pub fn fallback_rpm(max_rpm: u32, hosts_seen: Option<u32>) -> u32 {
    (max_rpm / hosts_seen.unwrap_or(1).max(1)).max(1)
}

/// The same schedule in-process: the fallback limiter while Redis is out of reach.
#[derive(Debug, Default)]
struct LocalWindow {
    /// The last `n` slots, oldest first.
    slots: VecDeque<Instant>,
    tat: Option<Instant>,
    until: Option<Instant>,
}

impl LocalWindow {
    fn reserve(&mut self, now: Instant, n: u32, window: Duration) -> Duration {
        let n = n.max(1) as usize;
        while self.slots.len() > n {
            self.slots.pop_front();
        }
        let mut slot = now;
        if self.slots.len() == n {
            if let Some(oldest) = self.slots.front() {
                slot = slot.max(*oldest + window);
            }
        }
        if let Some(until) = self.until.filter(|u| now < *u + window) {
            let tat = self.tat.map_or(until, |t| t.max(until));
            slot = slot.max(tat);
            self.tat = Some(slot + window / n as u32);
        }
        self.slots.push_back(slot);
        if self.slots.len() > n {
            self.slots.pop_front();
        }
        slot.saturating_duration_since(now)
    }
}

/// Where a turn was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// By the fleet's shared schedule.
    Fleet,
    /// By the local limiter at the fallback rate (Redis out of reach).
    Local,
}

/// The fleet's budget for one host: the shared schedule while Redis answers, else a
/// local limiter at `fallback_rpm` (by default `rpm` over the hosts last seen).
#[derive(Debug)]
pub struct FleetBudget {
    shared: Fleet,
    rpm: u32,
    window: Duration,
    fallback: Option<u32>,
    local: Mutex<LocalWindow>,
}

impl FleetBudget {
    /// `rpm` for the whole fleet; `fallback_rpm` overrides the local rate.
    pub fn new(shared: Fleet, rpm: u32, fallback_rpm: Option<u32>) -> Self {
        Self::with_window(shared, rpm, FLEET_WINDOW, fallback_rpm)
    }

    /// `n` requests in any `window` (tests use short windows).
    pub(super) fn with_window(
        shared: Fleet,
        n: u32,
        window: Duration,
        fallback_rpm: Option<u32>,
    ) -> Self {
        FleetBudget {
            shared,
            rpm: n.max(1),
            window,
            fallback: fallback_rpm.map(|r| r.max(1)),
            local: Mutex::new(LocalWindow::default()),
        }
    }

    /// The local rate in force when Redis cannot be asked.
    pub fn fallback_rpm(&self) -> u32 {
        self.fallback
            .unwrap_or_else(|| fallback_rpm(self.rpm, self.shared.stats().hosts))
    }

    /// Wait for this host's next turn to send one request.
    pub async fn wait_turn(&self) -> Turn {
        let (wait, turn) = match self.shared.reserve(self.rpm, self.window).await {
            Ok(wait) => (wait, Turn::Fleet),
            Err(_) => {
                let n = self.fallback_rpm();
                let wait = self.local.lock().reserve(Instant::now(), n, self.window);
                (wait, Turn::Local)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        turn
    }
}

/// The client's budget takes turns in the fleet's schedule.
impl crate::api::FleetPacer for FleetBudget {
    fn wait_turn(&self) -> futures::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            self.wait_turn().await;
        })
    }

    fn push_back(&self, retry_after: Duration) -> futures::future::BoxFuture<'static, ()> {
        {
            let mut l = self.local.lock();
            let until = Instant::now() + retry_after;
            l.until = Some(l.until.map_or(until, |u| u.max(until)));
        }
        let shared = self.shared.clone();
        Box::pin(async move { shared.push_back(retry_after).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_rate_is_a_share_of_the_budget() {
        assert_eq!(fallback_rpm(150, Some(3)), 50);
        assert_eq!(fallback_rpm(150, None), 150);
        assert_eq!(fallback_rpm(150, Some(0)), 150);
        assert_eq!(fallback_rpm(2, Some(5)), 1, "at least one a minute");
    }

    #[test]
    fn the_local_limiter_sends_a_window_at_once_then_waits_and_paces_after_a_pause() {
        let mut l = LocalWindow::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let w = s(60);
        let waits: Vec<Duration> = (0..5).map(|_| l.reserve(t0, 2, w)).collect();
        assert_eq!(waits, [s(0), s(0), s(60), s(60), s(120)]);
        // Long after: the window is free again.
        let t1 = t0 + s(1000);
        assert_eq!(l.reserve(t1, 2, w), s(0));
        // A pause: nothing before it ends, then one slot per window / n.
        l.until = Some(t1 + s(10));
        assert_eq!(l.reserve(t1, 2, w), s(10));
        assert_eq!(l.reserve(t1, 2, w), s(60), "the window still holds");
        let t2 = t1 + s(500);
        l.until = Some(t2 + s(5));
        assert_eq!(l.reserve(t2, 2, w), s(5));
        assert_eq!(
            l.reserve(t2, 2, w),
            s(35),
            "paced after a pause, not a burst"
        );
    }
}
