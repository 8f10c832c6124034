//! The tiers an erasure reaches beyond the catalog and memory (`crate::erase`): one
//! small adapter per tier (disk, the fleet's Redis), the fleet's announcements, and
//! the listener that erases here what other hosts announce ([`listen`]).
//!
//! Invariants: an adapter never blocks a runtime worker (the disk's work runs on the
//! blocking pool) and reports failure as an error string, never a panic. An erasure
//! heard from the fleet is erased with [`Eraser::erase_local`], which never announces
//! it again (no echo storms); hearing one twice costs a second, empty erasure.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use tokio::runtime::Handle;

use crate::erase::{Broadcast, EraseTier, Eraser, Erasure};
use crate::fleet::Fleet;
use crate::source::disk::DiskStore;

/// The tiers to ask, in order: disk, then (once wired) the shared Redis.
pub(super) fn tiers(
    disk: Option<&Arc<DiskStore>>,
    shared: Option<&Fleet>,
) -> Vec<Arc<dyn EraseTier>> {
    let mut out: Vec<Arc<dyn EraseTier>> = Vec::new();
    if let Some(d) = disk {
        out.push(Arc::new(DiskErase(Arc::clone(d))));
    }
    if let Some(s) = shared {
        out.push(Arc::new(SharedErase(s.clone())));
    }
    out
}

/// The fleet's announcements of erasures (with `--redis`).
pub(super) fn broadcast(shared: Option<&Fleet>) -> Option<Arc<dyn Broadcast>> {
    shared.map(|s| Arc::new(SharedErase(s.clone())) as Arc<dyn Broadcast>)
}

/// The fleet's Redis: every block value of the interaction (all versions and block
/// sizes; for one file gone, its interaction's values all go too — a refetch, never a
/// wrong byte), and the tombstone other hosts hear.
struct SharedErase(Fleet);

impl EraseTier for SharedErase {
    fn tier(&self) -> &'static str {
        "redis"
    }

    fn erase(&self, what: &Erasure) -> BoxFuture<'static, Result<u64, String>> {
        let (shared, guid) = (self.0.clone(), what.guid.clone());
        async move { persist(|| shared.erase_guid(&guid)).await }.boxed()
    }
}

impl Broadcast for SharedErase {
    fn announce(&self, guid: &str) -> BoxFuture<'static, Result<(), String>> {
        let (shared, guid) = (self.0.clone(), guid.to_string());
        async move { persist(|| shared.announce_erasure(&guid)).await }.boxed()
    }
}

/// How long an erasure keeps asking Redis through timeouts and a cooling breaker: an
/// erasure (or its announcement) lost to a busy moment would leave copies behind.
const PERSIST_FOR: Duration = Duration::from_secs(10);

/// `op` until it succeeds or [`PERSIST_FOR`] has passed (backing off 100 ms → 1 s).
async fn persist<T, F, Fut>(mut op: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, crate::fleet::FleetError>>,
{
    let deadline = tokio::time::Instant::now() + PERSIST_FOR;
    let mut pause = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "the fleet's Redis did not take an erasure yet; again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// How long a mount keeps trying to read the tombstones it missed (Redis connects in
/// the background and may be down).
const CATCH_UP_FOR: Duration = Duration::from_secs(120);

/// Erase here what the fleet announces from now on, and first what it announced while
/// this host was away: tombstones newer than the time kept in `seen` (a file beside
/// the disk cache, which is what could hold copies; without one, none are read).
pub(super) fn listen(rt: &Handle, shared: Fleet, eraser: Arc<Eraser>, seen: Option<PathBuf>) {
    let mut heard = {
        let _rt = rt.enter();
        shared.subscribe_erasures()
    };
    let live = Arc::clone(&eraser);
    rt.spawn(async move {
        while let Some(guid) = heard.recv().await {
            let r = live.erase_local(&guid).await;
            tracing::info!(report = ?r, "erased an interaction the fleet announced");
        }
    });
    let Some(seen) = seen else {
        return;
    };
    rt.spawn(async move {
        let since = read_seen(&seen);
        let deadline = tokio::time::Instant::now() + CATCH_UP_FOR;
        let missed = loop {
            match shared.erasures_since(since).await {
                Ok(m) => break m,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "tombstones not readable yet; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the fleet's tombstones");
                    return;
                }
            }
        };
        for (guid, at_ms) in missed {
            let r = eraser.erase_local(&guid).await;
            tracing::info!(report = ?r, "erased an interaction the fleet erased while away");
            write_seen(&seen, at_ms);
        }
    });
}

/// The time (Redis's clock, unix ms) of the last tombstone applied here; 0: none.
fn read_seen(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_seen(path: &Path, at_ms: u64) {
    let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
    let written = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| f.write_all(at_ms.to_string().as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), error = %e, "could not record the tombstones applied");
    }
}

/// The disk tier: every version of a whole interaction (those of earlier mounts and
/// windows too: `DiskStore::erase_guid`), or the known versions of one file; on the
/// blocking pool, done when the report is made.
struct DiskErase(Arc<DiskStore>);

impl EraseTier for DiskErase {
    fn tier(&self) -> &'static str {
        "disk"
    }

    fn erase(&self, what: &Erasure) -> BoxFuture<'static, Result<u64, String>> {
        let disk = Arc::clone(&self.0);
        let (guid, one_file) = (what.guid.clone(), what.key.is_some());
        let versions = what.versions.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                if one_file {
                    for v in &versions {
                        disk.purge(*v);
                    }
                    disk.flush();
                    versions.len() as u64
                } else {
                    disk.erase_guid(&guid)
                }
            })
            .await
            .map_err(|e| format!("the disk erasure failed: {e}"))
        }
        .boxed()
    }
}
