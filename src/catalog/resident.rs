//! The catalog's memory budget (`--catalog-memory`): which days of the listing stay
//! in memory, whatever the window.
//!
//! Each day in memory is accounted by an estimate of its heap bytes ([`day_bytes`]:
//! the compact entries, their slots in the guid index and in the day's array). When
//! the days in memory hold more than the budget, the least recently used day leaves
//! memory (`Listing::evict`): its entries and index slots go, and what stays is an
//! `Away` — its length and totals, and the sorted 64-bit hashes of its guids (8 bytes
//! an interaction, the "smaller index" a lookup by guid consults). A day is used (its
//! clock touched) by a lookup of one of its guids, a `readdir` of it, a page of
//! `/interactions` and a listing.
//!
//! A day comes back when something needs it: from its saved file (`<day>.day`,
//! sealed and bound to its day, `persist.rs`) — the same listing it had, since every
//! listing saves its day before applying it — streamed and made compact one
//! interaction at a time, or, when there is no disk cache or the file is missing or
//! damaged, by listing the day again from the API (counted apart: `relists`). Open
//! handles keep their own `OpenVersion`, so reads of open files go on.
//!
//! A catalog opened on saved days starts with the window's whole days out of memory,
//! as their indexes (`<day>.idx`, `persist/index.rs`) describe them: a remount reads 8
//! bytes an interaction, not every day parsed, so it is live at once whatever the
//! window. Days without a usable index (the window's partial first and last days, an
//! index stale or damaged) are read whole, as a listing would apply them.
//!
//! Invariants:
//! - **Eviction never causes a search of a day that is on disk.** An away day keeps
//!   its state (`Listed { at }` or `Saved`), so neither the on-demand listing nor the
//!   refresh policy sees it as unlisted; it is re-listed from the API only by the age
//!   policy (as if in memory), or when its saved file cannot be read.
//! - Only days whose memory is what was saved leave memory with a disk cache: a day
//!   changed in memory since (a lookup found a new version: `dirty`) stays until it is
//!   listed whole again; a `Partial` day (only ranges of it listed) never leaves.
//! - The day being used is never the one evicted to make room for it, so a day larger
//!   than the whole budget is still served (alone).
//! - A day leaves its view (`views`) with its entries; it is rebuilt when asked for.
//! - Bringing a day back and evicting one are serialised (`reload`), and never done
//!   under the listing's or the views' lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use time::Date;

use super::entry::FileMeta;
use super::listing::DayState;
use super::{Catalog, CatalogError, InteractionEntry};

/// Heap bytes an allocation costs beyond its size (glibc's header, rounding).
const MALLOC: u64 = 16;
/// A slot of the guid index (`[u8; 16]` → `(Date, u32)`, with the hash table's slack)
/// and of the day's array of entries.
const INDEX: u64 = 40 + 8;

/// Estimated heap bytes of one entry in memory (see `footprint.rs`, which checks the
/// estimate against what an allocator counts).
pub(super) fn entry_bytes(e: &InteractionEntry) -> u64 {
    let size = |n: usize| n as u64;
    let mut bytes = size(std::mem::size_of::<InteractionEntry>()) + 16 + MALLOC + INDEX;
    let files = e.metas().count();
    if files > 0 {
        bytes += size(files * std::mem::size_of::<FileMeta>()) + MALLOC;
    }
    let (_, from, to, agents) = e.parties();
    if !agents.is_empty() {
        bytes += size(std::mem::size_of_val(agents)) + MALLOC;
    }
    for text in [from, to].into_iter().flatten() {
        if text.len() > 22 {
            bytes += size(text.len()) + MALLOC;
        }
    }
    bytes
}

/// Estimated heap bytes of a day's entries in memory.
pub(super) fn day_bytes(entries: &[Arc<InteractionEntry>]) -> u64 {
    entries.iter().map(|e| entry_bytes(e)).sum::<u64>()
}

/// The budget and what it did.
#[derive(Debug)]
pub(super) struct Resident {
    budget: AtomicU64,
    /// Serialises bringing days back (and the evictions that make room for them).
    reload: Mutex<()>,
    evictions: AtomicU64,
    reloads: AtomicU64,
    relists: AtomicU64,
}

impl Default for Resident {
    fn default() -> Self {
        Resident::within(u64::MAX)
    }
}

impl Resident {
    pub fn within(budget: u64) -> Resident {
        Resident {
            budget: AtomicU64::new(budget),
            reload: Mutex::new(()),
            evictions: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            relists: AtomicU64::new(0),
        }
    }
}

/// The catalog's memory against its budget (`vccfs status`, metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CatalogMemory {
    /// Days of the listing whose entries are in memory.
    pub days_in_memory: u64,
    /// Days that left memory (on disk only; without a disk cache, listed again when
    /// needed).
    pub days_on_disk_only: u64,
    /// Estimated bytes of the days in memory.
    pub bytes: u64,
    /// `--catalog-memory` (`u64::MAX`: none).
    pub budget: u64,
    /// Days that left memory, since the mount.
    pub evictions: u64,
    /// Days brought back from the saved catalog.
    pub reloads: u64,
    /// Days listed again from the API because they were neither in memory nor saved.
    pub relists: u64,
}

impl Catalog {
    /// Keep at most `bytes` of the listing in memory (days beyond it leave, least
    /// recently used first).
    pub fn set_memory_budget(&self, bytes: u64) {
        self.resident.budget.store(bytes, Ordering::Relaxed);
        self.enforce(None);
    }

    /// The catalog's memory against its budget.
    pub fn memory(&self) -> CatalogMemory {
        let l = self.listing.read();
        let (mut days_in_memory, mut days_on_disk_only) = (0, 0);
        for (_, d) in l.days() {
            if d.away.is_some() {
                days_on_disk_only += 1;
            } else if !d.entries.is_empty() {
                days_in_memory += 1;
            }
        }
        let r = &self.resident;
        CatalogMemory {
            days_in_memory,
            days_on_disk_only,
            bytes: l.bytes(),
            budget: r.budget.load(Ordering::Relaxed),
            evictions: r.evictions.load(Ordering::Relaxed),
            reloads: r.reloads.load(Ordering::Relaxed),
            relists: r.relists.load(Ordering::Relaxed),
        }
    }

    /// Evict the least recently used days (never `keep`) until the days in memory fit
    /// the budget, or none may leave. Call with no catalog lock held.
    pub(super) fn enforce(&self, keep: Option<Date>) {
        let budget = self.resident.budget.load(Ordering::Relaxed);
        let saved = self.store.is_some();
        loop {
            let victim = {
                let l = self.listing.read();
                if l.bytes() <= budget {
                    return;
                }
                l.coldest(keep, |_, d| {
                    matches!(d.state, DayState::Listed { .. } | DayState::Saved { .. })
                        && !(saved && d.dirty)
                })
            };
            let Some(day) = victim else {
                return;
            };
            let (entries, epoch) = self.listing.write().evict(day);
            self.views.forget_day(day);
            tracing::debug!(%day, interactions = entries.len(), "a day left memory");
            if !entries.is_empty() {
                let facets = super::views::facet_hashes(&entries);
                self.listing.write().set_away_facets(day, epoch, facets);
            }
            drop(entries);
            self.resident.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bring `day` back from its saved file if it is out of memory. True when it is in
    /// memory now; false when it has no readable saved file (or there is no store).
    pub(super) fn reload_saved(&self, day: Date) -> bool {
        if !self.listing.read().is_away(day) {
            return true;
        }
        let Some(store) = &self.store else {
            return false;
        };
        let _one = self.resident.reload.lock();
        if !self.listing.read().is_away(day) {
            return true;
        }
        let Some(entries) = self.load_saved(store, day) else {
            return false;
        };
        if self.listing.write().restore(day, entries) {
            self.resident.reloads.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%day, "a day came back from the saved catalog");
        }
        self.enforce(Some(day));
        true
    }

    /// `day`'s part of the window from its saved file, made entries one at a time as
    /// the file is read (`CatalogStore::load_day_with`), in start order.
    pub(super) fn load_saved(
        &self,
        store: &super::persist::CatalogStore,
        day: Date,
    ) -> Option<Vec<Arc<InteractionEntry>>> {
        store.load_day_with(
            day,
            self.part(day),
            |i| Arc::new(self.entry(i)),
            |a, b| {
                a.start
                    .cmp(&b.start)
                    .then_with(|| (*a.guid()).cmp(&*b.guid()))
            },
        )
    }

    /// Make sure `day` is in memory: from its saved file, else (no disk cache, or the
    /// file is gone) listed again from the API, once however many ask.
    pub(super) async fn ensure_day(&self, day: Date) -> Result<(), CatalogError> {
        for _ in 0..4 {
            if !self.listing.read().is_away(day) || self.reload_saved(day) {
                return Ok(());
            }
            let lock = self.day_lock(day);
            let _one = lock.lock().await;
            if !self.listing.read().is_away(day) {
                return Ok(());
            }
            self.resident.relists.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%day, "a day out of memory and not saved is listed again");
            self.list(self.part(day), None).await?;
        }
        Ok(())
    }

    /// A known interaction, its day brought back into memory first if it left (from
    /// disk, or listed again): what a lookup, getattr or readdir asks before the
    /// synchronous [`Catalog::known`]. No request for a guid the catalog does not know.
    pub async fn known_async(
        &self,
        guid: &str,
    ) -> Result<Option<Arc<InteractionEntry>>, CatalogError> {
        if let Some(e) = self.known(guid) {
            return Ok(Some(e));
        }
        let away = self.listing.read().away_day_of(guid);
        match away {
            Some(day) => {
                self.ensure_day(day).await?;
                Ok(self.known_here(guid))
            }
            None => Ok(None),
        }
    }

    /// Listed interactions at positions `[from, from + n)`, or the first part of them
    /// that needs at most one day brought back into memory: the first day is brought
    /// back if it left (and others may leave), later days give their part only while
    /// they are in memory. So a walk of the whole window stays within the budget, and
    /// a page never needs two days brought back at once (with a budget of about one
    /// day, the page that straddles two would bring each back in turn for every part
    /// of it the kernel asks for again).
    pub async fn listed_page(
        &self,
        from: usize,
        n: usize,
    ) -> Result<Vec<Arc<InteractionEntry>>, CatalogError> {
        let parts = self
            .listing
            .read()
            .days_of_range(from, from.saturating_add(n));
        let Some(&(day, a, b)) = parts.first() else {
            return Ok(Vec::new());
        };
        let mut out = self
            .with_day(day, |d| {
                let b = b.min(d.entries.len());
                d.entries[a.min(b)..b].to_vec()
            })
            .await?;
        if out.len() < b - a {
            // The day changed meanwhile: what follows would not be at its position.
            return Ok(out);
        }
        let l = self.listing.read();
        for &(day, a, b) in &parts[1..] {
            match l.day(day) {
                Some(d) if d.away.is_none() && b <= d.entries.len() => {
                    l.touch(day);
                    out.extend(d.entries[a.min(b)..b].iter().cloned());
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// `read` of `day`'s entries, the day brought back into memory first (and touched):
    /// empty if the window has no such day.
    async fn with_day<T: Default>(
        &self,
        day: Date,
        read: impl Fn(&super::listing::Day) -> T,
    ) -> Result<T, CatalogError> {
        for _ in 0..4 {
            self.ensure_day(day).await?;
            let l = self.listing.read();
            match l.day(day) {
                None => return Ok(T::default()),
                Some(d) if d.away.is_none() => {
                    l.touch(day);
                    return Ok(read(d));
                }
                // Gone again before this reader had it (others made room).
                Some(_) => {}
            }
        }
        Err(CatalogError::Unsettled { day })
    }

    /// Guids of `day` at positions `[from, from + n)` of its listing (start order):
    /// what one `readdir` of `by-date/<day>` hands out, so a day of 33k calls is not
    /// copied whole for each of the hundreds of pages the kernel asks for.
    pub async fn day_page(
        &self,
        day: Date,
        from: usize,
        n: usize,
    ) -> Result<Vec<String>, CatalogError> {
        if self.in_window(day) {
            return self.window_day_page(day, from, n).await;
        }
        let all = self.outside_day(day).await?;
        Ok(all.iter().skip(from).take(n).cloned().collect())
    }

    /// [`Catalog::day_page`] of a day of the window: listed first if it is not yet
    /// (saved days answer at once), brought back into memory if it left.
    pub(super) async fn window_day_page(
        &self,
        day: Date,
        from: usize,
        n: usize,
    ) -> Result<Vec<String>, CatalogError> {
        if !matches!(self.state(day), Some(DayState::Saved { .. })) {
            self.list_day(day, None, false).await?;
        }
        self.with_day(day, |d| {
            let to = from.saturating_add(n).min(d.entries.len());
            d.entries[from.min(to)..to]
                .iter()
                .map(|e| e.guid().to_string())
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests;
