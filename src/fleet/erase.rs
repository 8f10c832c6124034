//! Erasing an interaction from the fleet: its blocks out of the shared Redis, and a
//! tombstone every host hears of (to drop its own copies), now or when it comes back.
//!
//! - [`Fleet::erase_guid`] unlinks every block value of one interaction, whatever its
//!   content version, block size or format version: block keys start with
//!   `vccfs:<tenant>:v<format>:b:<g>:`, `<g>` the keyed name of the guid, so one
//!   `SCAN MATCH … COUNT 1000` walk finds them (on the cache's Redis; a single instance,
//!   not a Redis Cluster).
//! - [`Fleet::announce_erasure`] adds a tombstone to `vccfs:{<tenant>}:erased` (a
//!   sorted set on the control Redis, scored by the *server's* time in ms, trimmed to
//!   `block_ttl`: no block can outlive that, so neither need its tombstone) and
//!   publishes the same tombstone on the channel `vccfs:{<tenant>}:erase`, in one
//!   `MULTI`.
//! - [`Fleet::subscribe_erasures`] runs a task with its own pub/sub connection that
//!   delivers every announced guid, this host's own included (callers dedupe): it
//!   reconnects with backoff, pings to notice a dead link, and after a reconnection
//!   catches up from the tombstones, so an outage loses none (it may repeat some).
//! - [`Fleet::erasures_since`] lists the tombstones newer than a time, for a host that
//!   was down.
//!
//! Invariants:
//! - **No plaintext guid in Redis.** A tombstone is `seal(aad, time ms u64 LE ‖ guid)`
//!   with the Redis sealer, associated data naming the tenant and the tombstone set;
//!   its time is the sealed one, not the (forgeable) score. A tombstone that does not
//!   open (garbage, another key or tenant) is ignored and counted
//!   (`erasures_rejected`), never delivered.
//! - **Never panics, never blocks a read**: the listener is a background task that
//!   ends when its receiver or the last [`Fleet`] is dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use super::format::FORMAT;
use super::stats::bump;
use super::{clients, Fleet, FleetError, Inner, Lane, CONNECT_TIMEOUT};

const TOMBSTONE_LABEL: &[u8] = b"vccfs-erasure-v1";
/// Keys asked for per `SCAN` step, tombstones per page.
const PAGE: usize = 1000;
/// How often the listener pings its pub/sub connection.
const PING_EVERY: Duration = Duration::from_secs(5);
/// How far back a catch-up after a reconnection reaches before the last mark.
const CATCH_UP_MARGIN: u64 = 1000;

impl Fleet {
    /// `vccfs:<tenant>:v<format>:b:<g>:`: the start of every block key of `guid`.
    pub(super) fn guid_prefix(&self, guid: &str) -> String {
        let g = self.inner.cfg.root.name(guid.as_bytes());
        format!("{}:v{FORMAT}:b:{g}:", self.inner.keys.base)
    }

    /// Remove every block value of interaction `guid` (all content versions, block
    /// sizes and format versions) from the cache's Redis; how many keys went.
    pub async fn erase_guid(&self, guid: &str) -> Result<u64, FleetError> {
        let g = self.inner.cfg.root.name(guid.as_bytes());
        let pattern = format!("{}:v*:b:{g}:*", self.inner.keys.base);
        let mut cursor = 0u64;
        let mut gone = 0u64;
        loop {
            let (p, at) = (pattern.clone(), cursor);
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run(Lane::Write, move |mut c| {
                    let p = p.clone();
                    async move {
                        redis::cmd("SCAN")
                            .arg(at)
                            .arg("MATCH")
                            .arg(p)
                            .arg("COUNT")
                            .arg(PAGE)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            if !keys.is_empty() {
                let keys = Arc::new(keys);
                let n: u64 = self
                    .run(Lane::Write, move |mut c| {
                        let keys = Arc::clone(&keys);
                        async move { redis::cmd("UNLINK").arg(&*keys).query_async(&mut c).await }
                    })
                    .await?;
                gone += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.counters()
            .erased
            .fetch_add(gone, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(keys = gone, "shared tier: interaction erased");
        Ok(gone)
    }

    /// The control Redis's clock, in unix ms.
    async fn server_ms(&self) -> Result<u64, FleetError> {
        let (secs, micros): (u64, u64) = self
            .run(Lane::Control, |mut c| async move {
                redis::cmd("TIME").query_async(&mut c).await
            })
            .await?;
        Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
    }

    pub(super) fn tombstone_aad(&self) -> Vec<u8> {
        let mut aad = TOMBSTONE_LABEL.to_vec();
        aad.extend_from_slice(self.inner.cfg.tenant.as_bytes());
        aad.extend_from_slice(self.inner.keys.erased.as_bytes());
        aad
    }

    /// The guid and time of a tombstone, if it is one of ours, intact.
    fn open_tombstone(&self, sealed: &[u8]) -> Option<(String, u64)> {
        let opened = self.inner.sealer.open(&self.tombstone_aad(), sealed).ok();
        let got = opened.filter(|p| p.len() >= 8).and_then(|p| {
            let mut ms = [0u8; 8];
            ms.copy_from_slice(&p[..8]);
            let guid = String::from_utf8(p[8..].to_vec()).ok()?;
            Some((guid, u64::from_le_bytes(ms)))
        });
        if got.is_none() {
            bump(&self.counters().erasures_rejected);
            tracing::debug!("shared tier: a tombstone that does not open was ignored");
        }
        got
    }

    /// Tell the fleet that interaction `guid` was erased: a tombstone (kept for
    /// `block_ttl`) and a message to every subscriber, this host's included. It does
    /// not remove the blocks: see [`Fleet::erase_guid`].
    pub async fn announce_erasure(&self, guid: &str) -> Result<(), FleetError> {
        let now = self.server_ms().await?;
        let mut plain = now.to_le_bytes().to_vec();
        plain.extend_from_slice(guid.as_bytes());
        let member = self.inner.sealer.seal(&self.tombstone_aad(), &plain);
        let ttl = u64::try_from(self.inner.cfg.block_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let keys = &self.inner.keys;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(&keys.erased)
            .arg(now)
            .arg(&member)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&keys.erased)
            .arg("-inf")
            .arg(format!("({}", now.saturating_sub(ttl)))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&keys.erased)
            .arg(ttl)
            .ignore()
            .cmd("PUBLISH")
            .arg(&keys.erase_channel)
            .arg(&member)
            .ignore();
        let pipe = Arc::new(pipe);
        let send = || {
            let pipe = Arc::clone(&pipe);
            self.run(Lane::Control, move |mut c| {
                let pipe = Arc::clone(&pipe);
                async move { pipe.query_async::<()>(&mut c).await }
            })
        };
        match send().await {
            // Not a sorted set: not what we write; reset it and try again.
            Err(FleetError::Refused(e)) => {
                tracing::warn!(error = %e, "shared tier: tombstone set reset");
                bump(&self.counters().resets);
                let key = keys.erased.clone();
                self.run(Lane::Control, move |mut c| {
                    let key = key.clone();
                    async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await }
                })
                .await?;
                send().await?;
            }
            other => other?,
        }
        bump(&self.counters().erasures_announced);
        Ok(())
    }

    /// The guids erased after `since_unix_ms` (by the control Redis's clock) and when,
    /// oldest first; tombstones that do not open are skipped (and counted).
    pub async fn erasures_since(
        &self,
        since_unix_ms: u64,
    ) -> Result<Vec<(String, u64)>, FleetError> {
        let mut out = Vec::new();
        let mut offset = 0usize;
        loop {
            let (key, min) = (self.inner.keys.erased.clone(), format!("({since_unix_ms}"));
            let page = self
                .run_sized(Lane::Control, PAGE * 64, move |mut c| {
                    let (key, min) = (key.clone(), min.clone());
                    async move {
                        redis::cmd("ZRANGEBYSCORE")
                            .arg(key)
                            .arg(min)
                            .arg("+inf")
                            .arg("LIMIT")
                            .arg(offset)
                            .arg(PAGE)
                            .query_async::<Vec<Vec<u8>>>(&mut c)
                            .await
                    }
                })
                .await;
            let page = match page {
                // Not a sorted set: nothing we wrote, so no tombstones.
                Err(FleetError::Refused(e)) => {
                    bump(&self.counters().erasures_rejected);
                    tracing::debug!(error = %e, "shared tier: tombstone set unreadable");
                    Vec::new()
                }
                other => other?,
            };
            let n = page.len();
            out.extend(
                page.iter()
                    .filter_map(|m| self.open_tombstone(m))
                    .filter(|(_, ms)| *ms > since_unix_ms),
            );
            if n < PAGE {
                break;
            }
            offset += n;
        }
        out.sort_by_key(|(_, ms)| *ms);
        Ok(out)
    }

    /// Every guid announced from now on (by any host, this one included; repeats are
    /// possible), until the receiver or the last handle is dropped. Without a tokio
    /// runtime or a usable URL the receiver is closed at once.
    pub fn subscribe_erasures(&self) -> mpsc::UnboundedReceiver<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        match (
            clients(&self.inner.cfg),
            tokio::runtime::Handle::try_current(),
        ) {
            (Ok((_, control)), Ok(rt)) => {
                let channel = self.inner.keys.erase_channel.clone();
                rt.spawn(listen(Arc::downgrade(&self.inner), control, channel, tx));
            }
            (Err(e), _) => tracing::warn!(error = %e, "shared tier: no erasure listener"),
            (_, Err(_)) => tracing::warn!("shared tier: no erasure listener: no tokio runtime"),
        }
        rx
    }
}

/// A pub/sub connection subscribed to `channel`.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let mut ps = client.get_async_pubsub().await?;
    ps.subscribe(channel).await?;
    Ok(ps.split())
}

/// The listener of [`Fleet::subscribe_erasures`] (see the module essay).
async fn listen(
    weak: Weak<Inner>,
    client: redis::Client,
    channel: String,
    tx: mpsc::UnboundedSender<String>,
) {
    let mut backoff = Duration::from_millis(100);
    // A server time no later than the last moment this listener surely heard all.
    let mut mark: Option<u64> = None;
    loop {
        if tx.is_closed() || weak.strong_count() == 0 {
            return;
        }
        let (mut sink, mut stream) =
            match tokio::time::timeout(CONNECT_TIMEOUT * 3, subscribe(&client, &channel)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "shared tier: erasure listener not connected");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(_) => {
                    tracing::debug!("shared tier: erasure listener: connecting timed out");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
        backoff = Duration::from_millis(100);
        // Catch up on what was announced while not subscribed.
        {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            let shared = Fleet { inner };
            let caught_up = match mark {
                None => true,
                Some(m) => match shared
                    .erasures_since(m.saturating_sub(CATCH_UP_MARGIN))
                    .await
                {
                    Ok(list) => {
                        for (guid, _) in list {
                            bump(&shared.counters().erasures_received);
                            if tx.send(guid).is_err() {
                                return;
                            }
                        }
                        true
                    }
                    Err(_) => false,
                },
            };
            if caught_up {
                if let Ok(now) = shared.server_ms().await {
                    mark = Some(now);
                }
            }
        }
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        break; // the connection is gone
                    };
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    let shared = Fleet { inner };
                    if let Some((guid, ms)) = shared.open_tombstone(msg.get_payload_bytes()) {
                        mark = mark.map(|m| m.max(ms));
                        bump(&shared.counters().erasures_received);
                        if tx.send(guid).is_err() {
                            return;
                        }
                    }
                }
                _ = tx.closed() => return,
                _ = tokio::time::sleep(PING_EVERY) => {
                    if weak.strong_count() == 0 {
                        return;
                    }
                    let ping = sink.ping::<redis::Value>();
                    if !matches!(tokio::time::timeout(CONNECT_TIMEOUT * 3, ping).await, Ok(Ok(_))) {
                        tracing::debug!("shared tier: erasure listener lost its connection");
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}
