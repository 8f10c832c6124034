//! Cross-host single-flight: [`Lease`]s (`SET NX PX` with a random token, released by
//! compare-and-delete), and [`FleetSource`], which fetches each block missing from
//! Redis on the one host that wins its lease.
//!
//! [`FleetSource::fetch`], for each block of a run:
//! 1. look in Redis; an intact block of the version is an answer;
//! 2. for the missing ones, try their leases
//!    (`vccfs:<tenant>:lease:{<key>}:<block size>:<index>`) all in one script, so the
//!    first host to ask for a run gets all of it; having won, look once more (the
//!    holder before us may just have stored it);
//! 3. fetch the blocks we hold leases for from the next source as runs, answer the
//!    reader, and in the background store them, then release the leases;
//! 4. wait for the blocks another host holds: poll their values (every 25 ms at first,
//!    backing off to every 250 ms), and try their leases again each time, so a holder
//!    that died (its lease expired) or gave up (released without storing) is taken
//!    over; after [`MAX_LEASE_WAIT`] fetch whatever is still missing without a lease.
//!
//! A holder renews its leases (every third of `lease_ttl`, compare-and-expire) for as
//! long as its fetch runs, the wait for its turn in the fleet's budget included — that
//! wait can be a whole budget window — so a live holder keeps its leases however long
//! its turn takes, and a dead one loses them within `lease_ttl`.
//!
//! Redis failing at any step makes the blocks concerned plain fetches from the next
//! source; with Redis unhealthy the whole run is one. Only the next source's errors
//! reach the caller.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::{join_all, try_join, BoxFuture};
use futures::FutureExt;
use rand::Rng;
use redis::Script;

use super::{bump, Fleet, FleetError, FleetStore, Lane};
use crate::source::{BlockRequest, BlockSource, Fetched, SourceError};

const RELEASE: &str = r#"
if redis.call('TYPE', KEYS[1])['ok'] == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

static RELEASE_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(RELEASE));

/// Extends every lease in KEYS still held with ARGV[1] to ARGV[2] ms. Returns how many.
const RENEW: &str = r#"
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('TYPE', k)['ok'] == 'string' and redis.call('GET', k) == ARGV[1] then
    redis.call('PEXPIRE', k, ARGV[2])
    n = n + 1
  end
end
return n
"#;

static RENEW_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(RENEW));

/// A lease key expiring further ahead than this was not written by a holder.
const LEASE_HORIZON_MS: u64 = 3_600_000;

/// The longest a reader waits for blocks whose leases other hosts hold (and renew)
/// before fetching them itself: a holder's fetch is bounded by its own timeouts, so
/// this only guards against a holder that is alive but stuck.
pub const MAX_LEASE_WAIT: Duration = Duration::from_secs(600);

/// Exclusive right, across hosts, to do one thing (fetch one block) until `ttl` passes
/// or it is released. Dropped unreleased, it is released in the background.
#[derive(Debug)]
pub struct Lease {
    shared: Fleet,
    key: String,
    token: String,
    held: bool,
}

/// Takes every lease in KEYS that is free, at once. ARGV: token, ttl ms. Returns one
/// flag per key: 1 if taken (or already ours: the script may run twice, see
/// `Fleet::run_sized`), 2 if taken over from a key that no holder can have written
/// (not a token, or no expiry, or one past ARGV[3] ms, an hour: a lease nobody renews
/// must never be waited for), 0 if another host holds it.
const TAKE: &str = r#"
local won = {}
local horizon = tonumber(ARGV[3])
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, ARGV[1], 'NX', 'PX', ARGV[2]) then
    won[i] = 1
  else
    local v = nil
    if redis.call('TYPE', k)['ok'] == 'string' then v = redis.call('GET', k) end
    local left = redis.call('PTTL', k)
    if v == ARGV[1] then
      won[i] = 1
    elseif v == nil or #v ~= 32 or not string.match(v, '^%x+$') or left < 0 or left > horizon then
      redis.call('DEL', k)
      redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
      won[i] = 2
    else
      won[i] = 0
    end
  end
end
return won
"#;

static TAKE_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(TAKE));

impl Fleet {
    /// Take the lease `name` for `ttl` if nobody holds it: `Ok(None)` if somebody does.
    #[cfg(test)]
    pub async fn lease(&self, name: &str, ttl: Duration) -> Result<Option<Lease>, FleetError> {
        let mut got = self.leases(&[name.to_string()], ttl).await?;
        Ok(got.pop().flatten())
    }

    /// Take, in one step, every lease of `names` that is free: the first host to ask
    /// for a run of blocks gets all of it, not every other block.
    pub(super) async fn leases(
        &self,
        names: &[String],
        ttl: Duration,
    ) -> Result<Vec<Option<Lease>>, FleetError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| self.inner.keys.lease(n)).collect();
        let token = format!("{:032x}", rand::rng().random::<u128>());
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let (k, t) = (keys.clone(), token.clone());
        let won = self
            .run(Lane::Control, move |mut c| {
                let (k, t) = (k.clone(), t.clone());
                async move {
                    TAKE_SCRIPT
                        .key(k)
                        .arg(t)
                        .arg(ms)
                        .arg(LEASE_HORIZON_MS)
                        .invoke_async::<Vec<u8>>(&mut c)
                        .await
                }
            })
            .await?;
        if won.len() != keys.len() {
            return Err(FleetError::Refused("lease script: wrong answer".into()));
        }
        let reset = won.iter().filter(|&&w| w == 2).count() as u64;
        if reset > 0 {
            self.counters()
                .resets
                .fetch_add(reset, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(reset, "shared tier: lease keys no holder wrote were reset");
        }
        Ok(keys
            .into_iter()
            .zip(won)
            .map(|(key, w)| {
                (w >= 1).then(|| Lease {
                    shared: self.clone(),
                    key,
                    token: token.clone(),
                    held: true,
                })
            })
            .collect())
    }
}

/// Renews `leases` every third of `ttl` until dropped (the task is aborted with it).
struct KeepAlive {
    _renewing: Option<tokio_util::task::AbortOnDropHandle<()>>,
}

impl KeepAlive {
    fn start(leases: &[Lease], ttl: Duration) -> KeepAlive {
        let Some(first) = leases.first() else {
            return KeepAlive { _renewing: None };
        };
        let mut by_token: Vec<(String, Vec<String>)> = Vec::new();
        for l in leases {
            match by_token.iter_mut().find(|(t, _)| *t == l.token) {
                Some((_, keys)) => keys.push(l.key.clone()),
                None => by_token.push((l.token.clone(), vec![l.key.clone()])),
            }
        }
        let shared = first.shared.clone();
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let every = (ttl / 3).max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for (token, keys) in &by_token {
                    let (k, t) = (keys.clone(), token.clone());
                    let renewed = shared
                        .run(Lane::Control, move |mut c| {
                            let (k, t) = (k.clone(), t.clone());
                            async move {
                                RENEW_SCRIPT
                                    .key(k)
                                    .arg(t)
                                    .arg(ms)
                                    .invoke_async::<u32>(&mut c)
                                    .await
                            }
                        })
                        .await;
                    if let Err(e) = renewed {
                        tracing::debug!(error = %e, "shared tier: leases not renewed");
                    }
                }
            }
        });
        KeepAlive {
            _renewing: Some(tokio_util::task::AbortOnDropHandle::new(task)),
        }
    }
}

impl Lease {
    /// Give the lease up (only if it is still ours); true if it was.
    #[cfg(test)]
    pub async fn release(mut self) -> Result<bool, FleetError> {
        self.held = false;
        release(&self.shared, &self.key, &self.token).await
    }
}

async fn release(shared: &Fleet, key: &str, token: &str) -> Result<bool, FleetError> {
    let (k, t) = (key.to_string(), token.to_string());
    shared
        .run(Lane::Control, move |mut c| {
            let (k, t) = (k.clone(), t.clone());
            async move {
                RELEASE_SCRIPT
                    .key(k)
                    .arg(t)
                    .invoke_async::<u32>(&mut c)
                    .await
            }
        })
        .await
        .map(|n| n > 0)
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let shared = self.shared.clone();
            let key = std::mem::take(&mut self.key);
            let token = std::mem::take(&mut self.token);
            rt.spawn(async move {
                let _ = release(&shared, &key, &token).await;
            });
        }
    }
}

/// The shared tier in front of `next`, with cross-host single-flight (see the module
/// essay).
#[derive(Debug, Clone)]
pub struct FleetSource {
    shared: Fleet,
    next: Arc<dyn BlockSource>,
}

impl FleetSource {
    pub fn new(shared: Fleet, next: Arc<dyn BlockSource>) -> FleetSource {
        FleetSource { shared, next }
    }

    #[cfg(test)]
    pub fn shared(&self) -> &Fleet {
        &self.shared
    }
}

impl BlockSource for FleetSource {
    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>> {
        if !self.shared.healthy() {
            bump(&self.shared.counters().bypassed);
            return self.next.fetch(req);
        }
        let run = Run {
            store: FleetStore::new(self.shared.clone(), req.block_size),
            next: Arc::clone(&self.next),
            req,
        };
        async move { run.fetch().await }.boxed()
    }
}

/// What one block of a run is, after its lookup and lease attempt.
enum Claim {
    Have(Bytes),
    /// We hold its lease: fetch it.
    Won(Lease),
    /// Another host holds its lease: wait for it.
    Held,
    /// Redis could not say: fetch it without a lease.
    Free,
}

/// One fetch of a [`FleetSource`].
struct Run {
    store: FleetStore,
    next: Arc<dyn BlockSource>,
    req: BlockRequest,
}

impl Run {
    fn shared(&self) -> &Fleet {
        self.store.shared()
    }

    async fn fetch(self) -> Result<Fetched, SourceError> {
        let req = &self.req;
        let indices: Vec<u64> = (req.first..req.first + req.count).collect();
        let mut blocks: Vec<Option<Bytes>> = vec![None; indices.len()];
        let looks = join_all(indices.iter().map(|&i| self.look(i, true))).await;
        let missing: Vec<u64> = indices
            .iter()
            .zip(looks)
            .filter_map(|(&i, b)| match b {
                Some(b) => {
                    blocks[(i - req.first) as usize] = Some(b);
                    None
                }
                None => Some(i),
            })
            .collect();
        let claims = self.claim(&missing).await;
        let (mut own, mut held) = (Vec::new(), Vec::new());
        for (i, claim) in missing.into_iter().zip(claims) {
            match claim {
                Claim::Have(b) => blocks[(i - req.first) as usize] = Some(b),
                Claim::Won(lease) => {
                    bump(&self.shared().counters().leases_won);
                    own.push((i, Some(lease)));
                }
                Claim::Free => own.push((i, None)),
                Claim::Held => held.push(i),
            }
        }
        // An error of the next source ends the read at once (and lets go of the leases).
        let (fetched, waited) = try_join(self.fetch_and_keep(own), self.wait_for(held)).await?;
        for (i, b) in fetched.into_iter().chain(waited) {
            blocks[(i - req.first) as usize] = Some(b);
        }
        let blocks: Option<Vec<Bytes>> = blocks.into_iter().collect();
        let blocks = blocks.ok_or_else(|| SourceError::Tier {
            tier: "shared",
            detail: "a block went missing".into(),
        })?;
        Ok(Fetched {
            blocks,
            validator: req.version.pinned().cloned(),
        })
    }

    /// Block `index` from Redis, if it is intact and of the version being read.
    async fn look(&self, index: u64, count_miss: bool) -> Option<Bytes> {
        let req = &self.req;
        let (start, end) = req.block_range(index);
        let got = self
            .store
            .lookup(&req.version, index, end - start, count_miss)
            .await;
        let (data, validator) = got.ok().flatten()?;
        let usable = match (&validator, req.version.pinned()) {
            (Some(v), _) => req.version.pin(v),
            (None, pinned) => pinned.is_none(),
        };
        if !usable {
            tracing::debug!(index, "shared tier: block of another version");
            crate::source::BlockStore::discard(&self.store, &req.version, index);
            return None;
        }
        Some(data)
    }

    fn lease_name(&self, index: u64) -> String {
        lease_name(&self.req, index)
    }

    /// Try the leases of `indices` together; look again at those won (the holder
    /// before us may just have stored them).
    async fn claim(&self, indices: &[u64]) -> Vec<Claim> {
        let ttl = self.shared().config().lease_ttl;
        let names: Vec<String> = indices.iter().map(|&i| self.lease_name(i)).collect();
        let Ok(leases) = self.shared().leases(&names, ttl).await else {
            return indices.iter().map(|_| Claim::Free).collect();
        };
        let claims = indices.iter().zip(leases).map(|(&i, lease)| async move {
            match lease {
                Some(lease) => match self.look(i, false).await {
                    Some(b) => Claim::Have(b),
                    None => Claim::Won(lease),
                },
                None => Claim::Held,
            }
        });
        join_all(claims).await
    }

    /// Fetch `blocks` from the next source as runs of consecutive indices, and store
    /// them in the background, releasing their leases once stored.
    async fn fetch_and_keep(
        &self,
        mut blocks: Vec<(u64, Option<Lease>)>,
    ) -> Result<Vec<(u64, Bytes)>, SourceError> {
        blocks.sort_by_key(|(i, _)| *i);
        let mut runs: Vec<(u64, Vec<Lease>, u64)> = Vec::new();
        for (i, lease) in blocks {
            match runs.last_mut() {
                Some((first, leases, count)) if *first + *count == i => {
                    *count += 1;
                    leases.extend(lease);
                }
                _ => runs.push((i, lease.into_iter().collect(), 1)),
            }
        }
        let ttl = self.shared().config().lease_ttl;
        let fetches = runs.into_iter().map(|(first, leases, count)| {
            let fetch = self.next.fetch(self.req.sub(first, count));
            async move {
                let renewing = KeepAlive::start(&leases, ttl);
                let fetched = fetch.await;
                drop(renewing);
                let fetched = fetched?;
                if fetched.blocks.len() as u64 != count {
                    return Err(SourceError::Tier {
                        tier: "shared",
                        detail: "the next source returned fewer blocks than asked".into(),
                    });
                }
                // The leases go once the blocks are in Redis (or could not be put).
                self.store
                    .write_behind(&self.req.version, first, &fetched, move || drop(leases));
                Ok((first, fetched.blocks))
            }
        });
        let mut out = Vec::new();
        for got in join_all(fetches).await {
            let (first, blocks) = got?;
            out.extend((first..).zip(blocks));
        }
        Ok(out)
    }

    /// Blocks `held` by other hosts: their values once stored, or fetched by us if
    /// their holders let go without storing them.
    async fn wait_for(&self, held: Vec<u64>) -> Result<Vec<(u64, Bytes)>, SourceError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.shared().counters();
        c.lease_waits
            .fetch_add(held.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + MAX_LEASE_WAIT;
        let mut waiting = held;
        let mut out = Vec::new();
        let mut pause_ms = 25.0_f64;
        while !waiting.is_empty() {
            let jitter = rand::rng().random_range(1.0..=1.5);
            tokio::time::sleep(Duration::from_secs_f64(pause_ms * jitter / 1000.0)).await;
            pause_ms = (pause_ms * 1.5).min(250.0);
            let looks = join_all(waiting.iter().map(|&i| self.look(i, false))).await;
            let mut still = Vec::new();
            for (i, b) in waiting.into_iter().zip(looks) {
                match b {
                    Some(b) => out.push((i, b)),
                    None => still.push(i),
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let rest = still.into_iter().map(|i| (i, None)).collect();
                out.extend(self.fetch_and_keep(rest).await?);
                break;
            }
            let claims = self.claim(&still).await;
            let (mut take, mut next_round) = (Vec::new(), Vec::new());
            for (i, claim) in still.into_iter().zip(claims) {
                match claim {
                    Claim::Have(b) => out.push((i, b)),
                    Claim::Won(lease) => {
                        bump(&c.lease_takeovers);
                        take.push((i, Some(lease)));
                    }
                    Claim::Free => take.push((i, None)),
                    Claim::Held => next_round.push(i),
                }
            }
            if !take.is_empty() {
                out.extend(self.fetch_and_keep(take).await?);
            }
            waiting = next_round;
        }
        Ok(out)
    }
}

/// The lease that guards fetching block `index` of `req`'s version. The content key is
/// a Redis Cluster hash tag, so the leases of one run can be taken in one script.
pub(super) fn lease_name(req: &BlockRequest, index: u64) -> String {
    format!("{{{}}}:{}:{index}", req.version.id, req.block_size)
}
