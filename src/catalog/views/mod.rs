//! The views' name index: per UTC day, the calls of that day under their names
//! (`calls/<day>/<name>`), and which agents and numbers they have (`by-agent/<id>/<day>`,
//! `by-number/<n>/<day>`). Built from the catalog: nothing here makes a request but
//! [`Catalog::day_view`], which lists a day exactly as `by-date/<day>` does.
//!
//! Invariants:
//! - **Per day, lazy.** A day's [`DayView`] is built the first time a view of that day
//!   is asked for and kept while the day is in memory; no view is built for a day
//!   nobody looked at, and a walk of the window (`by-agent/`, `by-number/<n>`) views
//!   one day at a time, so the window is never materialised whole. A day that leaves
//!   memory keeps the hashes of its agents and numbers ([`facet_hashes`]): which days
//!   have an agent or a number is then answered without bringing any back. A view holds a name and an
//!   `Arc` of the listing's own entry per call (no copy of the metadata).
//! - **Always the listing's.** A view is built and replaced under one lock, each time
//!   from the listing as it is then; every change of a day's listing (a re-list, a
//!   lookup that found a new version, an erasure) rebuilds the day's view if it has
//!   one ([`Catalog::relisted`]), so a view never shows what the listing no longer has.
//! - **Renames reach the kernel.** Rebuilding diffs old and new: every name that
//!   vanished or now means another call (`calls/<day>/<name>`, its `by-agent` and
//!   `by-number` links, a call's file names) is sent as an entry invalidation through
//!   the catalog's change hook, and the directories whose listing changed as inode
//!   invalidations.
//! - **Stable order.** Calls are ordered by start time, then guid, before names are
//!   made unique (`naming::unique`), so `~2` goes to the same call on every re-list
//!   unless the day's content changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::sync::{AtomicU64, Mutex, RwLock};
use time::Date;

use super::{ino, Catalog, CatalogError, Change, InteractionEntry};

pub mod naming;

pub use naming::{Template, CALL_META};

/// A view by one attribute of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Facet {
    /// `by-agent/<agentId>`: every handling agent.
    Agent,
    /// `by-number/<number>`: `connectFrom` and `connectTo`.
    Number,
}

impl Facet {
    /// The inode of `by-agent` or `by-number`.
    pub fn root(self) -> u64 {
        match self {
            Facet::Agent => ino::BY_AGENT,
            Facet::Number => ino::BY_NUMBER,
        }
    }

    /// Its directory name, and its tag in inode numbers.
    pub fn tag(self) -> &'static str {
        match self {
            Facet::Agent => "by-agent",
            Facet::Number => "by-number",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One call of a day's view.
#[derive(Debug)]
pub struct Call {
    pub name: Box<str>,
    pub entry: Arc<InteractionEntry>,
}

/// The calls of one day under their names, and their agents and numbers.
#[derive(Debug, Default)]
pub struct DayView {
    calls: Vec<Call>,
    /// Indices of `calls`, sorted by name.
    by_name: Vec<u32>,
    /// Per facet: directory name → indices of `calls` (in call order), sorted by name.
    facets: [Vec<(Box<str>, Vec<u32>)>; 2],
}

/// The directory names of `e`'s agents and numbers (each once).
pub fn facets_of(e: &InteractionEntry) -> BTreeSet<(Facet, String)> {
    let (_, from, to, agents) = e.parties();
    let agents = agents
        .iter()
        .filter_map(|a| naming::dir_name(a))
        .map(|k| (Facet::Agent, k));
    let numbers = [from, to]
        .into_iter()
        .flatten()
        .filter_map(naming::dir_name)
        .map(|k| (Facet::Number, k));
    agents.chain(numbers).collect()
}

/// `ino::facet` of each agent and number of `entries`, sorted, each once: what a day
/// out of memory keeps of its views (8 bytes a key).
pub fn facet_hashes(entries: &[Arc<InteractionEntry>]) -> Box<[u64]> {
    let mut out: Vec<u64> = entries
        .iter()
        .flat_map(|e| facets_of(e).into_iter().map(|(f, k)| ino::facet(f, &k)))
        .collect();
    out.sort_unstable();
    out.dedup();
    out.into_boxed_slice()
}

/// `(name, content key)` of `e`'s files inside its call directory, in the API's order.
pub fn files_of(e: &InteractionEntry) -> Vec<(String, String)> {
    let items: Vec<(&str, &str)> = e
        .metas()
        .map(|m| (&*m.names.kind, &*m.names.content_type))
        .collect();
    naming::file_names(items.iter().copied())
        .into_iter()
        .zip(e.keys().map(|k| k.to_string()))
        .collect()
}

fn expand(template: &Template, e: &InteractionEntry) -> String {
    let (direction, from, to, agents) = e.parties();
    let guid = e.guid();
    template.expand(&naming::CallFields {
        start: e.start,
        direction,
        from,
        to,
        agent: agents.first().map(|a| &**a),
        guid: &guid,
    })
}

impl DayView {
    /// The view of `entries` (any order) named by `template`.
    pub fn build(template: &Template, mut entries: Vec<Arc<InteractionEntry>>) -> DayView {
        entries.sort_by_cached_key(|e| (e.start, e.guid().to_string()));
        let names = naming::unique(entries.iter().map(|e| expand(template, e)).collect());
        let calls: Vec<Call> = names
            .into_iter()
            .zip(entries)
            .map(|(name, entry)| Call {
                name: name.into(),
                entry,
            })
            .collect();
        let n = u32::try_from(calls.len()).unwrap_or(u32::MAX);
        let mut by_name: Vec<u32> = (0..n).collect();
        by_name.sort_by(|&a, &b| calls[a as usize].name.cmp(&calls[b as usize].name));
        let mut facets: [BTreeMap<String, Vec<u32>>; 2] = Default::default();
        for (i, c) in (0..n).zip(&calls) {
            for (facet, key) in facets_of(&c.entry) {
                facets[facet.index()].entry(key).or_default().push(i);
            }
        }
        let [a, b] = facets.map(|m| m.into_iter().map(|(k, v)| (k.into(), v)).collect());
        DayView {
            calls,
            by_name,
            facets: [a, b],
        }
    }

    /// The calls, by start time then guid.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// The call named `name`.
    pub fn get(&self, name: &str) -> Option<&Call> {
        let i = self
            .by_name
            .binary_search_by(|&i| (*self.calls[i as usize].name).cmp(name))
            .ok()?;
        self.calls.get(self.by_name[i] as usize)
    }

    /// The call of `guid`.
    pub fn of_guid(&self, guid: &str) -> Option<&Call> {
        self.calls.iter().find(|c| *c.entry.guid() == *guid)
    }

    /// The calls with agent or number `key`.
    pub fn facet(&self, facet: Facet, key: &str) -> impl Iterator<Item = &Call> {
        let list = &self.facets[facet.index()];
        let found = list
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| list[i].1.as_slice())
            .unwrap_or_default();
        found.iter().filter_map(|&i| self.calls.get(i as usize))
    }

    /// Does any call have agent or number `key`?
    pub fn has(&self, facet: Facet, key: &str) -> bool {
        self.facet(facet, key).next().is_some()
    }

    /// Every agent or number of the day, sorted.
    pub fn facet_keys(&self, facet: Facet) -> impl Iterator<Item = &str> {
        self.facets[facet.index()].iter().map(|(k, _)| &**k)
    }
}

/// What the kernel must forget when a day's view changes from `old` to `new`:
/// `(inodes, (parent, name) entries)`.
pub fn diff(day: Date, old: &DayView, new: &DayView) -> (BTreeSet<u64>, Vec<(u64, String)>) {
    let mut inos = BTreeSet::new();
    let mut entries = Vec::new();
    let calls_day = ino::calls_day(day);
    let by_guid = |v: &DayView| -> HashMap<String, usize> {
        (0..v.calls.len())
            .map(|i| (v.calls[i].entry.guid().to_string(), i))
            .collect()
    };
    let (old_at, new_at) = (by_guid(old), by_guid(new));
    let touch = |inos: &mut BTreeSet<u64>, (f, k): &(Facet, String)| {
        inos.extend([ino::facet_day(*f, k, day), ino::facet(*f, k), f.root()]);
    };
    for (guid, &i) in &old_at {
        let o = &old.calls[i];
        let n = new_at.get(guid).map(|&j| &new.calls[j]);
        let (of, nf) = (facets_of(&o.entry), n.map(|n| facets_of(&n.entry)));
        let renamed = n.is_none_or(|n| n.name != o.name);
        if renamed {
            inos.insert(calls_day);
            entries.push((calls_day, o.name.to_string()));
        }
        for k in &of {
            if renamed || nf.as_ref().is_some_and(|nf| !nf.contains(k)) {
                entries.push((ino::facet_day(k.0, &k.1, day), o.name.to_string()));
                touch(&mut inos, k);
            }
        }
        let Some(n) = n else { continue };
        for k in nf.iter().flatten().filter(|k| renamed || !of.contains(*k)) {
            touch(&mut inos, k);
        }
        let (ofiles, nfiles) = (files_of(&o.entry), files_of(&n.entry));
        if ofiles != nfiles {
            let call = ino::call(guid);
            inos.insert(call);
            for f in ofiles.iter().filter(|f| !nfiles.contains(f)) {
                entries.push((call, f.0.clone()));
            }
        }
    }
    for (guid, &j) in &new_at {
        if !old_at.contains_key(guid) {
            inos.insert(calls_day);
            for k in facets_of(&new.calls[j].entry) {
                touch(&mut inos, &k);
            }
        }
    }
    (inos, entries)
}

/// The catalog's views: the naming template and the days' views built so far.
#[derive(Debug, Default)]
pub(super) struct Views {
    template: RwLock<Arc<Template>>,
    days: Mutex<HashMap<Date, Arc<DayView>>>,
    /// Bumped by every change of a day's listing (and of the template).
    generation: AtomicU64,
    /// Per facet: every name of the window, and the generation it was made at.
    keys: Mutex<[Option<KeysAt>; 2]>,
}

/// Every name of a facet in the window, as of a generation of [`Views`].
type KeysAt = (u64, Arc<Vec<String>>);

impl Views {
    /// `day` left memory: its view goes too (built again when asked for).
    pub(super) fn forget_day(&self, day: Date) {
        let gone = self.days.lock().remove(&day);
        drop(gone);
    }
}

impl Catalog {
    /// Name calls by `template` (`--calls-name`) from now on.
    pub fn set_calls_name(&self, template: Template) {
        *self.views.template.write() = Arc::new(template);
        self.views.days.lock().clear();
        self.views.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The view of `day`, if one was built (no request).
    pub fn cached_view(&self, day: Date) -> Option<Arc<DayView>> {
        self.views.days.lock().get(&day).cloned()
    }

    /// The view of `day`: the day is listed first if it is not yet, exactly as
    /// [`Catalog::day`] lists it (saved and listed days cost nothing).
    pub async fn day_view(&self, day: Date) -> Result<Arc<DayView>, CatalogError> {
        if let Some(v) = self.cached_view(day) {
            return Ok(v);
        }
        // The day may leave memory between being listed (or brought back) and being
        // read here: then it is brought back again (`resident.rs`).
        for _ in 0..4 {
            self.day(day).await?;
            let mut days = self.views.days.lock();
            if let Some(v) = days.get(&day) {
                return Ok(Arc::clone(v));
            }
            if self.in_window(day) && self.listing.read().is_away(day) {
                continue;
            }
            let v = Arc::new(self.build_view(day));
            days.insert(day, Arc::clone(&v));
            return Ok(v);
        }
        Ok(Arc::new(self.build_view(day)))
    }

    /// The days of the window with a call of agent or number `key` (listing what is
    /// not listed yet). A day out of memory answers from its facet hashes when it
    /// has them (no day brought back); another is viewed, one day at a time, so a
    /// walk of the window holds no more of it than the memory budget does.
    pub async fn facet_days(&self, facet: Facet, key: &str) -> Result<Vec<Date>, CatalogError> {
        self.list_window().await?;
        let hash = ino::facet(facet, key);
        let mut out = Vec::new();
        for day in self.window_days() {
            let known = self.listing.read().away_has_facet(day, hash);
            let has = match known {
                Some(has) => has,
                None => self.day_view(day).await?.has(facet, key),
            };
            if has {
                out.push(day);
            }
        }
        Ok(out)
    }

    /// Every agent or number of the window, sorted (listing what is not listed yet):
    /// each day is viewed in turn and let go, so only the names are held. Kept until a
    /// day's listing changes: the kernel reads a big directory a page at a time, and
    /// each page must not walk the window again (72k numbers over 11 days took 570 s).
    pub async fn window_facet_keys(&self, facet: Facet) -> Result<Arc<Vec<String>>, CatalogError> {
        self.list_window().await?;
        let generation = self.views.generation.load(Ordering::Relaxed);
        if let Some((at, keys)) = &self.views.keys.lock()[facet.index()] {
            if *at == generation {
                return Ok(Arc::clone(keys));
            }
        }
        let mut keys = BTreeSet::new();
        for day in self.window_days() {
            let view = self.day_view(day).await?;
            keys.extend(view.facet_keys(facet).map(str::to_string));
        }
        let keys = Arc::new(keys.into_iter().collect::<Vec<_>>());
        self.views.keys.lock()[facet.index()] = Some((generation, Arc::clone(&keys)));
        Ok(keys)
    }

    /// The view of `day` from what the catalog holds now (call with the views' lock).
    fn build_view(&self, day: Date) -> DayView {
        let entries: Vec<Arc<InteractionEntry>> = if self.in_window(day) {
            let l = self.listing.read();
            l.day(day).map(|d| d.entries.clone()).unwrap_or_default()
        } else {
            let guids = self.days.lock().get(&day).cloned().unwrap_or_default();
            guids
                .iter()
                .filter_map(|g| self.known_here(g))
                .filter(|e| e.start_date() == day)
                .collect()
        };
        DayView::build(&self.views.template.read(), entries)
    }

    /// `day`'s listing changed: rebuild its view if it has one, and tell the kernel
    /// what it must forget (through the change hook). Returns what was sent.
    pub(super) fn relisted(&self, day: Date) -> (BTreeSet<u64>, Vec<(u64, String)>) {
        self.views.generation.fetch_add(1, Ordering::Relaxed);
        let mut days = self.views.days.lock();
        let Some(old) = days.get(&day).cloned() else {
            return Default::default();
        };
        if self.in_window(day) && self.listing.read().is_away(day) {
            // Out of memory: its view goes with it (built again when asked for).
            days.remove(&day);
            return Default::default();
        }
        let new = Arc::new(self.build_view(day));
        days.insert(day, Arc::clone(&new));
        drop(days);
        let (inos, entries) = diff(day, &old, &new);
        if let Some(hook) = self.hook.0.get() {
            for (parent, name) in &entries {
                hook(Change::Entry {
                    parent: *parent,
                    name: name.clone(),
                });
            }
            for ino in &inos {
                hook(Change::Invalidate(*ino));
            }
        }
        (inos, entries)
    }

    /// What the kernel must forget of erased `guid` of `day` in the views (its call
    /// directory, its files there, its links), with the day's view rebuilt without it.
    pub(super) fn forget_views(&self, day: Date, guid: &str) -> (Vec<u64>, Vec<(u64, String)>) {
        let Some(old) = self.cached_view(day) else {
            return Default::default();
        };
        let mut inos = vec![ino::call(guid), ino::calls_day(day)];
        let mut entries = Vec::new();
        if let Some(c) = old.of_guid(guid) {
            let call = ino::call(guid);
            entries.push((ino::calls_day(day), c.name.to_string()));
            for (f, k) in facets_of(&c.entry) {
                entries.push((ino::facet_day(f, &k, day), c.name.to_string()));
                inos.push(ino::facet_day(f, &k, day));
            }
            entries.extend(files_of(&c.entry).into_iter().map(|(n, _)| (call, n)));
            entries.push((call, CALL_META.to_string()));
        }
        let (more_inos, more) = self.relisted(day);
        inos.extend(more_inos);
        entries.extend(more);
        (inos, entries)
    }
}

#[cfg(test)]
mod tests;
