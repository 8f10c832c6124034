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
//!   the window; a range re-list of part of a day leaves its state as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use time::{Date, OffsetDateTime};

use super::entry::InteractionEntry;

/// How far a day of the window is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayState {
    /// Read from the saved catalog, not listed from the API since the mount.
    Saved,
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
}

#[derive(Debug, Default)]
pub(super) struct Listing {
    days: BTreeMap<Date, Day>,
    by_guid: HashMap<Arc<str>, (Date, u32)>,
    len: usize,
}

impl Listing {
    pub fn get(&self, guid: &str) -> Option<&Arc<InteractionEntry>> {
        let (day, i) = self.by_guid.get(guid)?;
        self.days.get(day)?.entries.get(*i as usize)
    }

    pub fn contains(&self, guid: &str) -> bool {
        self.by_guid.contains_key(guid)
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
        let before: usize = self.days.range(..*day).map(|(_, d)| d.entries.len()).sum();
        Some(before + *i as usize)
    }

    /// The entries at positions `[from, to)` of the whole listing.
    pub fn range(&self, from: usize, to: usize) -> Vec<Arc<InteractionEntry>> {
        let mut out = Vec::with_capacity(to.saturating_sub(from).min(4096));
        let mut at = 0usize;
        for day in self.days.values() {
            let n = day.entries.len();
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
        self.days
            .entry(day)
            .or_insert(Day {
                entries: Vec::new(),
                state,
            })
            .state = state;
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
            if let Some(&(other, _)) = self.by_guid.get(&*e.guid) {
                if other != day {
                    self.remove_from(other, &e.guid);
                }
            }
        }
        let fresh: HashSet<&str> = new.iter().map(|e| &*e.guid).collect();
        let d = self.days.entry(day).or_insert(Day {
            entries: Vec::new(),
            state: DayState::Partial,
        });
        let old = std::mem::take(&mut d.entries);
        let old_len = old.len();
        let (mut before, mut after, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for e in old {
            let start = e.start;
            if fresh.contains(&*e.guid) {
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
            self.by_guid.remove(&*e.guid);
        }
        for (i, e) in d.entries.iter().enumerate() {
            let slot = (day, i as u32);
            match self.by_guid.get_mut(&*e.guid) {
                Some(v) => *v = slot,
                None => {
                    self.by_guid.insert(Arc::clone(&e.guid), slot);
                }
            }
        }
        gone
    }

    /// Put `entry` where the listing holds its guid now (a lookup found a new version).
    pub fn replace(&mut self, entry: Arc<InteractionEntry>) -> bool {
        let Some(&(day, i)) = self.by_guid.get(&*entry.guid) else {
            return false;
        };
        match self
            .days
            .get_mut(&day)
            .and_then(|d| d.entries.get_mut(i as usize))
        {
            Some(slot) => {
                *slot = entry;
                true
            }
            None => false,
        }
    }

    fn remove_from(&mut self, day: Date, guid: &str) {
        let Some(d) = self.days.get_mut(&day) else {
            return;
        };
        let before = d.entries.len();
        d.entries.retain(|e| &*e.guid != guid);
        self.len -= before - d.entries.len();
        self.by_guid.remove(guid);
        for (i, e) in d.entries.iter().enumerate() {
            if let Some(v) = self.by_guid.get_mut(&*e.guid) {
                *v = (day, i as u32);
            }
        }
    }
}
