//! The tiers an erasure reaches beyond the catalog and memory (`crate::erase`): one
//! small adapter per tier, so each can be swapped for the tier's own erasure at merge.
//!
//! Invariants: an adapter never blocks a runtime worker (the disk's work runs on the
//! blocking pool) and reports failure as an error string, never a panic.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use crate::erase::{Broadcast, EraseTier, Erasure};
use crate::shared::Shared;
use crate::source::disk::DiskStore;

/// The tiers to ask, in order: disk, then (once wired) the shared Redis.
pub(super) fn tiers(
    disk: Option<&Arc<DiskStore>>,
    shared: Option<&Shared>,
) -> Vec<Arc<dyn EraseTier>> {
    let mut out: Vec<Arc<dyn EraseTier>> = Vec::new();
    if let Some(d) = disk {
        out.push(Arc::new(DiskErase(Arc::clone(d))));
    }
    // TODO(merge: shared erasure): with `Shared::erase_guid(&self, guid) ->
    // Result<u64, SharedError>`, push an adapter here:
    //   fn tier(&self) -> &'static str { "shared" }
    //   fn erase(&self, what) { let s = self.0.clone(); let g = what.guid.clone();
    //       async move { s.erase_guid(&g).await.map_err(|e| e.to_string()) }.boxed() }
    let _ = shared;
    out
}

/// The fleet's announcements of erasures, once wired.
///
/// TODO(merge: fleet erasure): with `Shared::announce_erasure(guid)`, return an
/// adapter whose `announce` calls it; and in `serve.rs`, spawn a task on
/// `Shared::subscribe_erasures()` (and `erasures_since(ms)` after a reconnect) that
/// calls `Eraser::erase_local(guid)` for each guid heard (which never re-announces).
pub(super) fn broadcast(shared: Option<&Shared>) -> Option<Arc<dyn Broadcast>> {
    let _ = shared;
    None
}

/// The disk tier, with what exists on this branch: every content version the catalog
/// knew of the guid is purged, then the queue is flushed so the files are gone when
/// the report is made.
///
/// TODO(merge: disk erasure): replace the body of `erase` with
/// `DiskStore::erase_guid(&self, guid) -> u64` (blocking; every version of the guid
/// on disk, those of earlier mounts too) for a whole interaction; keep the per-version
/// purge for `what.key.is_some()`.
struct DiskErase(Arc<DiskStore>);

impl EraseTier for DiskErase {
    fn tier(&self) -> &'static str {
        "disk"
    }

    fn erase(&self, what: &Erasure) -> BoxFuture<'static, Result<u64, String>> {
        let disk = Arc::clone(&self.0);
        let versions = what.versions.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                for v in &versions {
                    disk.purge(*v);
                }
                disk.flush();
                versions.len() as u64
            })
            .await
            .map_err(|e| format!("the disk erasure failed: {e}"))
        }
        .boxed()
    }
}
