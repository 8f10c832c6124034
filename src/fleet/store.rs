//! [`FleetStore`]: the shared content tier as a [`BlockStore`] (see the module essay
//! of `shared` for the key and value format's guarantees).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::format::{self, Expect};
use super::{bump, Fleet, FleetError, Lane};
use crate::source::{BlockRequest, BlockStore, Fetched, StoreError};
use crate::version::{ContentVersion, Validator};

/// Blocks of one block size, kept in the shared Redis.
#[derive(Debug, Clone)]
pub struct FleetStore {
    shared: Fleet,
    block_size: u64,
}

impl FleetStore {
    /// The store for blocks of `block_size` bytes (the mount's `--block-size`).
    pub fn new(shared: Fleet, block_size: u64) -> FleetStore {
        FleetStore {
            shared,
            block_size: block_size.max(1),
        }
    }

    pub fn shared(&self) -> &Fleet {
        &self.shared
    }

    /// `vccfs:<tenant>:v2:b:<g>:<content key>:<block size>:<index>`, `<g>` the keyed
    /// name of the version's guid (see [`Fleet::guid_prefix`]).
    pub(super) fn key(&self, version: &ContentVersion, index: u64) -> String {
        format!(
            "{}{}:{}:{index}",
            self.shared.guid_prefix(&version.guid),
            version.id,
            self.block_size
        )
    }

    /// Block `index` of `version` (of `len` bytes), if Redis holds it intact; a miss is
    /// counted if `count_miss` (not for the polls of a waiter).
    pub(super) async fn lookup(
        &self,
        version: &ContentVersion,
        index: u64,
        len: u64,
        count_miss: bool,
    ) -> Result<Option<(Bytes, Option<Validator>)>, FleetError> {
        let key = self.key(version, index);
        let k = key.clone();
        // Never more than a block's value can be (a `GET` of a value someone planted
        // under this key would read all of it): `GETRANGE` answers at most `most + 1`
        // bytes, and an empty string for a missing key (no value is empty).
        let most = format::max_len(len);
        let value = self
            .shared
            .run_sized(Lane::Read, len as usize, move |mut c| {
                let key = k.clone();
                async move {
                    redis::cmd("GETRANGE")
                        .arg(key)
                        .arg(0)
                        .arg(most)
                        .query_async::<Vec<u8>>(&mut c)
                        .await
                }
            })
            .await;
        let c = self.shared.counters();
        let value = match value {
            // Something that is not a string under a block's key: a spoiled value.
            Err(FleetError::Refused(e)) => {
                bump(&c.rejected);
                tracing::debug!(error = %e, index, "shared tier: value refused");
                return Ok(None);
            }
            other => other?,
        };
        if value.is_empty() {
            if count_miss {
                bump(&c.misses);
            }
            return Ok(None);
        }
        if value.len() as u64 > most {
            bump(&c.rejected);
            tracing::debug!(index, "shared tier: value longer than any block's refused");
            return Ok(None);
        }
        let expect = Expect {
            redis_key: &key,
            tenant: self.shared.inner.cfg.tenant,
            version,
            block_size: self.block_size,
            index,
            len,
        };
        match format::decode(&self.shared.inner.sealer, value, &expect) {
            Ok(stored) => {
                bump(&c.hits);
                Ok(Some(stored))
            }
            Err(why) => {
                bump(&c.rejected);
                tracing::debug!(?why, index, "shared tier: value refused");
                Ok(None)
            }
        }
    }

    /// Write blocks `first..` of `version` and wait for Redis to take them.
    pub(super) async fn write(
        &self,
        version: &ContentVersion,
        first: u64,
        blocks: &[Bytes],
        validator: Option<&Validator>,
    ) -> Result<(), FleetError> {
        if blocks.is_empty() {
            return Ok(());
        }
        let cfg = &self.shared.inner.cfg;
        let ttl = u64::try_from(cfg.block_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        for (index, data) in (first..).zip(blocks) {
            let key = self.key(version, index);
            let value = format::encode(
                &self.shared.inner.sealer,
                &key,
                cfg.tenant,
                version,
                self.block_size,
                index,
                validator,
                data,
            );
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(ttl)
                .ignore();
        }
        let bytes = blocks.iter().map(|b| b.len()).sum();
        let pipe = Arc::new(pipe);
        self.shared
            .run_sized(Lane::Write, bytes, move |mut c| {
                let pipe = Arc::clone(&pipe);
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await?;
        let stored = &self.shared.counters().stored;
        stored.fetch_add(blocks.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Write blocks in the background, within the bound on writes in flight; `then`
    /// runs once they are written (or dropped, or failed).
    pub(super) fn write_behind(
        &self,
        version: &Arc<ContentVersion>,
        first: u64,
        fetched: &Fetched,
        then: impl FnOnce() + Send + 'static,
    ) {
        let c = self.shared.counters();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.shared.healthy() || fetched.blocks.is_empty() {
            return;
        }
        // One permit a block: what does not fit the bound is dropped, not queued.
        let puts = Arc::clone(&self.shared.inner.puts);
        let n = fetched.blocks.len();
        let take = n.min(puts.available_permits());
        let permit = match u32::try_from(take).map(|k| puts.try_acquire_many_owned(k)) {
            Ok(Ok(p)) if take > 0 => p,
            _ => {
                c.puts_dropped.fetch_add(n as u64, Ordering::Relaxed);
                return;
            }
        };
        c.puts_dropped
            .fetch_add((n - take) as u64, Ordering::Relaxed);
        let store = self.clone();
        let version = Arc::clone(version);
        let blocks = fetched.blocks[..take].to_vec();
        let validator = fetched.validator.clone();
        rt.spawn(async move {
            if let Err(e) = store
                .write(&version, first, &blocks, validator.as_ref())
                .await
            {
                tracing::debug!(error = %e, "shared tier: blocks not stored");
            }
            drop(permit);
            then();
        });
    }
}

impl BlockStore for FleetStore {
    fn name(&self) -> &'static str {
        "shared"
    }

    fn get(
        &self,
        version: &Arc<ContentVersion>,
        index: u64,
        req: &BlockRequest,
    ) -> BoxFuture<'static, Result<Option<(Bytes, Option<Validator>)>, StoreError>> {
        let store = self.clone();
        let version = Arc::clone(version);
        let (start, end) = req.block_range(index);
        let same_size = req.block_size == self.block_size;
        async move {
            if !same_size {
                return Ok(None);
            }
            store
                .lookup(&version, index, end - start, true)
                .await
                .map_err(|e| StoreError(e.to_string()))
        }
        .boxed()
    }

    fn put(&self, version: &Arc<ContentVersion>, first: u64, fetched: &Fetched) {
        self.write_behind(version, first, fetched, || {});
    }

    fn discard(&self, version: &Arc<ContentVersion>, index: u64) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let key = self.key(version, index);
        let shared = self.shared.clone();
        rt.spawn(async move {
            let _ = shared
                .run(Lane::Write, move |mut c| {
                    let key = key.clone();
                    async move { redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await }
                })
                .await;
        });
    }
}
