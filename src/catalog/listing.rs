//! The window's listing, one UTC day at a time.
//!
//! A day is listed on its own (a search of the part of that day inside the window) and
//! re-listed in ranges (the recent tail, or the whole day again when it is due). Each
//! listing of a range replaces exactly what the day held in that range, so a re-list
//! never touches interactions outside the range it searched.
//!
//! Invariants:
//! - every listed interaction is in exactly one day, at the position `by_guid` says,
//!   and each day's entries are in start order (the order the API lists them);
//! - `len` is the sum of the days' lengths;
//! - a day's state only moves forward to `Listed` by a listing of its whole part of
//!   the window; a range re-list of part of a day leaves its state as it was;
//! - a day is either **in memory** (its entries, indexed by guid) or **away** (out of
//!   memory under the catalog's memory budget, `resident.rs`): then it has no entries
//!   and no slots in `by_guid`, only an [`Away`] — its length, totals and the sorted
//!   64-bit hashes of its guids, so a lookup finds which day to bring back — and it
//!   keeps its state (a day listed stays listed: eviction never causes a search);
//! - `bytes` is the sum of the in-memory days' estimated bytes (`resident::day_bytes`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use time::{Date, OffsetDateTime};

use super::compact::Guid;
use super::entry::InteractionEntry;
use super::persist::DayIndex;
use crate::model::guid_bytes;

/// Where each listed interaction is: its day and its position in the day.
type Slot = (Date, u32);

/// The listing's one index, by GUID: 24 bytes a slot for canonical GUIDs (all of
/// them, with the API), any other spelling in a map of its own.
#[derive(Debug, Default)]
struct Index {
    bytes: HashMap<[u8; 16], Slot>,
    other: HashMap<Box<str>, Slot>,
}

impl Index {
    fn get(&self, guid: &str) -> Option<&Slot> {
        match guid_bytes(guid) {
            Some(b) => self.bytes.get(&b),
            None => self.other.get(guid),
        }
    }

    fn get_key(&self, guid: &Guid) -> Option<&Slot> {
        match guid {
            Guid::Bytes(b) => self.bytes.get(b),
            Guid::Other(s) => self.other.get(s),
        }
    }

    fn set(&mut self, guid: &Guid, slot: Slot) {
        match guid {
            Guid::Bytes(b) => {
                self.bytes.insert(*b, slot);
            }
            Guid::Other(s) => match self.other.get_mut(s) {
                Some(v) => *v = slot,
                None => {
                    self.other.insert(s.clone(), slot);
                }
            },
        }
    }

    /// Move `guid` to `slot` if it is indexed.
    fn update(&mut self, guid: &Guid, slot: Slot) {
        let v = match guid {
            Guid::Bytes(b) => self.bytes.get_mut(b),
            Guid::Other(s) => self.other.get_mut(s),
        };
        if let Some(v) = v {
            *v = slot;
        }
    }

    fn remove(&mut self, guid: &Guid) {
        match guid {
            Guid::Bytes(b) => self.bytes.remove(b),
            Guid::Other(s) => self.other.remove(s),
        };
    }
}

/// How far a day of the window is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayState {
    /// Read from the saved catalog, not listed from the API since the mount; `listed`:
    /// when the saved listing was made whole, if known (the age policy re-lists it once
    /// that is older than the day's staleness, as it would a day listed then).
    Saved { listed: Option<OffsetDateTime> },
    /// Only ranges of it listed (tail re-lists of a day not yet listed whole).
    Partial,
    /// Listed whole from the API at `at`.
    Listed { at: OffsetDateTime },
}

/// One day's interactions.
#[derive(Debug)]
pub(super) struct Day {
    pub entries: Vec<Arc<InteractionEntry>>,
    pub state: DayState,
    /// Out of memory: what is kept of the day (then `entries` is empty).
    pub away: Option<Away>,
    /// Estimated bytes of `entries` in memory (0 when away).
    pub bytes: u64,
    /// When it was last used (the listing's clock), for least recently used first.
    pub touched: AtomicU64,
    /// Changed in memory since it was last saved (a lookup found a new version).
    pub dirty: bool,
}

impl Day {
    fn new(state: DayState) -> Day {
        Day {
            entries: Vec::new(),
            state,
            away: None,
            bytes: 0,
            touched: AtomicU64::new(0),
            dirty: false,
        }
    }

    /// How many interactions it holds, in memory or not.
    pub fn len(&self) -> usize {
        self.away.as_ref().map_or(self.entries.len(), |a| a.len)
    }
}

/// What stays in memory of a day that left it.
#[derive(Debug)]
pub(super) struct Away {
    pub len: usize,
    /// Listed bytes and files (with two per interaction), for statfs.
    pub totals: (u64, u64),
    /// `ino::interaction` of each guid, sorted: 8 bytes an interaction.
    hashes: Box<[u64]>,
    /// `ino::facet` of each of its agents and numbers, sorted, once known (a day opened
    /// from its index learns them the first time it is in memory): a view by agent or
    /// number asks them instead of bringing the day back.
    facets: Option<Box<[u64]>>,
    /// Which eviction made it: facets worked out after the lock was let go are kept
    /// only by the same absence of the day.
    epoch: u64,
}

impl Away {
    pub fn has(&self, hash: u64) -> bool {
        self.hashes.binary_search(&hash).is_ok()
    }
}

/// Listed bytes and files (each interaction's directory and metadata file counted).
pub(super) fn totals<'a>(
    entries: impl IntoIterator<Item = &'a Arc<InteractionEntry>>,
) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    for e in entries {
        for m in e.metas() {
            bytes += m.size().unwrap_or(0);
            files += 1;
        }
        files += 2;
    }
    (bytes, files)
}

#[derive(Debug, Default)]
pub(super) struct Listing {
    days: BTreeMap<Date, Day>,
    by_guid: Index,
    len: usize,
    /// Estimated bytes of the days in memory.
    bytes: u64,
    clock: AtomicU64,
}

impl Listing {
    /// Note that `day` was used now.
    pub fn touch(&self, day: Date) {
        if let Some(d) = self.days.get(&day) {
            let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
            d.touched.store(now, Ordering::Relaxed);
        }
    }

    /// Estimated bytes of the days in memory.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_away(&self, day: Date) -> bool {
        self.days.get(&day).is_some_and(|d| d.away.is_some())
    }

    /// The day out of memory that may hold `guid` (by its hash; the day, once back,
    /// says whether it really does).
    pub fn away_day_of(&self, guid: &str) -> Option<Date> {
        let hash = super::ino::interaction(guid);
        self.days
            .iter()
            .find(|(_, d)| d.away.as_ref().is_some_and(|a| a.has(hash)))
            .map(|(day, _)| *day)
    }

    /// The least recently used day in memory holding anything, other than `keep`, that
    /// `may_leave` lets go.
    pub fn coldest(
        &self,
        keep: Option<Date>,
        may_leave: impl Fn(Date, &Day) -> bool,
    ) -> Option<Date> {
        self.days
            .iter()
            .filter(|(day, d)| {
                Some(**day) != keep && d.away.is_none() && d.bytes > 0 && may_leave(**day, d)
            })
            .min_by_key(|(_, d)| d.touched.load(Ordering::Relaxed))
            .map(|(day, _)| *day)
    }

    /// Add `day`, not in the listing yet, as out of memory in `state`: what its saved
    /// index holds. False (and nothing changes) if the day is there already.
    pub fn add_away(&mut self, day: Date, state: DayState, index: DayIndex) -> bool {
        if self.days.contains_key(&day) {
            return false;
        }
        let mut d = Day::new(state);
        d.away = Some(Away {
            len: index.len,
            totals: index.totals,
            hashes: index.hashes,
            facets: None,
            epoch: 0,
        });
        self.len += index.len;
        self.days.insert(day, d);
        true
    }

    /// Take `day`'s entries out of memory (it keeps its state, length and guid
    /// hashes); returns them, to be dropped outside the lock, and the eviction's
    /// epoch (for [`Listing::set_away_facets`]).
    pub fn evict(&mut self, day: Date) -> (Vec<Arc<InteractionEntry>>, u64) {
        let epoch = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(d) = self.days.get_mut(&day) else {
            return (Vec::new(), epoch);
        };
        if d.away.is_some() {
            return (Vec::new(), epoch);
        }
        let entries = std::mem::take(&mut d.entries);
        let mut hashes: Vec<u64> = entries.iter().map(|e| e.ino()).collect();
        hashes.sort_unstable();
        d.away = Some(Away {
            len: entries.len(),
            totals: totals(&entries),
            hashes: hashes.into_boxed_slice(),
            facets: None,
            epoch,
        });
        self.bytes -= d.bytes;
        d.bytes = 0;
        for e in &entries {
            self.by_guid.remove(e.guid_key());
        }
        (entries, epoch)
    }

    /// `day`, away since eviction `epoch`, has the agents and numbers `facets`
    /// (sorted `ino::facet`s, worked out from what that eviction took).
    pub fn set_away_facets(&mut self, day: Date, epoch: u64, facets: Box<[u64]>) {
        if let Some(a) = self.days.get_mut(&day).and_then(|d| d.away.as_mut()) {
            if a.epoch == epoch {
                a.facets = Some(facets);
            }
        }
    }

    /// Does `day`, out of memory, have a call with the agent or number of `facet` (an
    /// `ino::facet`)? `None` when the day is in memory or its facets are not known.
    pub fn away_has_facet(&self, day: Date, facet: u64) -> Option<bool> {
        let a = self.days.get(&day)?.away.as_ref()?;
        a.facets.as_ref().map(|f| f.binary_search(&facet).is_ok())
    }

    /// Bring `day` back into memory with `entries` (in start order), keeping its state.
    /// False if the day was not away.
    pub fn restore(&mut self, day: Date, entries: Vec<Arc<InteractionEntry>>) -> bool {
        let bytes = super::resident::day_bytes(&entries);
        let Some(d) = self.days.get_mut(&day) else {
            return false;
        };
        let Some(away) = d.away.take() else {
            return false;
        };
        self.len = self.len - away.len + entries.len();
        for (i, e) in entries.iter().enumerate() {
            self.by_guid.set(e.guid_key(), (day, i as u32));
        }
        d.entries = entries;
        d.bytes = bytes;
        self.bytes += bytes;
        let now = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        d.touched.store(now, Ordering::Relaxed);
        true
    }

    /// Estimate `day`'s bytes in memory again (its entries changed).
    fn account(&mut self, day: Date) {
        if let Some(d) = self.days.get_mut(&day) {
            let bytes = super::resident::day_bytes(&d.entries);
            self.bytes = self.bytes - d.bytes + bytes;
            d.bytes = bytes;
        }
    }

    pub fn get(&self, guid: &str) -> Option<&Arc<InteractionEntry>> {
        let (day, i) = self.by_guid.get(guid)?;
        self.days.get(day)?.entries.get(*i as usize)
    }

    pub fn get_key(&self, guid: &Guid) -> Option<&Arc<InteractionEntry>> {
        let (day, i) = self.by_guid.get_key(guid)?;
        self.days.get(day)?.entries.get(*i as usize)
    }

    pub fn contains(&self, guid: &str) -> bool {
        self.by_guid.get(guid).is_some()
    }

    pub fn state(&self, day: Date) -> Option<DayState> {
        self.days.get(&day).map(|d| d.state)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn days(&self) -> impl Iterator<Item = (Date, &Day)> {
        self.days.iter().map(|(d, day)| (*d, day))
    }

    pub fn day(&self, day: Date) -> Option<&Day> {
        self.days.get(&day)
    }

    /// Position of `guid` in the whole listing (days in order, each in start order).
    pub fn position(&self, guid: &str) -> Option<usize> {
        let (day, i) = self.by_guid.get(guid)?;
        let before: usize = self.days.range(..*day).map(|(_, d)| d.len()).sum();
        Some(before + *i as usize)
    }

    /// The days holding positions `[from, to)` of the whole listing, each with the
    /// part of it (positions in the day) that falls in the range.
    pub fn days_of_range(&self, from: usize, to: usize) -> Vec<(Date, usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0usize;
        for (day, d) in &self.days {
            let n = d.len();
            if at + n > from && at < to {
                out.push((*day, from.saturating_sub(at), (to - at).min(n)));
            }
            at += n;
            if at >= to {
                break;
            }
        }
        out
    }

    /// How many listed interactions started in `[a, b)` (days out of memory count
    /// whole when the range covers them, else not at all).
    pub fn count_between(&self, (a, b): (OffsetDateTime, OffsetDateTime)) -> usize {
        let mut n = 0;
        for d in self.days.range(a.date()..=b.date()).map(|(_, d)| d) {
            if d.away.is_some() {
                continue;
            }
            let first = d.entries.partition_point(|e| e.start < a);
            let end = d.entries.partition_point(|e| e.start < b);
            n += end.saturating_sub(first);
        }
        n
    }

    /// The entries at positions `[from, to)` of the whole listing (days out of memory
    /// count, but give nothing).
    pub fn range(&self, from: usize, to: usize) -> Vec<Arc<InteractionEntry>> {
        let mut out = Vec::with_capacity(to.saturating_sub(from).min(4096));
        let mut at = 0usize;
        for day in self.days.values() {
            let n = day.len();
            if day.away.is_some() {
                at += n;
                if at >= to {
                    break;
                }
                continue;
            }
            if at + n > from && at < to {
                let a = from.saturating_sub(at);
                let b = (to - at).min(n);
                out.extend(day.entries[a..b].iter().cloned());
            }
            at += n;
            if at >= to {
                break;
            }
        }
        out
    }

    /// Set `day`'s state (a listing covered it whole).
    pub fn set_state(&mut self, day: Date, state: DayState) {
        let d = self.days.entry(day).or_insert_with(|| Day::new(state));
        d.state = state;
        if matches!(state, DayState::Listed { .. }) {
            // Listed whole: what memory holds is what was saved.
            d.dirty = false;
        }
    }

    /// Set every day's state (tests: as if read from the saved catalog).
    #[cfg(test)]
    pub fn mark_all(&mut self, state: DayState) {
        for d in self.days.values_mut() {
            d.state = state;
        }
    }

    /// Make `new` (in start order, every start in `[a, b)`) what day `day` holds in
    /// `[a, b)`; `state`, if given, becomes the day's state. Returns the entries that
    /// were in the range and are not any more.
    pub fn splice(
        &mut self,
        day: Date,
        (a, b): (OffsetDateTime, OffsetDateTime),
        new: Vec<Arc<InteractionEntry>>,
        state: Option<DayState>,
    ) -> Vec<Arc<InteractionEntry>> {
        // An interaction listed on another day before (its start moved) leaves it.
        for e in &new {
            if let Some(&(other, _)) = self.by_guid.get_key(e.guid_key()) {
                if other != day {
                    self.remove_from(other, e.guid_key());
                }
            }
        }
        let fresh: HashSet<&Guid> = new.iter().map(|e| e.guid_key()).collect();
        let d = self
            .days
            .entry(day)
            .or_insert_with(|| Day::new(DayState::Partial));
        if let Some(away) = d.away.take() {
            // Out of memory and not brought back (no saved day to read): what it
            // held is unknown here; unless this listing covers it whole, it must be
            // listed whole again.
            self.len -= away.len;
            if state.is_none() {
                d.state = DayState::Partial;
            }
        }
        let old = std::mem::take(&mut d.entries);
        let old_len = old.len();
        let (mut before, mut after, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for e in old {
            let start = e.start;
            if fresh.contains(e.guid_key()) {
                continue;
            }
            if start < a {
                before.push(e);
            } else if start >= b {
                after.push(e);
            } else {
                gone.push(e);
            }
        }
        drop(fresh);
        before.extend(new);
        before.append(&mut after);
        d.entries = before;
        if let Some(s) = state {
            d.state = s;
        }
        self.len = self.len - old_len + d.entries.len();
        for e in &gone {
            self.by_guid.remove(e.guid_key());
        }
        for (i, e) in d.entries.iter().enumerate() {
            self.by_guid.set(e.guid_key(), (day, i as u32));
        }
        self.account(day);
        gone
    }

    /// Put `entry` where the listing holds its guid now (a lookup found a new version).
    pub fn replace(&mut self, entry: Arc<InteractionEntry>) -> bool {
        let Some(&(day, i)) = self.by_guid.get_key(entry.guid_key()) else {
            return false;
        };
        let Some(d) = self.days.get_mut(&day) else {
            return false;
        };
        match d.entries.get_mut(i as usize) {
            Some(slot) => {
                *slot = entry;
                d.dirty = true;
                true
            }
            None => false,
        }
    }

    /// Take `guid` out of the listing (erased); returns its entry if it was listed.
    pub fn remove(&mut self, guid: &str) -> Option<Arc<InteractionEntry>> {
        let &(day, i) = self.by_guid.get(guid)?;
        let entry = self.days.get(&day)?.entries.get(i as usize).cloned()?;
        let key = entry.guid_key().clone();
        self.remove_from(day, &key);
        Some(entry)
    }

    fn remove_from(&mut self, day: Date, guid: &Guid) {
        let Some(d) = self.days.get_mut(&day) else {
            return;
        };
        let before = d.entries.len();
        d.entries.retain(|e| e.guid_key() != guid);
        self.len -= before - d.entries.len();
        self.by_guid.remove(guid);
        for (i, e) in d.entries.iter().enumerate() {
            self.by_guid.update(e.guid_key(), (day, i as u32));
        }
        self.account(day);
    }
}
