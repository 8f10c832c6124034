//! The fleet's one request budget: a GCRA whose state (the theoretical arrival time,
//! `tat`, and a pause set by 429s, `until`) lives in one Redis hash and is only ever
//! read and written by scripts that take `now` from the server's `TIME`.
//!
//! A reservation at `now` with emission interval `T = 60 s / rpm` and burst `B`:
//! `tat = max(tat, now)` (and, during a pause, at least `until + (B-1)·T`, so the first
//! request after a pause goes at `until` and the rest are paced, not a burst); the slot
//! is `tat + T - B·T`; the key stores `tat + T`. The caller waits `slot - now`. Slots are
//! handed out in arrival order at the server, so hosts are served first come, first
//! served, and in any window of `t` at most `B + t/T` slots fall.
//!
//! Presence: each host adds itself to a sorted set scored by the server's clock every
//! few seconds; members older than a minute are dropped, so [`Shared::hosts_seen`] is
//! the number of hosts alive lately, from which a host that lost Redis computes its
//! share of the budget ([`fallback_rpm`]).

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::Script;

use super::{bump, Lane, Shared, SharedError, PRESENCE_MAX_AGE};

/// A control value further ahead than this is corrupt (no legitimate queue or
/// `Retry-After` is an hour long).
const HORIZON_US: u64 = 3_600_000_000;

/// Reads `now` (µs, server clock) and the budget hash, resetting it if it is not what
/// these scripts write. Leaves `now`, `tat`, `untl`, `reset` in scope.
const PRELUDE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local horizon = tonumber(ARGV[1])
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
if tat < now then tat = now end
local function store(keep)
  redis.call('HSET', KEYS[1], 'tat', string.format('%d', tat))
  if untl > now then
    redis.call('HSET', KEYS[1], 'until', string.format('%d', untl))
    if untl - now > keep then keep = untl - now end
  else
    redis.call('HDEL', KEYS[1], 'until')
  end
  redis.call('PEXPIRE', KEYS[1], math.floor(keep / 1000) + 60000)
end
"#;

/// ARGV: horizon µs, period µs, burst. Returns {wait µs, now µs, reset}.
const RESERVE: &str = r#"
local period = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
if untl > now then
  local paced = untl + (burst - 1) * period
  if tat < paced then tat = paced end
end
local slot = tat + period - burst * period
local wait = slot - now
if wait < 0 then wait = 0 end
tat = tat + period
store(tat - now)
return {wait, now, reset}
"#;

/// ARGV: horizon µs, retry-after µs. Returns {until µs, now µs, reset}.
const PUSH_BACK: &str = r#"
local target = now + math.min(tonumber(ARGV[2]), horizon)
if untl < target then untl = target end
if tat < target then tat = target end
store(tat - now)
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

/// The emission interval of `rpm` requests a minute, in µs (at least 1).
fn period_us(rpm: u32) -> u64 {
    (60_000_000 / u64::from(rpm.max(1))).max(1)
}

/// One reservation, with the server's clock (for tests of the schedule).
#[derive(Debug, Clone, Copy)]
pub(super) struct Reservation {
    pub wait: Duration,
    /// The server's clock when the slot was reserved, µs since the epoch.
    #[cfg_attr(not(test), allow(dead_code))]
    pub now_us: u64,
}

impl Shared {
    /// Reserve a slot for one request under the fleet's budget of `rpm` requests a
    /// minute with bursts of `burst`, and say how long to wait before sending it. An
    /// `Err` means Redis could not be asked: use the local limiter.
    pub async fn reserve(&self, rpm: u32, burst: u32) -> Result<Duration, SharedError> {
        self.reserve_slot(rpm, burst).await.map(|r| r.wait)
    }

    pub(super) async fn reserve_slot(
        &self,
        rpm: u32,
        burst: u32,
    ) -> Result<Reservation, SharedError> {
        let key = self.inner.keys.budget.clone();
        let got = self
            .run(Lane::Control, move |mut c| {
                let key = key.clone();
                async move {
                    SCRIPTS
                        .reserve
                        .key(key)
                        .arg(HORIZON_US)
                        .arg(period_us(rpm))
                        .arg(burst.max(1))
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

    /// The API said 429 with `retry_after`: no host's next reservation is before then.
    /// (Slots reserved before this call are not taken back.)
    pub async fn push_back(&self, retry_after: Duration) {
        let key = self.inner.keys.budget.clone();
        let got = self
            .run(Lane::Control, move |mut c| {
                let key = key.clone();
                async move {
                    SCRIPTS
                        .push_back
                        .key(key)
                        .arg(HORIZON_US)
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
    pub(super) async fn register(&self) -> Result<u32, SharedError> {
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

/// An in-process GCRA: the fallback limiter.
#[derive(Debug)]
struct LocalGcra {
    tat: Option<Instant>,
    until: Option<Instant>,
}

impl LocalGcra {
    fn reserve(&mut self, now: Instant, rpm: u32, burst: u32) -> Duration {
        let period = Duration::from_micros(period_us(rpm));
        let burst = burst.max(1);
        let mut tat = self.tat.map_or(now, |t| t.max(now));
        if let Some(u) = self.until.filter(|u| *u > now) {
            tat = tat.max(u + period * (burst - 1));
        }
        let slot = (tat + period).checked_sub(period * burst).unwrap_or(now);
        self.tat = Some(tat + period);
        slot.saturating_duration_since(now)
    }
}

/// Where a turn was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// By the fleet's shared schedule.
    Shared,
    /// By the local limiter at the fallback rate (Redis out of reach).
    Local,
}

/// The fleet's budget for one host: the shared schedule while Redis answers, else a
/// local limiter at `fallback_rpm` (by default `rpm` over the hosts last seen).
#[derive(Debug)]
pub struct SharedBudget {
    shared: Shared,
    rpm: u32,
    burst: u32,
    fallback: Option<u32>,
    local: Mutex<LocalGcra>,
}

impl SharedBudget {
    /// `rpm` and `burst` for the whole fleet; `fallback_rpm` overrides the local rate.
    pub fn new(shared: Shared, rpm: u32, burst: u32, fallback_rpm: Option<u32>) -> Self {
        SharedBudget {
            shared,
            rpm: rpm.max(1),
            burst: burst.max(1),
            fallback: fallback_rpm.map(|r| r.max(1)),
            local: Mutex::new(LocalGcra {
                tat: None,
                until: None,
            }),
        }
    }

    /// The local rate in force when Redis cannot be asked.
    pub fn fallback_rpm(&self) -> u32 {
        self.fallback
            .unwrap_or_else(|| fallback_rpm(self.rpm, self.shared.stats().hosts))
    }

    /// Wait for this host's next turn to send one request.
    pub async fn wait_turn(&self) -> Turn {
        let (wait, turn) = match self.shared.reserve(self.rpm, self.burst).await {
            Ok(wait) => (wait, Turn::Shared),
            Err(_) => {
                let rpm = self.fallback_rpm();
                // The local burst is this host's share of the fleet's.
                let burst = (u64::from(self.burst) * u64::from(rpm) / u64::from(self.rpm))
                    .clamp(1, u64::from(self.burst)) as u32;
                let wait = self.local.lock().reserve(Instant::now(), rpm, burst);
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
impl crate::api::FleetPacer for SharedBudget {
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
    fn the_local_limiter_paces_after_its_burst_and_honours_a_pause() {
        let mut l = LocalGcra {
            tat: None,
            until: None,
        };
        let t0 = Instant::now();
        let waits: Vec<Duration> = (0..5).map(|_| l.reserve(t0, 60, 2)).collect();
        let s = Duration::from_secs;
        assert_eq!(waits, [s(0), s(0), s(1), s(2), s(3)]);
        let t1 = t0 + s(100);
        l.until = Some(t1 + s(10));
        assert_eq!(l.reserve(t1, 60, 2), s(10));
        assert_eq!(
            l.reserve(t1, 60, 2),
            s(11),
            "paced after a pause, not a burst"
        );
    }
}
