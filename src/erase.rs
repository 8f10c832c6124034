//! One erasure path: an interaction deleted at the API (a re-list no longer shows it,
//! a lookup answers 404, its content answers 404 and a lookup confirms it) or erased
//! on demand (`vccfs erase`) leaves every tier at once, through [`Eraser`].
//!
//! One erasure of a guid, in this order:
//! 1. the catalog forgets it ([`Catalog::forget`]): listing, lookups by name, saved
//!    day; its versions in use are marked erased, so an open handle's next read fails
//!    (`ENOENT`), never serves bytes;
//! 2. the memory cache drops every block of those versions and refuses them from then
//!    on ([`BlockCache::erase`]);
//! 3. the kernel forgets it: its inodes' pages and attributes, and the entries
//!    `interactions/<guid>`, `by-date/<day>/<guid>` and its files ([`Inval`], queued
//!    to the invalidator thread: never run on a runtime worker);
//! 4. every other tier is asked through [`EraseTier`] (disk; Redis once wired), each
//!    on its own, a failure reported, never fatal;
//! 5. with a fleet, the erasure is announced ([`Broadcast`]) unless it was heard from
//!    another host ([`Eraser::erase_local`]), so an announcement never echoes.
//!
//! Erasures of one guid run one at a time ([`GuidLocks`]): a second erasure (two
//! failed reads each confirming the deletion, a re-list and a lookup) waits until the
//! first has told the kernel, so nothing is counted done while pages of it may still
//! be cached (a second one that found the catalog already empty once finished first
//! and was counted while the first was still re-saving the day).
//!
//! Invariants: an erasure never fails as a whole (each step reports what it removed
//! or why it could not); it never blocks a runtime worker; the API stays the source
//! of truth — an interaction it still lists comes back on its day's next re-list (or
//! on a lookup by name once the negative cache forgets it) and is fetched again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::cache::BlockCache;
use crate::catalog::{Catalog, Forgotten, InteractionEntry};
use crate::version::ContentKey;

/// What one erasure asks of a tier that keeps content (disk, Redis).
#[derive(Debug, Clone)]
pub struct Erasure {
    pub guid: String,
    /// `Some(key)`: only that content item (the interaction still exists).
    pub key: Option<String>,
    /// The content versions the catalog knew of (the tier may hold others of the
    /// guid, e.g. from an earlier mount: erase those too when it can find them).
    pub versions: Vec<ContentKey>,
}

/// A tier that keeps content and can erase what it keeps of an interaction.
pub trait EraseTier: Send + Sync {
    /// Its name in reports (`disk`, `shared`).
    fn tier(&self) -> &'static str;
    /// Erase `what`; how many things (files, keys, versions) it removed.
    fn erase(&self, what: &Erasure) -> BoxFuture<'static, Result<u64, String>>;
}

/// Tells the other hosts of a fleet that an interaction was erased.
pub trait Broadcast: Send + Sync {
    fn announce(&self, guid: &str) -> BoxFuture<'static, Result<(), String>>;
}

/// A kernel invalidation, for the invalidator thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inval {
    /// Drop the inode's cached pages and attributes.
    Inode(u64),
    /// Drop the directory entry `name` of `parent`.
    Entry { parent: u64, name: String },
    /// Say so when every invalidation queued before this one was sent to the kernel.
    Barrier(Signal),
}

/// A one-time signal (for [`Inval::Barrier`]); equal only to itself.
#[derive(Debug, Clone)]
pub struct Signal(Arc<parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<()>>>>);

impl Signal {
    fn new() -> (Signal, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Signal(Arc::new(parking_lot::Mutex::new(Some(tx)))), rx)
    }

    /// Signal it (again: nothing).
    pub fn fire(&self) {
        if let Some(tx) = self.0.lock().take() {
            let _ = tx.send(());
        }
    }
}

impl PartialEq for Signal {
    fn eq(&self, other: &Signal) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Signal {}

/// Longest an erasure waits for the kernel to drop its caches before it goes on.
const KERNEL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What one tier removed (or why it could not).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TierErased {
    pub tier: String,
    pub removed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one erasure removed, tier by tier.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EraseReport {
    pub guid: String,
    /// Only this content item was erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Listing, lookups by name, saved day.
    pub catalog_entries: u64,
    pub memory_blocks: u64,
    pub inodes_invalidated: u64,
    /// The other tiers (disk files, Redis keys).
    pub tiers: Vec<TierErased>,
    /// `announced`, or why not (absent without a fleet or when heard from one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
}

impl EraseReport {
    /// Did this erasure remove anything anywhere?
    pub fn removed_anything(&self) -> bool {
        self.catalog_entries + self.memory_blocks > 0 || self.tiers.iter().any(|t| t.removed > 0)
    }
}

type Invalidate = Arc<dyn Fn(Inval) + Send + Sync>;

/// The one erasure path of a mount.
pub struct Eraser {
    catalog: Arc<Catalog>,
    cache: Arc<BlockCache>,
    invalidate: Invalidate,
    tiers: Vec<Arc<dyn EraseTier>>,
    broadcast: Option<Arc<dyn Broadcast>>,
    erasures: AtomicU64,
    running: GuidLocks,
}

/// One async lock per guid being erased (entries go once no erasure holds them).
#[derive(Default)]
struct GuidLocks(parking_lot::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>);

impl GuidLocks {
    /// Wait until no other erasure of `guid` runs; it waits for this one while the
    /// guard lives.
    async fn hold(&self, guid: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock();
            map.retain(|_, w| w.strong_count() > 0);
            let key = guid.to_ascii_lowercase();
            match map.get(&key).and_then(Weak::upgrade) {
                Some(l) => l,
                None => {
                    let l = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key, Arc::downgrade(&l));
                    l
                }
            }
        };
        lock.lock_owned().await
    }
}

impl std::fmt::Debug for Eraser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eraser")
            .field(
                "tiers",
                &self.tiers.iter().map(|t| t.tier()).collect::<Vec<_>>(),
            )
            .field("fleet", &self.broadcast.is_some())
            .field("erasures", &self.erasures())
            .finish()
    }
}

impl Eraser {
    /// The eraser of a mount: `invalidate` queues a kernel invalidation (it must not
    /// block), `tiers` are asked in order, `broadcast` announces to the fleet.
    pub fn new(
        catalog: Arc<Catalog>,
        cache: Arc<BlockCache>,
        invalidate: impl Fn(Inval) + Send + Sync + 'static,
        tiers: Vec<Arc<dyn EraseTier>>,
        broadcast: Option<Arc<dyn Broadcast>>,
    ) -> Eraser {
        Eraser {
            catalog,
            cache,
            invalidate: Arc::new(invalidate),
            tiers,
            broadcast,
            erasures: AtomicU64::new(0),
            running: GuidLocks::default(),
        }
    }

    /// Interactions erased so far (by command, by the API's deletions, by the fleet).
    pub fn erasures(&self) -> u64 {
        self.erasures.load(Ordering::Relaxed)
    }

    /// Erase `guid` from every tier of this mount and announce it to the fleet
    /// (`vccfs erase`): counted even when nothing held it.
    pub async fn erase(&self, guid: &str) -> EraseReport {
        let _one = self.running.hold(guid).await;
        let mut r = self.erase_here(guid, None).await;
        self.erasures.fetch_add(1, Ordering::Relaxed);
        r.fleet = self.announce(guid).await;
        r
    }

    /// Erase `guid` heard from another host of the fleet: never announced again.
    pub async fn erase_local(&self, guid: &str) -> EraseReport {
        let _one = self.running.hold(guid).await;
        let r = self.erase_here(guid, None).await;
        self.count(&r);
        r
    }

    /// The API no longer has `guid` (`entry`: what a re-list took out of the listing):
    /// erase it here and announce it.
    pub async fn erase_gone(
        &self,
        guid: &str,
        entry: Option<Arc<InteractionEntry>>,
    ) -> EraseReport {
        let _one = self.running.hold(guid).await;
        let mut r = self.erase_here(guid, entry).await;
        self.count(&r);
        if r.removed_anything() {
            r.fleet = self.announce(guid).await;
        }
        tracing::info!(report = ?r, "erased an interaction the API no longer has");
        r
    }

    /// The API no longer has content `key` (version `version`) of `guid`: erase that
    /// file (the catalog's entry without it is in place already).
    pub async fn erase_content(&self, guid: &str, key: &str, version: ContentKey) -> EraseReport {
        let _one = self.running.hold(guid).await;
        let forgotten = self.catalog.forget_content(guid, key, version);
        let what = Erasure {
            guid: guid.to_string(),
            key: Some(key.to_string()),
            versions: forgotten.versions.clone(),
        };
        let mut r = self.drop_cached(&forgotten);
        self.kernel_settled().await;
        r.key = Some(key.to_string());
        r.tiers = self.ask_tiers(&what).await;
        tracing::info!(report = ?r, "erased a file the API no longer has");
        r
    }

    fn count(&self, r: &EraseReport) {
        if r.removed_anything() {
            self.erasures.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn erase_here(&self, guid: &str, entry: Option<Arc<InteractionEntry>>) -> EraseReport {
        let forgotten = self.catalog.forget(guid, entry).await;
        let what = Erasure {
            guid: guid.to_string(),
            key: None,
            versions: forgotten.versions.clone(),
        };
        let mut r = self.drop_cached(&forgotten);
        self.kernel_settled().await;
        r.tiers = self.ask_tiers(&what).await;
        r
    }

    /// Until the kernel has been told every invalidation queued so far (so a reader
    /// that sees the erasure done finds no page of it cached), at most [`KERNEL_WAIT`].
    async fn kernel_settled(&self) {
        let (signal, done) = Signal::new();
        (self.invalidate)(Inval::Barrier(signal));
        let _ = tokio::time::timeout(KERNEL_WAIT, done).await;
    }

    /// Memory blocks and kernel caches of what the catalog forgot.
    fn drop_cached(&self, f: &Forgotten) -> EraseReport {
        let memory_blocks = self.cache.erase(&f.contents);
        for &ino in &f.inos {
            (self.invalidate)(Inval::Inode(ino));
        }
        for (parent, name) in &f.entries {
            (self.invalidate)(Inval::Entry {
                parent: *parent,
                name: name.clone(),
            });
        }
        EraseReport {
            guid: f.guid.clone(),
            catalog_entries: f.records,
            memory_blocks,
            inodes_invalidated: f.inos.len() as u64,
            ..EraseReport::default()
        }
    }

    async fn ask_tiers(&self, what: &Erasure) -> Vec<TierErased> {
        let mut out = Vec::with_capacity(self.tiers.len());
        for t in &self.tiers {
            let (removed, error) = match t.erase(what).await {
                Ok(n) => (n, None),
                Err(e) => {
                    tracing::warn!(tier = t.tier(), guid = %what.guid, error = %e, "a tier could not erase");
                    (0, Some(e))
                }
            };
            out.push(TierErased {
                tier: t.tier().to_string(),
                removed,
                error,
            });
        }
        out
    }

    async fn announce(&self, guid: &str) -> Option<String> {
        let b = self.broadcast.as_ref()?;
        Some(match b.announce(guid).await {
            Ok(()) => "announced".to_string(),
            Err(e) => format!("not announced: {e}"),
        })
    }
}
