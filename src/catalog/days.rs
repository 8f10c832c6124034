//! Listing days and ranges of the window, on demand and for the refresher.
//!
//! Every search is numbered when it begins. Applying its result replaces what the
//! catalog holds in its range, except in the parts that a search begun later has
//! already applied: a slow, paced re-list of a whole day never undoes what a quick
//! tail re-list found in the meantime. A day becomes `Listed` only when one search
//! covered its whole part of the window.
//!
//! Invariants: on-demand listing of one day is single-flight (a per-day lock, looked
//! at again once held); a day listed whole is never listed on demand again (the
//! refresher re-lists it by age); a failed search changes nothing; listings apply one
//! at a time (the save lock, held from choosing what a listing may change to applying
//! and saving it), so a listing that began earlier can never apply after a later one
//! that chose its pieces without knowing of it; a day's `Listed` time never moves back.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use time::{Date, OffsetDateTime};

use super::listing::DayState;
use super::{Catalog, CatalogError, Checked, DayDiff, InteractionEntry, Policy, Refresh};
use crate::api::ApiError;
#[cfg(test)]
use crate::model::Interaction;
use crate::model::MAX_PAGE_LIMIT;

type Entries = Vec<Arc<InteractionEntry>>;

/// Applied ranges remembered, for ordering listings that overlap in time.
const APPLIED_KEEP: usize = 512;

type Range = (OffsetDateTime, OffsetDateTime);

pub(super) fn day_range(day: Date) -> Range {
    let start = day.midnight().assume_utc();
    (start, start + time::Duration::DAY)
}

/// `range` less every range in `minus`, in order.
fn subtract(range: Range, minus: &[Range]) -> Vec<Range> {
    let mut pieces = vec![range];
    for &(ma, mb) in minus {
        pieces = pieces
            .into_iter()
            .flat_map(|(a, b)| {
                let mut out = Vec::with_capacity(2);
                if ma >= b || mb <= a {
                    out.push((a, b));
                } else {
                    if a < ma {
                        out.push((a, ma));
                    }
                    if mb < b {
                        out.push((mb, b));
                    }
                }
                out
            })
            .collect();
    }
    pieces
}

impl Catalog {
    /// The part of `day` inside the window.
    pub(super) fn part(&self, day: Date) -> Range {
        let (from, to) = self.window();
        let (a, b) = day_range(day);
        (a.max(from), b.min(to))
    }

    pub(super) fn in_window(&self, day: Date) -> bool {
        let (a, b) = self.part(day);
        a < b
    }

    pub(super) fn day_lock(&self, day: Date) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(self.day_locks.lock().entry(day).or_default())
    }

    pub(super) fn state(&self, day: Date) -> Option<DayState> {
        self.listing.read().state(day)
    }

    /// All of `[a, b)`, one page after another, `pace` apart, each page made compact
    /// as it comes (so a listing never holds more than one page of parsed JSON).
    async fn search(&self, (a, b): Range, pace: Option<Duration>) -> Result<Entries, ApiError> {
        let mut pager = self.client.search(a, b);
        let mut all = Vec::new();
        let mut first = true;
        while !pager.is_done() {
            if let (false, Some(p)) = (first, pace) {
                tokio::time::sleep(p).await;
            }
            first = false;
            match pager.next_page().await? {
                Some(page) => all.extend(page.into_iter().map(|i| Arc::new(self.entry(i)))),
                None => break,
            }
        }
        Ok(all)
    }

    /// Search `range` and apply what it lists; days it covers whole become `Listed`.
    pub(super) async fn list(
        &self,
        range: Range,
        pace: Option<Duration>,
    ) -> Result<Refresh, CatalogError> {
        let seq = self.search_seq.fetch_add(1, Ordering::Relaxed);
        let began = crate::util::now_secs();
        let items = self.search(range, pace).await?;
        // From here to the last apply, one listing at a time (see the essay).
        let in_order = self.save_lock.lock().await;
        let pieces = {
            let mut applied = self.applied.lock();
            let newer: Vec<Range> = applied
                .iter()
                .filter(|(s, _, _)| *s > seq)
                .map(|&(_, a, b)| (a, b))
                .collect();
            applied.push((seq, range.0, range.1));
            if applied.len() > APPLIED_KEEP {
                let drop = applied.len() - APPLIED_KEEP;
                applied.drain(..drop);
            }
            subtract(range, &newer)
        };
        let mut by_day: BTreeMap<Date, Entries> = BTreeMap::new();
        for i in items {
            if pieces.iter().any(|&(a, b)| i.start >= a && i.start < b) {
                by_day.entry(i.start.date()).or_default().push(i);
            }
        }
        self.save(&pieces, &by_day, began).await;
        let mut refresh = Refresh::default();
        let mut day = range.0.date();
        while day_range(day).0 < range.1 {
            let part = self.part(day);
            let mut items = by_day.remove(&day).unwrap_or_default();
            for &(a, b) in &pieces {
                let (a, b) = (a.max(part.0), b.min(part.1));
                if a >= b {
                    continue;
                }
                let (inside, rest): (Vec<_>, Vec<_>) =
                    items.into_iter().partition(|i| i.start >= a && i.start < b);
                items = rest;
                refresh.merge(self.apply_day(day, (a, b), inside, None));
            }
            if range.0 <= part.0 && part.1 <= range.1 && part.0 < part.1 {
                let mut l = self.listing.write();
                // A later listing's time stands (it may have applied first).
                if !matches!(l.state(day), Some(DayState::Listed { at }) if at > began) {
                    l.set_state(day, DayState::Listed { at: began });
                }
            }
            match day.next_day() {
                Some(d) => day = d,
                None => break,
            }
        }
        drop(in_order);
        self.notify(&refresh);
        Ok(refresh)
    }

    /// Save what a listing begun at `began` found in `pieces` (the saved days follow
    /// the listing); the caller holds the save lock.
    async fn save(
        &self,
        pieces: &[Range],
        by_day: &BTreeMap<Date, Entries>,
        began: OffsetDateTime,
    ) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let pieces = pieces.to_vec();
        let items: Entries = by_day.values().flatten().cloned().collect();
        let saved = tokio::task::spawn_blocking(move || {
            pieces.iter().try_for_each(|&(a, b)| {
                let inside: Entries = items
                    .iter()
                    .filter(|i| i.start >= a && i.start < b)
                    .cloned()
                    .collect();
                store.save(a, b, &inside, began)
            })
        })
        .await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the listing"),
            Err(e) => tracing::warn!(error = %e, "saving the listing failed"),
        }
    }

    /// Make `entries` (in start order) what `day` holds in `range`.
    pub(super) fn apply_day(
        &self,
        day: Date,
        range: Range,
        entries: Entries,
        state: Option<DayState>,
    ) -> Refresh {
        // A day out of memory comes back first (what the listing replaces is compared
        // with what it held); without a saved day, `splice` starts it afresh.
        self.reload_saved(day);
        let mut refresh = Refresh::default();
        let mut diff = DayDiff::default();
        let mut looked_up = Vec::new();
        {
            let l = self.listing.read();
            let extra = self.extra.read();
            for entry in &entries {
                let guid = entry.guid();
                let previous = l.get_key(entry.guid_key()).or_else(|| {
                    let e = extra.get(&*guid)?;
                    looked_up.push(guid.to_string());
                    Some(e)
                });
                match previous {
                    None => {
                        refresh.dirs.push(super::ino::day(day));
                        diff.added.push(guid.to_string());
                    }
                    Some(p) => {
                        let files = refresh.files.len();
                        self.changes(p, entry, &mut refresh.files);
                        // A file the API no longer lists (its interaction still
                        // there): erased from every tier, as a lookup would.
                        let gone = self.removed_files(p, entry).into_iter();
                        refresh
                            .content_gone
                            .extend(gone.map(|(key, v)| (guid.to_string(), key, v)));
                        let same_keys = super::entry::same_keys(p, entry);
                        if !same_keys {
                            refresh.dirs.push(entry.ino());
                        }
                        if !same_keys || refresh.files.len() > files {
                            diff.changed.push(guid.to_string());
                        }
                    }
                }
            }
        }
        {
            // What the API lists exists: no longer "no such guid" (an erased guid the
            // API lists again, or one looked up before it existed), or the listing
            // would show a name whose lookup is ENOENT.
            let mut negative = self.negative.lock();
            if !negative.is_empty() {
                for entry in &entries {
                    negative.remove(&*entry.guid());
                }
            }
        }
        let gone = self.listing.write().splice(day, range, entries, state);
        diff.removed
            .extend(gone.iter().map(|e| e.guid().to_string()));
        if diff != DayDiff::default() {
            refresh.days.insert(day, diff);
        }
        if !looked_up.is_empty() {
            let mut extra = self.extra.write();
            for g in &looked_up {
                extra.remove(g);
            }
        }
        refresh.purged.extend(refresh.files.iter().map(|c| c.old));
        for e in gone {
            // The API no longer lists it: erased from every tier (the hook's job).
            refresh.dirs.push(super::ino::day(day));
            refresh.gone.push(e);
        }
        if !refresh.dirs.is_empty() {
            refresh
                .dirs
                .extend([super::ino::INTERACTIONS, super::ino::BY_DATE]);
        }
        refresh.dirs.sort_unstable();
        refresh.dirs.dedup();
        self.relisted(day);
        self.enforce(Some(day));
        refresh
    }

    /// Make `items` the whole window's listing, every day listed (tests).
    #[cfg(test)]
    pub(crate) fn apply(&self, items: Vec<Interaction>) -> Refresh {
        let mut by_day: BTreeMap<Date, Entries> = BTreeMap::new();
        for i in items {
            by_day
                .entry(i.start.date())
                .or_default()
                .push(Arc::new(self.entry(i)));
        }
        let at = crate::util::now_secs();
        let mut refresh = Refresh::default();
        for day in self.window_days() {
            let items = by_day.remove(&day).unwrap_or_default();
            let part = self.part(day);
            refresh.merge(self.apply_day(day, part, items, Some(DayState::Listed { at })));
        }
        refresh
    }

    /// List `day` whole now unless it is listed already (`force`: even then).
    pub(crate) async fn list_day(
        &self,
        day: Date,
        pace: Option<Duration>,
        force: bool,
    ) -> Result<(), CatalogError> {
        let listed = |c: &Catalog| matches!(c.state(day), Some(DayState::Listed { .. }));
        if !self.in_window(day) || (!force && listed(self)) {
            return Ok(());
        }
        let lock = self.day_lock(day);
        let _one = lock.lock().await;
        if !force && listed(self) {
            return Ok(());
        }
        self.list(self.part(day), pace).await.map(|_| ())
    }

    /// Every day of the window listed (saved days count): what `ls /interactions`
    /// needs. Runs of days not listed yet are searched together (in windows of up to
    /// 7 days), newest run first, each day's lock held so nobody lists it twice.
    pub async fn list_window(&self) -> Result<(), CatalogError> {
        for run in self.unlisted_runs().into_iter().rev() {
            self.list_run(run, None, |c, d| c.needs_listing(d)).await?;
        }
        Ok(())
    }

    /// List consecutive days `run` (oldest first) in one search, with each day's lock
    /// held; days that no longer satisfy `wanted` once the locks are held are left out.
    async fn list_run(
        &self,
        run: Vec<Date>,
        pace: Option<Duration>,
        wanted: impl Fn(&Catalog, Date) -> bool,
    ) -> Result<(), CatalogError> {
        let locks: Vec<_> = run.iter().map(|d| self.day_lock(*d)).collect();
        let mut held = Vec::with_capacity(locks.len());
        for l in &locks {
            held.push(l.lock().await);
        }
        let still: Vec<Date> = run.into_iter().filter(|d| wanted(self, *d)).collect();
        let (Some(first), Some(last)) = (still.first(), still.last()) else {
            return Ok(());
        };
        let range = (self.part(*first).0, self.part(*last).1);
        self.list(range, pace).await.map(|_| ())
    }

    /// Background: list the newest days not listed from the API yet (saved ones
    /// included, unless their saved listing is still fresh by `policy`), as many consecutive days as about one page holds at the density
    /// seen so far (one day at a time for big tenants, up to 7 for small ones).
    /// `None` when every day is listed.
    pub(crate) async fn list_next_unlisted(
        &self,
        pace: Option<Duration>,
        policy: &Policy,
    ) -> Option<Result<(), CatalogError>> {
        // The density seen so far, per hour of listed time (a partial day counts for
        // the part of it listed), as interactions a day.
        let (mut seen, mut secs) = (0usize, 0i64);
        {
            let days = self.window_days();
            // One read guard, and no second `read()` under it: a recursive read of a
            // parking_lot RwLock deadlocks as soon as a writer queues between the two.
            let l = self.listing.read();
            for day in days {
                if let (Some(d), false) = (l.day(day), needs_listing(l.state(day))) {
                    let (a, b) = self.part(day);
                    seen += d.len();
                    secs += (b - a).whole_seconds().max(0);
                }
            }
        }
        let per_day = (seen as i64 * 86_400)
            .checked_div(secs)
            .map_or(MAX_PAGE_LIMIT as usize, |n| n.max(0) as usize);
        let chunk = (MAX_PAGE_LIMIT as usize / per_day.max(1)).clamp(1, 7);
        let now = crate::util::now_secs();
        let unlisted = |c: &Catalog, d: Date| policy.first_listing_due(now, d, c.state(d));
        let mut run: Vec<Date> = Vec::new();
        for day in self.window_days().into_iter().rev() {
            if unlisted(self, day) {
                run.push(day);
                if run.len() == chunk {
                    break;
                }
            } else if !run.is_empty() {
                break;
            }
        }
        if run.is_empty() {
            return None;
        }
        run.reverse();
        Some(self.list_run(run, pace, unlisted).await)
    }

    fn needs_listing(&self, day: Date) -> bool {
        needs_listing(self.state(day))
    }

    /// Consecutive days of the window that are neither listed nor saved, oldest first.
    fn unlisted_runs(&self) -> Vec<Vec<Date>> {
        let mut runs: Vec<Vec<Date>> = Vec::new();
        let mut open = false;
        for day in self.window_days() {
            if self.needs_listing(day) {
                match runs.last_mut() {
                    Some(run) if open => run.push(day),
                    _ => runs.push(vec![day]),
                }
                open = true;
            } else {
                open = false;
            }
        }
        runs
    }

    /// Guids of the interactions that started on `day` (UTC), in start order. A day of
    /// the window is listed first if it is not yet (saved days answer at once); other
    /// days cost one search, remembered.
    pub async fn day(&self, day: Date) -> Result<Arc<Vec<String>>, CatalogError> {
        if self.in_window(day) {
            return self.window_day_page(day, 0, usize::MAX).await.map(Arc::new);
        }
        self.outside_day(day).await
    }

    /// [`Catalog::day`] of a day outside the window: one search, remembered.
    pub(super) async fn outside_day(&self, day: Date) -> Result<Arc<Vec<String>>, CatalogError> {
        if let Some(d) = self.days.lock().get(&day) {
            return Ok(Arc::clone(d));
        }
        let lock = self.day_lock(day);
        let _one = lock.lock().await;
        if let Some(d) = self.days.lock().get(&day) {
            return Ok(Arc::clone(d));
        }
        let items = self.search(day_range(day), None).await?;
        let mut guids = Vec::with_capacity(items.len());
        {
            let listing = self.listing.read();
            let mut extra = self.extra.write();
            for entry in items {
                let guid = entry.guid().to_string();
                if !listing.contains(&guid) && !extra.contains_key(&guid) {
                    extra.insert(guid.clone(), entry);
                }
                guids.push(guid);
            }
        }
        // Looked up just now: re-checked by age from here (`erase.rs`).
        self.extra_seen(guids.iter().map(String::as_str));
        let guids = Arc::new(guids);
        self.days.lock().insert(day, Arc::clone(&guids));
        Ok(guids)
    }

    /// Did interaction `guid` start on `day` (UTC)? A known guid answers at once; an
    /// unknown one costs at most that day's listing.
    pub async fn started_on(&self, day: Date, guid: &str) -> Result<bool, CatalogError> {
        if let Some(e) = self.known(guid) {
            return Ok(e.start_date() == day);
        }
        Ok(self.day(day).await?.iter().any(|g| g == guid))
    }

    /// Has `guid`'s day been listed from the API since the mount (or is it not from the
    /// saved days at all)?
    pub fn is_checked(&self, guid: &str) -> bool {
        let l = self.listing.read();
        match l
            .get(guid)
            .map(|e| e.start_date())
            .or_else(|| l.away_day_of(guid))
        {
            Some(day) => !matches!(l.state(day), Some(DayState::Saved { .. })),
            None => true,
        }
    }

    /// Make sure `guid`'s listing comes from the API, not only from the saved days: a
    /// saved day is listed now (once, however many readers ask).
    pub async fn check(&self, guid: &str) -> Checked {
        if self.is_checked(guid) {
            return Checked::Yes;
        }
        let Some(day) = self
            .known(guid)
            .map(|e| e.start_date())
            .or_else(|| self.listing.read().away_day_of(guid))
        else {
            return Checked::Yes;
        };
        match self.list_day(day, None, false).await {
            Ok(()) => Checked::Yes,
            Err(e) => {
                tracing::warn!(error = %e, %day, "cannot re-list a saved day; serving it as saved");
                Checked::Failed
            }
        }
    }
}

/// A day in `state` has nothing to show until it is listed (neither listed nor saved).
fn needs_listing(state: Option<DayState>) -> bool {
    !matches!(
        state,
        Some(DayState::Listed { .. } | DayState::Saved { .. })
    )
}

#[cfg(test)]
mod mock_tests;
#[cfg(all(feature = "shuttle", test))]
mod shuttle_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn subtracting_ranges() {
        let t = |h: u8| datetime!(2026-12-01 00:00 UTC) + time::Duration::hours(h.into());
        assert_eq!(subtract((t(0), t(10)), &[]), vec![(t(0), t(10))]);
        assert_eq!(
            subtract((t(0), t(10)), &[(t(8), t(12))]),
            vec![(t(0), t(8))]
        );
        assert_eq!(
            subtract((t(0), t(10)), &[(t(2), t(3)), (t(5), t(6))]),
            vec![(t(0), t(2)), (t(3), t(5)), (t(6), t(10))]
        );
        assert!(subtract((t(2), t(3)), &[(t(0), t(10))]).is_empty());
    }
}
