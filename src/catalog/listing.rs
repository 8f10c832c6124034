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

use super::compact::Guid;
use super::entry::InteractionEntry;
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
    by_guid: Index,
    len: usize,
}

impl Listing {
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
            if let Some(&(other, _)) = self.by_guid.get_key(e.guid_key()) {
                if other != day {
                    self.remove_from(other, e.guid_key());
                }
            }
        }
        let fresh: HashSet<&Guid> = new.iter().map(|e| e.guid_key()).collect();
        let d = self.days.entry(day).or_insert(Day {
            entries: Vec::new(),
            state: DayState::Partial,
        });
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
        gone
    }

    /// Put `entry` where the listing holds its guid now (a lookup found a new version).
    pub fn replace(&mut self, entry: Arc<InteractionEntry>) -> bool {
        let Some(&(day, i)) = self.by_guid.get_key(entry.guid_key()) else {
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
    }
}
