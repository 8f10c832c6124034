//! Test sources: an in-memory origin ([`MockSource`]), a fault-injecting wrapper
//! ([`Faulty`]), an in-memory store ([`MemStore`]) and an origin whose files change
//! ([`VersionedSource`]: bytes of each `(guid, key, version)` differ, and a version
//! the origin no longer serves answers as the API does), for unit tests of the tiers,
//! the prefetcher and the filesystem ops without HTTP or FUSE.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;

use super::{BlockRequest, BlockSink, BlockSource, BlockStore, Fetched, SourceError, StoreError};
use crate::api::ApiError;
use crate::version::{ContentKey, ContentVersion, TenantId, Validator};

pub const GUID: &str = "2480fc2c-bbd7-427c-9439-02f76583aef5";

/// A fresh (unpinned) version of the mock file of `size` bytes.
pub fn file_version(size: u64) -> Arc<ContentVersion> {
    Arc::new(ContentVersion::new(
        TenantId::new("http://mock/interaction-content", "test"),
        GUID,
        "callRecording",
        size,
        None,
    ))
}

/// Byte `i` of every mock file.
pub fn byte_at(i: u64) -> u8 {
    (i % 251) as u8
}

/// An origin serving files whose byte `i` is [`byte_at`]`(i)`, under one ETag, and
/// recording the runs asked for.
#[derive(Debug)]
pub struct MockSource {
    version: Arc<ContentVersion>,
    etag: Validator,
    asked: Mutex<Vec<(u64, u64)>>,
    delay: Duration,
    /// Streaming: each block handed over this long after the one before.
    per_block: Duration,
}

impl MockSource {
    pub fn new(size: u64) -> MockSource {
        MockSource::with_version(file_version(size))
    }

    pub fn with_version(version: Arc<ContentVersion>) -> MockSource {
        MockSource {
            version,
            etag: Validator::ETag("\"mock\"".into()),
            asked: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
            per_block: Duration::ZERO,
        }
    }

    /// Answer each fetch after `delay`.
    pub fn delayed(mut self, delay: Duration) -> MockSource {
        self.delay = delay;
        self
    }

    /// Stream each run, one block every `per_block` (after the first `delay`).
    pub fn streaming(mut self, per_block: Duration) -> MockSource {
        self.per_block = per_block;
        self
    }

    pub fn version(&self) -> Arc<ContentVersion> {
        Arc::clone(&self.version)
    }

    pub fn bytes(&self) -> Bytes {
        (0..self.version.size).map(byte_at).collect()
    }

    /// The runs fetched so far, as `(first, count)`.
    pub fn requests(&self) -> Vec<(u64, u64)> {
        self.asked.lock().clone()
    }
}

impl BlockSource for MockSource {
    fn stream(
        &self,
        req: BlockRequest,
        sink: Arc<dyn BlockSink>,
    ) -> BoxFuture<'static, Result<Option<Validator>, SourceError>> {
        let per_block = self.per_block;
        let fetch = self.fetch(req.clone());
        if per_block.is_zero() {
            return async move {
                let f = fetch.await?;
                sink.put_all(req.first, req.count, f.blocks);
                Ok(f.validator)
            }
            .boxed();
        }
        async move {
            // The whole run is made first (its delay, its version check), then handed
            // over a block at a time.
            let f = fetch.await?;
            for (index, b) in (req.first..).zip(f.blocks) {
                tokio::time::sleep(per_block).await;
                sink.put(index, b);
            }
            Ok(f.validator)
        }
        .boxed()
    }

    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>> {
        self.asked.lock().push((req.first, req.count));
        let etag = self.etag.clone();
        let delay = self.delay;
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if !req.version.pin(&etag) {
                return Err(SourceError::Origin(ApiError::Changed {
                    what: "mock".into(),
                    detail: "ETag differs".into(),
                }));
            }
            let blocks = (req.first..req.first + req.count)
                .map(|i| {
                    let (a, b) = req.block_range(i);
                    (a..b).map(byte_at).collect::<Bytes>()
                })
                .collect();
            Ok(Fetched {
                blocks,
                validator: Some(etag),
            })
        }
        .boxed()
    }
}

/// What [`Faulty`] does to one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fail with a transport error from the origin.
    Fail,
    /// Fail as a broken tier would.
    TierFail,
    /// Return one block fewer than asked.
    ShortRun,
    /// Flip the first byte of the first block.
    WrongBytes,
}

/// Wraps a source and applies `fault` to fetch number `nth` (1-based), or to every
/// fetch from then on with `every`. With [`Faulty::covering`] only fetches whose run
/// covers that block are counted, so read-ahead racing the demand fetch cannot take
/// the fault meant for it.
#[derive(Debug)]
pub struct Faulty<S> {
    inner: S,
    fault: Fault,
    nth: u64,
    every: bool,
    block: Option<u64>,
    seen: AtomicU64,
}

impl<S: BlockSource> Faulty<S> {
    pub fn nth(inner: S, fault: Fault, nth: u64) -> Faulty<S> {
        Faulty {
            inner,
            fault,
            nth,
            every: false,
            block: None,
            seen: AtomicU64::new(0),
        }
    }

    /// Count (and fault) only the fetches whose run covers block `index`.
    pub fn covering(self, index: u64) -> Faulty<S> {
        Faulty {
            block: Some(index),
            ..self
        }
    }

    pub fn from_nth(inner: S, fault: Fault, nth: u64) -> Faulty<S> {
        Faulty {
            every: true,
            ..Faulty::nth(inner, fault, nth)
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: BlockSource> BlockSource for Faulty<S> {
    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>> {
        let counted = self
            .block
            .is_none_or(|b| (req.first..req.first.saturating_add(req.count)).contains(&b));
        let hit = counted && {
            let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
            n == self.nth || (self.every && n > self.nth)
        };
        let fault = self.fault;
        let inner = self.inner.fetch(req);
        async move {
            if !hit {
                return inner.await;
            }
            match fault {
                Fault::Fail => Err(SourceError::Origin(ApiError::Transport {
                    what: "mock".into(),
                    detail: "injected failure".into(),
                })),
                Fault::TierFail => Err(SourceError::Tier {
                    tier: "mock",
                    detail: "injected failure".into(),
                }),
                Fault::ShortRun => {
                    let mut f = inner.await?;
                    f.blocks.pop();
                    Ok(f)
                }
                Fault::WrongBytes => {
                    let mut f = inner.await?;
                    if let Some(b) = f.blocks.first_mut() {
                        let mut v = b.to_vec();
                        if let Some(x) = v.first_mut() {
                            *x ^= 0xff;
                        }
                        *b = Bytes::from(v);
                    }
                    Ok(f)
                }
            }
        }
        .boxed()
    }
}

/// A store in memory, which can be told to fail.
#[derive(Debug, Default)]
pub struct MemStore {
    blocks: Mutex<HashMap<(ContentKey, u64), super::tiered::Stored>>,
    broken: AtomicBool,
}

impl MemStore {
    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::Relaxed);
    }

    pub fn set(&self, v: &ContentVersion, index: u64, b: Bytes, validator: Option<Validator>) {
        self.blocks.lock().insert((v.id, index), (b, validator));
    }

    /// Drop block `index` of whatever version holds it.
    pub fn forget(&self, index: u64) {
        self.blocks.lock().retain(|(_, i), _| *i != index);
    }
}

impl BlockStore for MemStore {
    fn name(&self) -> &'static str {
        "mem"
    }

    fn get(
        &self,
        version: &Arc<ContentVersion>,
        index: u64,
        _req: &BlockRequest,
    ) -> BoxFuture<'static, Result<Option<super::tiered::Stored>, StoreError>> {
        let got = if self.broken.load(Ordering::Relaxed) {
            Err(StoreError("broken (test)".into()))
        } else {
            Ok(self.blocks.lock().get(&(version.id, index)).cloned())
        };
        futures::future::ready(got).boxed()
    }

    fn put(&self, version: &Arc<ContentVersion>, first: u64, fetched: &Fetched) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let mut m = self.blocks.lock();
        for (i, b) in (first..).zip(&fetched.blocks) {
            m.insert((version.id, i), (b.clone(), fetched.validator.clone()));
        }
    }

    fn discard(&self, version: &Arc<ContentVersion>, index: u64) {
        self.blocks.lock().remove(&(version.id, index));
    }
}

/// Byte `i` of version `(guid, key, last_modified)` of a [`VersionedSource`] file:
/// versions of one file (and files of one interaction) differ at almost every byte.
pub fn versioned_byte(guid: &str, key: &str, last_modified: i64, i: u64) -> u8 {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in guid
        .bytes()
        .chain(key.bytes())
        .chain(last_modified.to_le_bytes())
    {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    ((i.wrapping_mul(31).wrapping_add(seed)) % 251) as u8
}

/// An origin of files that change: each `(guid, key)` has one current version (its
/// size and `lastModified`), set by the test. A request for the current version gets
/// its bytes ([`versioned_byte`]) under an ETag naming it; for any other version
/// `Changed` (the API serves other bytes now: `ESTALE`); for a file it does not have,
/// `NotFound` (404).
#[derive(Debug, Default)]
pub struct VersionedSource {
    current: Mutex<HashMap<(String, String), (u64, i64)>>,
}

impl VersionedSource {
    /// `(guid, key)` is now `size` bytes last modified at `last_modified` (unix seconds).
    pub fn set(&self, guid: &str, key: &str, size: u64, last_modified: i64) {
        let k = (guid.to_string(), key.to_string());
        self.current.lock().insert(k, (size, last_modified));
    }

    /// `guid` has no files any more.
    pub fn remove(&self, guid: &str) {
        self.current.lock().retain(|(g, _), _| g != guid);
    }

    /// `(guid, key)` is gone (404), the rest of `guid` stays.
    pub fn remove_key(&self, guid: &str, key: &str) {
        self.current
            .lock()
            .remove(&(guid.to_string(), key.to_string()));
    }
}

impl BlockSource for VersionedSource {
    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>> {
        let v = &req.version;
        let what = format!("{}/{}", v.guid, v.key);
        let now = self
            .current
            .lock()
            .get(&(v.guid.clone(), v.key.clone()))
            .copied();
        let asked = (v.size, v.last_modified.map_or(0, |t| t.unix_timestamp()));
        let answer = match now {
            None => Err(SourceError::Origin(ApiError::NotFound { what })),
            Some(now) if now != asked => Err(SourceError::Origin(ApiError::Changed {
                what,
                detail: "another version".into(),
            })),
            Some((_, lm)) => {
                let etag = Validator::ETag(format!("\"{lm}\""));
                if !v.pin(&etag) {
                    Err(SourceError::Origin(ApiError::Changed {
                        what,
                        detail: "ETag differs".into(),
                    }))
                } else {
                    let blocks = (req.first..req.first + req.count)
                        .map(|i| {
                            let (a, b) = req.block_range(i);
                            (a..b)
                                .map(|j| versioned_byte(&v.guid, &v.key, lm, j))
                                .collect()
                        })
                        .collect();
                    Ok(Fetched {
                        blocks,
                        validator: Some(etag),
                    })
                }
            }
        };
        futures::future::ready(answer).boxed()
    }
}
