//! The refresher: lists the days of the window not listed yet (newest first, within a
//! share of the budget), re-lists the recent tail every `--refresh`, and re-lists
//! whole days as the age [`Policy`] makes them due (paced). Changes reach the mount
//! through [`Catalog::on_change`]; the catalog knows nothing of FUSE.
//!
//! Invariants: two lanes run side by side — the tail (quick, on time, so new calls
//! appear within `--refresh`) and days (slow, paced) — so a long day listing never
//! delays the tail; a failed listing keeps what was listed and is tried again later;
//! nothing here blocks a runtime worker.

use std::sync::Arc;
use std::time::Duration;

use time::Date;

use super::listing::DayState;
use super::{Catalog, CatalogError, InteractionEntry, Policy, Refresh, RelistError};
use crate::version::ContentKey;

/// What a listing change asks of the layers that cache content.
#[derive(Debug, Clone)]
pub enum Change {
    /// Drop what the kernel caches of this inode (pages, attributes, listing).
    Invalidate(u64),
    /// Drop the directory entry `name` of `parent` (a view's name now means another
    /// call, or nothing).
    Entry { parent: u64, name: String },
    /// Drop what the tiers keep of this content version (it changed).
    Purge(ContentKey),
    /// The API no longer has interaction `guid` (a re-list no longer shows it, or
    /// `GET /interactions/{guid}` answered 404): erase it from every tier. `entry` is
    /// what the listing held of it, when a re-list already took it out.
    Gone {
        guid: String,
        entry: Option<Arc<InteractionEntry>>,
    },
    /// The API no longer has content `key` of `guid` (which it still has): erase that
    /// file's `version` from every tier.
    ContentGone {
        guid: String,
        key: String,
        version: ContentKey,
    },
}

/// What the refresher (and `vccfs refresh`) asks of the catalog.
impl Catalog {
    /// Re-list the recent tail (moving a rolling window's end to now first).
    pub(crate) async fn refresh_tail(&self, policy: &Policy) -> Result<Refresh, CatalogError> {
        self.roll();
        let now = crate::util::now_secs();
        let last = *self.last_tail.lock();
        let Some(tail) = policy.tail(now, self.window(), last) else {
            // No tail to search (the window ended long ago): still ask the token
            // endpoint, so a revoked (or restored) client is found out.
            self.client.probe_access().await;
            return Ok(Refresh::default());
        };
        let r = self.list(tail.range, None).await?;
        let listed = if tail.whole {
            self.listing.read().count_between(tail.range)
        } else {
            0
        };
        let mut last = self.last_tail.lock();
        last.end = Some(last.end.map_or(tail.range.1, |l| l.max(tail.range.1)));
        if tail.whole {
            last.reached = Some((now, listed));
        }
        Ok(r)
    }

    /// Re-list now, for `vccfs refresh`: the recent tail (`days` empty, as the next
    /// `--refresh` would), or each of `days` whole (each must be in the window: checked
    /// before anything is sent). Returns what changed, by day.
    pub async fn relist(&self, days: &[Date]) -> Result<Refresh, RelistError> {
        if let Some(&day) = days.iter().find(|d| !self.in_window(**d)) {
            let (from, to) = self.window();
            return Err(RelistError::OutOfWindow { day, from, to });
        }
        if days.is_empty() {
            // As the next `--refresh` would, reaching back the whole tail.
            let policy = Policy {
                reach_every: Duration::ZERO,
                ..Policy::new(Some(Duration::from_secs(60)))
            };
            return Ok(self.refresh_tail(&policy).await?);
        }
        let mut all = Refresh::default();
        for &day in days {
            let lock = self.day_lock(day);
            let _one = lock.lock().await;
            all.merge(self.list(self.part(day), None).await?);
        }
        Ok(all)
    }

    /// The listed day most overdue by the age policy.
    pub(crate) fn due_day(&self, policy: &Policy) -> Option<Date> {
        let now = crate::util::now_secs();
        let l = self.listing.read();
        let days: Vec<(Date, DayState)> = self
            .window_days()
            .into_iter()
            .filter_map(|d| l.state(d).map(|s| (d, s)))
            .collect();
        drop(l);
        policy.due(now, days)
    }
}

/// Keep `catalog` listed and fresh by `policy`, on `rt`, until the task is aborted or
/// the runtime ends. `max_rpm` is the mount's budget (`None`: unlimited).
pub fn spawn_refresher(
    rt: &tokio::runtime::Handle,
    catalog: Arc<Catalog>,
    policy: Policy,
    max_rpm: Option<u32>,
) -> tokio::task::JoinHandle<()> {
    rt.spawn(async move {
        tokio::join!(
            tail_lane(&catalog, &policy),
            day_lane(&catalog, &policy, max_rpm)
        );
    })
}

async fn tail_lane(catalog: &Catalog, policy: &Policy) {
    let Some(every) = policy.every else {
        return;
    };
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match catalog.refresh_tail(policy).await {
            Ok(r) if !r.is_empty() => tracing::info!(
                files = r.files.len(),
                dirs = r.dirs.len(),
                "the recent tail changed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "re-listing the tail failed; trying again"),
        }
        // Interactions opened by name outside the listing: one lookup each once due
        // by their day's age, at most a few a tick (see `erase.rs`).
        catalog.recheck_extra(policy).await;
    }
}

/// A listing parses a day's worth of JSON and frees it: hand the freed pages back to
/// the system, so the daemon's RSS is the catalog, not the high-water mark of parsing.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

async fn day_lane(catalog: &Catalog, policy: &Policy, max_rpm: Option<u32>) {
    let first = max_rpm.and_then(|r| Policy::pace(f64::from(r) * policy.background_share));
    let relist = Policy::pace(f64::from(policy.relist_rpm));
    let started = std::time::Instant::now();
    let mut announced = false;
    let mut backoff = Duration::from_secs(1);
    loop {
        // Between listings, the same pause as between pages (no lock is held here).
        let (listed, pause) = match catalog.list_next_unlisted(first, policy).await {
            Some(r) => (r, first),
            None => {
                if !announced {
                    announced = true;
                    tracing::info!(
                        interactions = catalog.listed_len(),
                        seconds = started.elapsed().as_secs_f64(),
                        "every day of the window is listed"
                    );
                }
                match catalog.due_day(policy) {
                    Some(day) => {
                        let began = std::time::Instant::now();
                        let listed = catalog.list_day(day, relist, true).await;
                        // Whole-day re-lists take at most their share of the time.
                        let rest = policy.rest_after(began.elapsed());
                        (listed, Some(relist.unwrap_or_default() + rest))
                    }
                    None => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
        };
        match listed {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                give_back_freed_memory();
                if let Some(p) = pause {
                    tokio::time::sleep(p).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing days failed; trying again later");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::mock::{self, MockMeta};
    use crate::meta::MetaSource;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_file_is_invalidated() {
        let now = crate::util::now_secs();
        let items = (1..=3)
            .map(|n| mock::interaction(&mock::guid(n), now - time::Duration::hours(n.into())))
            .collect();
        let api = Arc::new(MockMeta::new(items));
        let source: Arc<dyn MetaSource> = api.clone();
        let (catalog, _) = Catalog::open(
            source,
            now - time::Duration::days(31),
            now + time::Duration::minutes(1),
            None,
        )
        .await
        .expect("list");
        let catalog = Arc::new(catalog);
        catalog.list_window().await.expect("list the window");
        let entry = catalog
            .listed_range(0, 1)
            .first()
            .cloned()
            .expect("an interaction");
        let file = catalog.files(&entry).into_iter().next().expect("a file");

        let (tx, rx) = std::sync::mpsc::channel();
        let tx = parking_lot::Mutex::new(tx);
        catalog.on_change(move |change| {
            if let Change::Invalidate(ino) = change {
                let _ = tx.lock().send(ino);
            }
        });
        // Every day is due again 100 ms after its listing.
        let policy = Policy {
            ages: Vec::new(),
            old: Duration::from_millis(100),
            relist_rpm: 0,
            relist_duty: 1.0,
            ..Policy::new(Some(Duration::from_millis(50)))
        };
        let task = spawn_refresher(
            &tokio::runtime::Handle::current(),
            Arc::clone(&catalog),
            policy,
            None,
        );
        assert!(api.mutate(&entry.guid(), &file.key, 60), "mutate");
        let seen = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(ino) if ino == file.ino => return true,
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
            false
        })
        .await
        .expect("join");
        task.abort();
        assert!(seen, "the changed file's inode was not invalidated");
    }
}
