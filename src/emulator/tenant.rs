//! The tenant the emulator serves: interactions, their content items and the current
//! version of each item's bytes. Built by `synthetic` (from `--seed`) or
//! `datadir` (from `--data-dir`); it is also the ground truth of tests.
//!
//! Everything is immutable except each item's `ItemState` (bytes, `lastModified`,
//! version), which `POST /_emulator/mutate` replaces.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::media::{WavBody, WebmBody};
use super::source::ContentSource;
use crate::model::{ContentItem, IdRef, Interaction};

/// Rebuilds a generated body (JSON, text attachment) from a seed: a new seed gives a new
/// version of the content.
pub(crate) type Generator = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// How a new version of an item's bytes is made when it is mutated.
#[derive(Clone)]
pub(crate) enum Regen {
    /// A WAV of the same duration with another seed.
    Wav { secs: u32 },
    /// A WebM of the same size with another seed.
    Webm { len: u64 },
    /// Regenerated JSON or text (its length usually changes).
    Generated(Generator),
    /// Same bytes XOR-ed with a per-version mask (files, static blobs).
    Xor,
}

/// The mutable part of a content item.
#[derive(Clone, Debug)]
pub(crate) struct ItemState {
    /// 0 for the original bytes, +1 per mutation.
    pub version: u32,
    /// Seed of the current bytes (procedural and JSON items).
    pub seed: u64,
    pub last_modified: OffsetDateTime,
    pub source: ContentSource,
}

/// One content item of an interaction.
pub(crate) struct Item {
    pub key: String,
    pub kind: String,
    pub content_type: String,
    pub owning_agent: Option<String>,
    pub owning_interaction_plan: Option<String>,
    pub properties: Map<String, Value>,
    pub extra: Map<String, Value>,
    pub regen: Regen,
    pub state: RwLock<ItemState>,
}

/// One interaction.
pub(crate) struct Record {
    pub guid: String,
    pub start: OffsetDateTime,
    pub connect_from: Option<String>,
    pub connect_to: Option<String>,
    pub direction: Option<String>,
    pub agents: Vec<String>,
    pub extra: Map<String, Value>,
    pub items: Vec<Item>,
}

/// A consistent snapshot of one item, for serving it.
#[derive(Clone, Debug)]
pub(crate) struct ItemView {
    pub guid: String,
    pub key: String,
    pub kind: String,
    pub content_type: String,
    pub state: ItemState,
}

impl ItemView {
    /// Size of the current version in bytes.
    pub fn len(&self) -> u64 {
        self.state.source.len()
    }

    /// Strong entity tag (quoted) of the current version: changes whenever the bytes,
    /// length or `lastModified` change.
    pub fn etag(&self) -> String {
        let mut h = Fnv::new();
        h.write(self.guid.as_bytes());
        h.write(b"/");
        h.write(self.key.as_bytes());
        h.write(&self.state.last_modified.unix_timestamp().to_le_bytes());
        h.write(&self.len().to_le_bytes());
        h.write(&self.state.version.to_le_bytes());
        h.write(&self.state.seed.to_le_bytes());
        format!("\"{:016x}\"", h.finish())
    }
}

impl Item {
    /// An item at version 0 with no owner, properties or extra fields (set them after).
    pub fn new(
        key: String,
        kind: String,
        content_type: String,
        regen: Regen,
        seed: u64,
        last_modified: OffsetDateTime,
        source: ContentSource,
    ) -> Item {
        Item {
            key,
            kind,
            content_type,
            owning_agent: None,
            owning_interaction_plan: None,
            properties: Map::new(),
            extra: Map::new(),
            regen,
            state: RwLock::new(ItemState {
                version: 0,
                seed,
                last_modified,
                source,
            }),
        }
    }

    /// The item as the API lists it.
    pub fn to_model(&self) -> ContentItem {
        let st = self.state.read();
        ContentItem {
            content_key: self.key.clone(),
            kind: self.kind.clone(),
            content_type: self.content_type.clone(),
            content_length: Some(st.source.len()),
            last_modified: Some(st.last_modified),
            owning_agent: self.owning_agent.clone().map(|id| IdRef { id }),
            owning_interaction_plan: self.owning_interaction_plan.clone().map(|id| IdRef { id }),
            properties: self.properties.clone(),
            extra: self.extra.clone(),
        }
    }
}

impl Record {
    /// The interaction as the API serves it.
    pub fn to_model(&self) -> Interaction {
        Interaction {
            guid: self.guid.clone(),
            start: self.start,
            connect_from: self.connect_from.clone(),
            connect_to: self.connect_to.clone(),
            direction: self.direction.clone(),
            handling_agents: self
                .agents
                .iter()
                .map(|id| IdRef { id: id.clone() })
                .collect(),
            content: self.items.iter().map(Item::to_model).collect(),
            extra: self.extra.clone(),
        }
    }

    /// The item whose key matches `key` case-insensitively (exact match preferred).
    pub fn item(&self, key: &str) -> Option<&Item> {
        self.items
            .iter()
            .find(|i| i.key == key)
            .or_else(|| self.items.iter().find(|i| i.key.eq_ignore_ascii_case(key)))
    }
}

/// The interactions served by one emulator, ordered by `(start, guid)`.
pub struct Tenant {
    records: Vec<Record>,
    by_guid: HashMap<String, usize>,
    anchor: OffsetDateTime,
    big_file: Option<(String, String)>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("interactions", &self.records.len())
            .field("anchor", &self.anchor)
            .field("big_file", &self.big_file)
            .finish()
    }
}

impl Tenant {
    /// Builds a tenant; records are sorted by `(start, guid)`, interactions without
    /// content are dropped (the API never lists them).
    pub(crate) fn new(
        mut records: Vec<Record>,
        anchor: OffsetDateTime,
        big_file: Option<(String, String)>,
    ) -> Self {
        records.retain(|r| !r.items.is_empty());
        records.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.guid.cmp(&b.guid)));
        let by_guid = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.guid.to_ascii_lowercase(), i))
            .collect();
        Self {
            records,
            by_guid,
            anchor,
            big_file,
        }
    }

    pub(crate) fn records(&self) -> &[Record] {
        &self.records
    }

    /// The record of `guid` (case-insensitive).
    pub(crate) fn record(&self, guid: &str) -> Option<&Record> {
        self.by_guid
            .get(&guid.to_ascii_lowercase())
            .and_then(|&i| self.records.get(i))
    }

    /// A snapshot of one item (key matched case-insensitively).
    pub(crate) fn view(&self, guid: &str, key: &str) -> Option<ItemView> {
        let rec = self.record(guid)?;
        let item = rec.item(key)?;
        Some(ItemView {
            guid: rec.guid.clone(),
            key: item.key.clone(),
            kind: item.kind.clone(),
            content_type: item.content_type.clone(),
            state: item.state.read().clone(),
        })
    }

    /// Number of interactions.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the tenant has no interactions.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The "now" the synthetic tenant was generated against (the process start rounded
    /// down to the hour); every synthetic interaction starts before it.
    pub fn anchor(&self) -> OffsetDateTime {
        self.anchor
    }

    /// `(guid, contentKey)` of the `--big-file-mib` screen recording, if any.
    pub fn big_file(&self) -> Option<(String, String)> {
        self.big_file.clone()
    }

    /// Every interaction as the API serves it, ordered by `start` (then guid). Ground
    /// truth: every item has its `contentLength`, whatever `--omit-content-length`.
    pub fn interactions(&self) -> Vec<Interaction> {
        self.records.iter().map(Record::to_model).collect()
    }

    /// One interaction as the API serves it (guid matched case-insensitively), with
    /// every `contentLength` (see [`Tenant::interactions`]).
    pub fn interaction(&self, guid: &str) -> Option<Interaction> {
        self.record(guid).map(Record::to_model)
    }

    /// One content item's metadata as the API lists it, with its `contentLength`.
    pub fn item(&self, guid: &str, key: &str) -> Option<ContentItem> {
        self.record(guid)?.item(key).map(Item::to_model)
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
        let item = self.record(guid)?.item(key)?;
        {
            let mut st = item.state.write();
            let version = st.version + 1;
            let seed = mix(st.seed, u64::from(version));
            let source = match &item.regen {
                Regen::Wav { secs } => {
                    ContentSource::Procedural(Arc::new(WavBody::new(seed, *secs)))
                }
                Regen::Webm { len } => {
                    ContentSource::Procedural(Arc::new(WebmBody::new(seed, *len)))
                }
                Regen::Generated(gen) => ContentSource::Memory(Bytes::from(gen(seed))),
                Regen::Xor => xor_version(&st.source, seed),
            };
            *st = ItemState {
                version,
                seed,
                last_modified: st.last_modified
                    + time::Duration::seconds(i64::from(bump_secs.max(1))),
                source,
            };
        }
        Some(item.to_model())
    }
}

/// The next version of a source that can only be scrambled.
fn xor_version(source: &ContentSource, seed: u64) -> ContentSource {
    let mask = (seed as u8) | 1;
    match source {
        ContentSource::File { file, xor } => ContentSource::File {
            file: file.clone(),
            xor: xor ^ mask,
        },
        ContentSource::Memory(b) => {
            ContentSource::Memory(b.iter().map(|x| x ^ mask).collect::<Vec<u8>>().into())
        }
        ContentSource::Procedural(b) => ContentSource::Procedural(b.clone()),
    }
}

/// SplitMix64-style mixing of two values: derives independent seeds.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a, 64 bit: a stable hash for ETags and fingerprints (stable across builds,
/// unlike `DefaultHasher`).
pub(crate) struct Fnv(u64);

impl Fnv {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            guid: guid.into(),
            start: t0 + time::Duration::seconds(start),
            connect_from: None,
            connect_to: None,
            direction: None,
            agents: vec![],
            extra: Map::new(),
            items,
        };
        Tenant::new(
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
            None,
        )
    }

    #[test]
    fn sorted_and_empty_dropped() {
        let t = tiny();
        assert_eq!(t.len(), 2);
        assert!(t.records()[0].guid.starts_with("aaaa"));
        assert!(t
            .interaction("BBBBBBBB-0000-4000-8000-000000000000")
            .is_some());
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
    }
}
