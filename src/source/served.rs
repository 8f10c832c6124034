//! Which tier served a block, for the access audit log: a small table of the tier
//! that last delivered each recent block, kept by wrappers around the tiers of the
//! chain ([`TaggedStore`] around a [`BlockStore`], [`TaggedSource`] around a
//! [`BlockSource`]). Installed only with `--audit-log`; without it nothing here runs.
//!
//! Invariants:
//! - **The tier that delivered it wins.** Every record carries a stamp taken when its
//!   fetch (or store look) started; a record replaces one with an older stamp only.
//!   A tier nearer the API starts its fetch after the tiers in front of it asked, so
//!   when a block passes through several wrappers on its way up (the shared tier
//!   handing on what the API sent), the innermost one, the one that produced it,
//!   keeps the record; a stored block refused as damaged or foreign is recorded by
//!   the store, then replaced by the tier that fetched it again.
//! - A record is made before the block is handed on, so a reader that got the block
//!   finds its tier in the table.
//! - **Bounded.** At most [`MAX_RECORDS`] blocks are remembered; when full, the table
//!   is emptied and starts again (an unknown block is reported by the caller as it
//!   documents; the audit log says `memory`: see `fs::audit`).
//! - The wrappers change nothing else: every call is passed on as is.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;

use super::tiered::Stored;
use super::{BlockRequest, BlockSink, BlockSource, BlockStore, Fetched, SourceError};
use crate::audit::Tier;
use crate::version::{ContentKey, ContentVersion, Validator};

/// Blocks remembered before the table starts again.
pub const MAX_RECORDS: usize = 1 << 16;

/// The tier that last delivered each recent block.
#[derive(Debug, Default)]
pub struct Served {
    stamp: AtomicU64,
    table: Mutex<HashMap<(ContentKey, u64), (u64, Tier)>>,
}

impl Served {
    /// A stamp for a fetch starting now.
    fn stamp(&self) -> u64 {
        self.stamp.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn record(&self, version: &ContentVersion, index: u64, stamp: u64, tier: Tier) {
        let mut t = self.table.lock();
        if t.len() >= MAX_RECORDS && !t.contains_key(&(version.id, index)) {
            t.clear();
        }
        let slot = t.entry((version.id, index)).or_insert((0, tier));
        if slot.0 <= stamp {
            *slot = (stamp, tier);
        }
    }

    /// The tier that last delivered block `index` of `version`, if remembered.
    pub fn tier_of(&self, version: &ContentVersion, index: u64) -> Option<Tier> {
        self.table
            .lock()
            .get(&(version.id, index))
            .map(|(_, tier)| *tier)
    }
}

/// A store whose hits are recorded in [`Served`] as its tier.
#[derive(Debug)]
pub struct TaggedStore {
    pub inner: Arc<dyn BlockStore>,
    pub served: Arc<Served>,
}

impl BlockStore for TaggedStore {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get(
        &self,
        version: &Arc<ContentVersion>,
        index: u64,
        req: &BlockRequest,
    ) -> BoxFuture<'static, Result<Option<Stored>, super::StoreError>> {
        let stamp = self.served.stamp();
        let tier = Tier::of_store(self.inner.name());
        let served = Arc::clone(&self.served);
        let v = Arc::clone(version);
        let got = self.inner.get(version, index, req);
        async move {
            let got = got.await;
            if let Ok(Some(_)) = &got {
                served.record(&v, index, stamp, tier);
            }
            got
        }
        .boxed()
    }

    fn put(&self, version: &Arc<ContentVersion>, first: u64, fetched: &Fetched) {
        self.inner.put(version, first, fetched)
    }

    fn room(&self, bytes: u64) -> BoxFuture<'static, ()> {
        self.inner.room(bytes)
    }

    fn discard(&self, version: &Arc<ContentVersion>, index: u64) {
        self.inner.discard(version, index)
    }

    fn local_file(&self, version: &Arc<ContentVersion>) -> BoxFuture<'static, Option<File>> {
        self.inner.local_file(version)
    }
}

/// A source whose delivered blocks are recorded in [`Served`] as `tier`.
#[derive(Debug)]
pub struct TaggedSource {
    pub inner: Arc<dyn BlockSource>,
    pub tier: Tier,
    pub served: Arc<Served>,
}

/// Records each block, then hands it on.
struct TaggedSink {
    to: Arc<dyn BlockSink>,
    version: Arc<ContentVersion>,
    stamp: u64,
    tier: Tier,
    served: Arc<Served>,
}

impl BlockSink for TaggedSink {
    fn put(&self, index: u64, block: Bytes) {
        self.served
            .record(&self.version, index, self.stamp, self.tier);
        self.to.put(index, block);
    }
    fn put_all(&self, first: u64, count: u64, blocks: Vec<Bytes>) {
        if blocks.len() as u64 == count {
            for index in first..first + count {
                self.served
                    .record(&self.version, index, self.stamp, self.tier);
            }
        }
        self.to.put_all(first, count, blocks);
    }
}

impl BlockSource for TaggedSource {
    fn local_file(&self, version: &Arc<ContentVersion>) -> BoxFuture<'static, Option<File>> {
        self.inner.local_file(version)
    }

    fn fetch(&self, req: BlockRequest) -> BoxFuture<'static, Result<Fetched, SourceError>> {
        let stamp = self.served.stamp();
        let (served, tier) = (Arc::clone(&self.served), self.tier);
        let (version, first) = (Arc::clone(&req.version), req.first);
        let fetch = self.inner.fetch(req);
        async move {
            let fetched = fetch.await?;
            for index in first..first + fetched.blocks.len() as u64 {
                served.record(&version, index, stamp, tier);
            }
            Ok(fetched)
        }
        .boxed()
    }

    fn stream(
        &self,
        req: BlockRequest,
        sink: Arc<dyn BlockSink>,
    ) -> BoxFuture<'static, Result<Option<Validator>, SourceError>> {
        let sink = Arc::new(TaggedSink {
            to: sink,
            version: Arc::clone(&req.version),
            stamp: self.served.stamp(),
            tier: self.tier,
            served: Arc::clone(&self.served),
        });
        self.inner.stream(req, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::TenantId;

    fn version() -> ContentVersion {
        ContentVersion::new(TenantId::new("http://x", "c"), "g", "k", 10, None)
    }

    #[test]
    fn the_producer_keeps_the_record_and_a_later_fetch_replaces_it() {
        let served = Served::default();
        let v = version();
        let outer = served.stamp();
        let inner = served.stamp();
        served.record(&v, 0, inner, Tier::Api);
        served.record(&v, 0, outer, Tier::Redis);
        assert_eq!(served.tier_of(&v, 0), Some(Tier::Api));
        let later = served.stamp();
        served.record(&v, 0, later, Tier::Disk);
        assert_eq!(served.tier_of(&v, 0), Some(Tier::Disk));
        assert_eq!(served.tier_of(&v, 1), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let served = Served::default();
        let v = version();
        for i in 0..(MAX_RECORDS as u64 + 10) {
            let s = served.stamp();
            served.record(&v, i, s, Tier::Api);
        }
        assert!(served.table.lock().len() <= MAX_RECORDS);
        assert_eq!(served.tier_of(&v, MAX_RECORDS as u64 + 9), Some(Tier::Api));
    }
}
