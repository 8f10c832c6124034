//! The synthetic tenant: `--interactions N` interactions over the `--days D` days
//! before the anchor (process start rounded down to the hour), deterministic from
//! `--seed`, then, unless the end is fixed, new interactions at the same average rate
//! (`N / D` a day) as the wall clock passes their start.
//!
//! Nothing is held per interaction: interaction `i` is built on demand from `(seed, i)`
//! ([`items`]); its start is a non-decreasing function of `i` ([`timeline`]), so a time
//! window is a range of indices found by binary search; its GUID is a reversible
//! scramble of `i` ([`guids`]), so a lookup by GUID is O(1).

mod guids;
mod items;
mod timeline;

use std::sync::atomic::{AtomicU64, Ordering};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use super::record::{mix, Record};
use super::tenant::ScanFrom;
use guids::GuidCodec;
use timeline::Timeline;

/// Latest start considered (the end of year 9999), so index arithmetic stays in range.
const MAX_UNIX: i64 = 253_402_300_799;

/// Until when interactions exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Until {
    /// Exactly the `--interactions` of the span: nothing new appears (`--end`).
    Fixed,
    /// New interactions appear as the wall clock passes their start.
    Wall,
    /// As `Wall`, at a frozen "now" (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    At(OffsetDateTime),
}

/// What to generate.
#[derive(Clone, Debug)]
pub(crate) struct SyntheticSpec {
    pub seed: u64,
    pub interactions: usize,
    pub days: u32,
    pub big_file_mib: Option<u64>,
    /// The newest call's recording lasts this long (`--long-call-secs`).
    pub long_call_secs: Option<u32>,
    /// The end of the initial span: its interactions (and their content, but for the
    /// newest ones) come before it.
    pub anchor: OffsetDateTime,
    pub until: Until,
}

/// The current time rounded down to the hour: an emulator restarted within the hour
/// with the same flags serves the same tenant.
pub(crate) fn hour_anchor() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    OffsetDateTime::from_unix_timestamp(now - now.rem_euclid(3600))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The `--big-file-mib` screen recording: on the newest call of the initial span.
#[derive(Debug)]
pub(super) struct BigFile {
    index: u64,
    len: u64,
    guid: String,
    key: String,
}

/// A synthetic tenant: parameters only, plus a counter of the records built.
#[derive(Debug)]
pub(crate) struct Synthetic {
    seed: u64,
    n: u64,
    until: Until,
    timeline: Timeline,
    codec: GuidCodec,
    /// Numeric agent ids of the contact center.
    agents: Vec<String>,
    /// Interaction plans (IVR flows) owning IVR recordings.
    plans: Vec<String>,
    big: Option<BigFile>,
    /// `(index, seconds)`: the `--long-call-secs` call.
    pub(super) long_call: Option<(u64, u32)>,
    built: AtomicU64,
}

fn agent_pool(seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(mix(seed, 0xa9e7));
    let mut ids: Vec<String> = Vec::new();
    while ids.len() < 24 {
        let id = rng.random_range(1000..9999).to_string();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn plan_pool(seed: u64) -> Vec<String> {
    let mut rng = SmallRng::seed_from_u64(mix(seed, 0x91a2));
    (0..4).map(|_| items::guid(&mut rng)).collect()
}

/// Whole seconds at or after `t`.
fn ceil_secs(t: OffsetDateTime) -> i64 {
    t.unix_timestamp() + i64::from(t.nanosecond() > 0)
}

impl Synthetic {
    pub fn new(spec: &SyntheticSpec) -> Self {
        let n = spec.interactions as u64;
        let mut t = Self {
            seed: spec.seed,
            n,
            until: spec.until.clone(),
            timeline: Timeline::new(spec.seed, n, spec.days, spec.anchor.unix_timestamp()),
            codec: GuidCodec::new(spec.seed),
            agents: agent_pool(spec.seed),
            plans: plan_pool(spec.seed),
            big: None,
            long_call: None,
            built: AtomicU64::new(0),
        };
        t.big = spec.big_file_mib.and_then(|mib| {
            let index = t.newest_call()?;
            Some(BigFile {
                index,
                len: mib.saturating_mul(1024 * 1024),
                guid: t.codec.guid(index),
                key: items::big_file_key(spec.seed),
            })
        });
        t.long_call = spec
            .long_call_secs
            .and_then(|secs| Some((t.newest_call()?, secs)));
        t
    }

    /// The call of the initial span that is last in `(start, guid)` order.
    fn newest_call(&self) -> Option<u64> {
        let is_call = |i: u64| i % 4 != 3;
        let last = (0..self.n).rev().find(|i| is_call(*i))?;
        let second = self.timeline.start(last);
        let mut best = (self.codec.guid(last), last);
        let mut j = last;
        while j > 0 && self.timeline.start(j - 1) == second {
            j -= 1;
            if is_call(j) {
                best = best.max((self.codec.guid(j), j));
            }
        }
        Some(best.1)
    }

    /// `(guid, contentKey)` of the `--big-file-mib` item.
    pub fn big_file(&self) -> Option<(String, String)> {
        self.big.as_ref().map(|b| (b.guid.clone(), b.key.clone()))
    }

    /// How many interactions exist now: `0..count()` are the indices served.
    pub fn count(&self) -> u64 {
        let now = match &self.until {
            Until::Fixed => return self.n,
            Until::Wall => OffsetDateTime::now_utc().unix_timestamp(),
            Until::At(t) => t.unix_timestamp(),
        };
        self.first_at(now.saturating_add(1))
    }

    /// The first index starting at or after unix second `t`.
    fn first_at(&self, t: i64) -> u64 {
        self.timeline.first_at(t.min(MAX_UNIX))
    }

    /// Number of records built so far (each search hit, lookup or listing builds one).
    pub fn built(&self) -> u64 {
        self.built.load(Ordering::Relaxed)
    }

    /// Interaction `i` (which must exist).
    fn record(&self, i: u64) -> Record {
        self.built.fetch_add(1, Ordering::Relaxed);
        items::interaction(self, i)
    }

    /// The interaction whose GUID is `guid` (any case), if it exists now.
    pub fn lookup(&self, guid: &str) -> Option<Record> {
        let i = self.codec.index(guid)?;
        (i < self.count()).then(|| self.record(i))
    }

    /// Indices `a..b` (seconds of equal start) in GUID order.
    fn by_guid(&self, a: u64, b: u64) -> Vec<(String, u64)> {
        let mut group: Vec<(String, u64)> = (a..b).map(|i| (self.codec.guid(i), i)).collect();
        group.sort();
        group
    }

    /// The interactions from `from` whose start is at most `until`, in `(start, guid)`
    /// order, built one at a time.
    pub fn scan(&self, from: &ScanFrom<'_>, until: OffsetDateTime) -> Scan<'_> {
        let stop = self
            .count()
            .min(self.first_at(until.unix_timestamp().saturating_add(1)));
        let (next, pending) = match from {
            ScanFrom::Start(t) => (self.first_at(ceil_secs(*t)).min(stop), Vec::new()),
            ScanFrom::After(t, guid) => {
                let secs = t.unix_timestamp();
                let b = self.first_at(secs.saturating_add(1)).min(stop);
                let a = self.first_at(secs).min(b);
                let guid = guid.to_ascii_lowercase();
                let rest = self
                    .by_guid(a, b)
                    .into_iter()
                    .filter(|(g, _)| *g > guid)
                    .map(|(_, i)| i)
                    .collect();
                (b, rest)
            }
        };
        Scan {
            t: self,
            next,
            stop,
            pending: pending.into_iter(),
        }
    }
}

/// An ordered walk over a range of indices (see [`Synthetic::scan`]).
pub(crate) struct Scan<'a> {
    t: &'a Synthetic,
    /// The next index to visit: always the first of its second.
    next: u64,
    stop: u64,
    /// The rest of a second shared by several interactions, in GUID order.
    pending: std::vec::IntoIter<u64>,
}

impl Iterator for Scan<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if let Some(i) = self.pending.next() {
            return Some(self.t.record(i));
        }
        if self.next >= self.stop {
            return None;
        }
        let first = self.next;
        let second = self.t.timeline.start(first);
        let mut end = first + 1;
        while end < self.stop && self.t.timeline.start(end) == second {
            end += 1;
        }
        self.next = end;
        if end == first + 1 {
            return Some(self.t.record(first));
        }
        let group: Vec<u64> = self
            .t
            .by_guid(first, end)
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        self.pending = group.into_iter();
        self.pending.next().map(|i| self.t.record(i))
    }
}

#[cfg(test)]
mod tests;
