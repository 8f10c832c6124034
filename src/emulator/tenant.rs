//! The tenant the emulator serves, and the ground truth of tests. Two backends:
//!
//! - synthetic (`--seed`, see `synthetic`): nothing held per interaction, every record
//!   built on demand; by default new interactions keep arriving after the anchor;
//! - stored (`--data-dir`, see `datadir`): a small list of records in memory.
//!
//! Records are immutable except for `POST /_emulator/mutate`, whose new item versions
//! live in a small overlay map laid over every record the backends produce, and
//! `POST /_emulator/delete`, which takes an interaction, or one of its items, out.

use std::collections::HashMap;
use std::ops::Range;

use parking_lot::RwLock;
use time::OffsetDateTime;

use super::record::{ItemState, ItemView, Record};
use super::synthetic::{Synthetic, SyntheticSpec};
use crate::model::{ContentItem, Interaction};

/// Where a walk in `(start, guid)` order begins.
#[derive(Debug, Clone)]
pub(crate) enum ScanFrom<'a> {
    /// The first interaction starting at or after this time.
    Start(OffsetDateTime),
    /// The first interaction after this `(start, guid)` (a continuation token's).
    After(OffsetDateTime, &'a str),
}

/// Records held in memory, sorted by `(start, guid)`.
struct Stored {
    records: Vec<Record>,
    by_guid: HashMap<String, usize>,
}

enum Backend {
    Stored(Stored),
    Synthetic(Box<Synthetic>),
}

/// The interactions served by one emulator, ordered by `(start, guid)`.
pub struct Tenant {
    backend: Backend,
    anchor: OffsetDateTime,
    /// Mutated items: `(record id, item position)` → current state.
    overlay: RwLock<HashMap<(u64, usize), ItemState>>,
    /// Deleted interactions (lowercase guids): never served again.
    deleted: RwLock<std::collections::HashSet<String>>,
    /// Deleted items `(record id, item position)`: the interaction stays, without them.
    dropped: RwLock<std::collections::HashSet<(u64, usize)>>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Tenant");
        match &self.backend {
            Backend::Stored(s) => d.field("stored", &s.records.len()),
            Backend::Synthetic(s) => d.field("synthetic", s),
        };
        d.field("anchor", &self.anchor).finish()
    }
}

impl Tenant {
    fn with(backend: Backend, anchor: OffsetDateTime) -> Self {
        Self {
            backend,
            anchor,
            overlay: RwLock::new(HashMap::new()),
            deleted: RwLock::new(std::collections::HashSet::new()),
            dropped: RwLock::new(std::collections::HashSet::new()),
        }
    }

    /// Delete interaction `guid` (case-insensitive): from now on it is neither listed
    /// nor looked up, and its content is not served. False if it was not served.
    pub fn delete(&self, guid: &str) -> bool {
        if self.record(guid).is_none() {
            return false;
        }
        self.deleted.write().insert(guid.to_ascii_lowercase())
    }

    /// Delete item `key` of interaction `guid` (a recording a retention rule removed):
    /// from now on the interaction is listed and looked up without it, and its content
    /// is 404. `None` if there is no such item; `Some(false)` if it is the last one
    /// left (the API never lists an interaction without content: delete it instead).
    pub fn delete_item(&self, guid: &str, key: &str) -> Option<bool> {
        let rec = self.raw_record(guid)?;
        let n = rec.item_index(key)?;
        let mut dropped = self.dropped.write();
        if dropped.contains(&(rec.id, n)) {
            return None;
        }
        let left = (0..rec.items.len())
            .filter(|i| !dropped.contains(&(rec.id, *i)))
            .count();
        if left <= 1 {
            return Some(false);
        }
        dropped.insert((rec.id, n));
        Some(true)
    }

    fn is_deleted(&self, guid: &str) -> bool {
        let deleted = self.deleted.read();
        !deleted.is_empty() && deleted.contains(&guid.to_ascii_lowercase())
    }

    /// A tenant of records held in memory; they are sorted by `(start, guid)`,
    /// interactions without content are dropped (the API never lists them).
    pub(crate) fn from_records(mut records: Vec<Record>, anchor: OffsetDateTime) -> Self {
        records.retain(|r| !r.items.is_empty());
        records.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.guid.cmp(&b.guid)));
        for (n, r) in records.iter_mut().enumerate() {
            r.id = n as u64;
        }
        let by_guid = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.guid.to_ascii_lowercase(), i))
            .collect();
        Self::with(Backend::Stored(Stored { records, by_guid }), anchor)
    }

    /// The synthetic tenant of `spec` (O(1): nothing is generated yet).
    pub(crate) fn synthetic(spec: &SyntheticSpec) -> Self {
        Self::with(
            Backend::Synthetic(Box::new(Synthetic::new(spec))),
            spec.anchor,
        )
    }

    /// `rec` with its mutated items' current state, without its deleted items.
    fn overlaid(&self, rec: Record) -> Record {
        let mut rec = self.mutated(rec);
        let dropped = self.dropped.read();
        if !dropped.is_empty() {
            let id = rec.id;
            let mut n = 0;
            rec.items.retain(|_| {
                n += 1;
                !dropped.contains(&(id, n - 1))
            });
        }
        rec
    }

    /// `rec` with its mutated items' current state (every item, in place).
    fn mutated(&self, mut rec: Record) -> Record {
        let overlay = self.overlay.read();
        if !overlay.is_empty() {
            for (n, item) in rec.items.iter_mut().enumerate() {
                if let Some(st) = overlay.get(&(rec.id, n)) {
                    item.state = st.clone();
                }
            }
        }
        rec
    }

    /// The record of `guid` (case-insensitive).
    pub(crate) fn record(&self, guid: &str) -> Option<Record> {
        self.raw_record(guid).map(|rec| self.overlaid(rec))
    }

    /// The record of `guid` as its backend makes it (not deleted).
    fn raw_record(&self, guid: &str) -> Option<Record> {
        let rec = match &self.backend {
            Backend::Stored(s) => s
                .by_guid
                .get(&guid.to_ascii_lowercase())
                .and_then(|&i| s.records.get(i))
                .cloned(),
            Backend::Synthetic(s) => s.lookup(guid),
        }?;
        if self.is_deleted(&rec.guid) {
            return None;
        }
        Some(rec)
    }

    /// A snapshot of one item (key matched case-insensitively).
    pub(crate) fn view(&self, guid: &str, key: &str) -> Option<ItemView> {
        self.record(guid)?.view(key)
    }

    /// The interactions from `from` whose start is at most `until`, in `(start, guid)`
    /// order, produced one at a time.
    pub(crate) fn scan<'a>(
        &'a self,
        from: ScanFrom<'_>,
        until: OffsetDateTime,
    ) -> Box<dyn Iterator<Item = Record> + 'a> {
        match &self.backend {
            Backend::Stored(s) => {
                let recs = &s.records;
                let lo = match from {
                    ScanFrom::Start(t) => recs.partition_point(|r| r.start < t),
                    ScanFrom::After(t, guid) => {
                        recs.partition_point(|r| (r.start, r.guid.as_str()) <= (t, guid))
                    }
                };
                Box::new(
                    recs.get(lo..)
                        .unwrap_or_default()
                        .iter()
                        .take_while(move |r| r.start <= until)
                        .filter(|r| !self.is_deleted(&r.guid))
                        .map(|r| self.overlaid(r.clone())),
                )
            }
            Backend::Synthetic(s) => Box::new(
                s.scan(&from, until)
                    .filter(|r| !self.is_deleted(&r.guid))
                    .map(|r| self.overlaid(r)),
            ),
        }
    }

    /// Number of interactions served now (for a synthetic tenant, those whose start has
    /// passed: it grows while the emulator runs).
    pub fn len(&self) -> usize {
        match &self.backend {
            Backend::Stored(s) => s.records.len(),
            Backend::Synthetic(s) => usize::try_from(s.count()).unwrap_or(usize::MAX),
        }
    }

    /// True when the tenant has no interactions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The end of the synthetic tenant's initial span (the process start rounded down
    /// to the hour, or `--end`): the `--interactions` start before it, and later ones,
    /// unless the end is fixed, after it. For `--data-dir`, the load time.
    pub fn anchor(&self) -> OffsetDateTime {
        self.anchor
    }

    /// `(guid, contentKey)` of the `--big-file-mib` screen recording, if any.
    pub fn big_file(&self) -> Option<(String, String)> {
        match &self.backend {
            Backend::Stored(_) => None,
            Backend::Synthetic(s) => s.big_file(),
        }
    }

    /// How many interaction records the synthetic backend has built so far (0 for
    /// `--data-dir`): a search page, a lookup or a listing builds one per interaction
    /// it touches; nothing else does.
    pub fn records_built(&self) -> u64 {
        match &self.backend {
            Backend::Stored(_) => 0,
            Backend::Synthetic(s) => s.built(),
        }
    }

    /// Every interaction served now as the API serves it, ordered by `start` (then
    /// guid). Ground truth: every item has its `contentLength`, whatever
    /// `--omit-content-length`. Builds them all: for big tenants see
    /// [`Tenant::interactions_between`].
    pub fn interactions(&self) -> Vec<Interaction> {
        self.scan(
            ScanFrom::Start(OffsetDateTime::UNIX_EPOCH - time::Duration::days(365 * 100)),
            OffsetDateTime::now_utc() + time::Duration::days(365 * 1000),
        )
        .map(|r| r.to_model())
        .collect()
    }

    /// The interactions served now whose start is in `[start, end)`, as
    /// [`Tenant::interactions`] gives them (no 7-day limit).
    pub fn interactions_between(
        &self,
        start: OffsetDateTime,
        end: OffsetDateTime,
    ) -> Vec<Interaction> {
        self.scan(ScanFrom::Start(start), end)
            .filter(|r| r.start < end)
            .map(|r| r.to_model())
            .collect()
    }

    /// One interaction as the API serves it (guid matched case-insensitively), with
    /// every `contentLength` (see [`Tenant::interactions`]).
    pub fn interaction(&self, guid: &str) -> Option<Interaction> {
        self.record(guid).map(|r| r.to_model())
    }

    /// One content item's metadata as the API lists it, with its `contentLength`.
    pub fn item(&self, guid: &str, key: &str) -> Option<ContentItem> {
        self.record(guid)?.item(key).map(|i| i.to_model())
    }

    /// The current ETag (quoted) of one item.
    pub fn etag(&self, guid: &str, key: &str) -> Option<String> {
        self.view(guid, key).map(|v| v.etag())
    }

    /// Ground truth: the bytes in `range` (clamped to the item's size) of one item's
    /// current version. `None` if the item does not exist or cannot be read.
    pub fn read(&self, guid: &str, key: &str, range: Range<u64>) -> Option<Vec<u8>> {
        let view = self.view(guid, key)?;
        let end = range.end.min(view.len());
        let start = range.start.min(end);
        let len = usize::try_from(end - start).ok()?;
        let reader = view.state.source.open().ok()?;
        reader.read_blocking(start, len).ok().map(|b| b.to_vec())
    }

    /// Ground truth: all bytes of one item's current version.
    pub fn bytes(&self, guid: &str, key: &str) -> Option<Vec<u8>> {
        self.read(guid, key, 0..u64::MAX)
    }

    /// Makes a new version of one item: new bytes (same length for media and files,
    /// usually a new length for JSON), `lastModified` moved forward by `bump_secs`
    /// (at least 1). Returns the new metadata.
    pub fn mutate(&self, guid: &str, key: &str, bump_secs: u32) -> Option<ContentItem> {
        let mut rec = self.raw_record(guid).map(|r| self.mutated(r))?;
        let n = rec.item_index(key)?;
        if self.dropped.read().contains(&(rec.id, n)) {
            return None;
        }
        let item = rec.items.get_mut(n)?;
        {
            let mut overlay = self.overlay.write();
            let current = overlay.get(&(rec.id, n)).unwrap_or(&item.state);
            let next = item.next_version(current, bump_secs);
            overlay.insert((rec.id, n), next.clone());
            item.state = next;
        }
        Some(item.to_model())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use serde_json::Map;

    use super::*;
    use crate::emulator::media::WavBody;
    use crate::emulator::record::{Item, Regen};
    use crate::emulator::source::ContentSource;

    fn tiny() -> Tenant {
        let t0 = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("ts");
        let item = |key: &str, regen: Regen, source: ContentSource| {
            Item::new(
                key.into(),
                key.into(),
                "application/octet-stream".into(),
                regen,
                7,
                t0,
                source,
            )
        };
        let rec = |guid: &str, start: i64, items: Vec<Item>| Record {
            id: 0,
            guid: guid.into(),
            start: t0 + time::Duration::seconds(start),
            connect_from: None,
            connect_to: None,
            direction: None,
            agents: vec![],
            extra: Map::new(),
            items,
        };
        Tenant::from_records(
            vec![
                rec(
                    "bbbbbbbb-0000-4000-8000-000000000000",
                    10,
                    vec![item(
                        "callRecording",
                        Regen::Wav { secs: 1 },
                        ContentSource::Procedural(Arc::new(WavBody::new(7, 1))),
                    )],
                ),
                rec(
                    "aaaaaaaa-0000-4000-8000-000000000000",
                    5,
                    vec![item(
                        "note",
                        Regen::Xor,
                        ContentSource::Memory(Bytes::from_static(b"abc")),
                    )],
                ),
                rec("cccccccc-0000-4000-8000-000000000000", 1, vec![]),
            ],
            t0,
        )
    }

    #[test]
    fn sorted_and_empty_dropped() {
        let t = tiny();
        assert_eq!(t.len(), 2);
        assert!(t.interactions()[0].guid.starts_with("aaaa"));
        assert!(t
            .interaction("BBBBBBBB-0000-4000-8000-000000000000")
            .is_some());
        let after = t.scan(
            ScanFrom::After(
                OffsetDateTime::from_unix_timestamp(1_700_000_005).expect("ts"),
                "aaaaaaaa-0000-4000-8000-000000000000",
            ),
            OffsetDateTime::now_utc(),
        );
        let guids: Vec<String> = after.map(|r| r.guid).collect();
        assert_eq!(guids, ["bbbbbbbb-0000-4000-8000-000000000000"]);
    }

    #[test]
    fn the_last_item_of_an_interaction_is_not_deleted_alone() {
        let t = tiny();
        let g = "aaaaaaaa-0000-4000-8000-000000000000";
        assert_eq!(t.delete_item(g, "nope"), None);
        assert_eq!(t.delete_item(g, "note"), Some(false), "its only item");
        assert!(t.item(g, "note").is_some(), "still served");
        assert!(t.delete(g));
        assert_eq!(t.delete_item(g, "note"), None, "a deleted interaction");
    }

    #[test]
    fn mutate_changes_version_etag_and_bytes() {
        let t = tiny();
        let g = "aaaaaaaa-0000-4000-8000-000000000000";
        let before = t.etag(g, "NOTE").expect("etag");
        let lm = t.item(g, "note").and_then(|i| i.last_modified).expect("lm");
        let after = t.mutate(g, "note", 30).expect("mutate");
        assert_eq!(after.last_modified, Some(lm + time::Duration::seconds(30)));
        assert_ne!(t.etag(g, "note").expect("etag"), before);
        assert_ne!(t.bytes(g, "note").expect("bytes"), b"abc".to_vec());
        assert_eq!(t.read(g, "note", 1..100).map(|b| b.len()), Some(2));
        // A second version builds on the first.
        let again = t.mutate(g, "note", 30).expect("mutate");
        assert_eq!(again.last_modified, Some(lm + time::Duration::seconds(60)));
        assert_eq!(t.bytes(g, "note").map(|b| b.len()), Some(3));
    }
}
