//! One interaction ([`Record`]) and its content items ([`Item`]) as the emulator holds
//! them while serving: built by `synthetic` on demand (from `--seed` and the
//! interaction's index) or loaded by `datadir`, each item with its current
//! [`ItemState`] (bytes, `lastModified`, version), which the tenant's mutation overlay
//! replaces after `POST /_emulator/mutate`.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::media::{WavBody, WebmBody};
use super::source::{ContentSource, Generated, Generator};
use crate::model::{ContentItem, IdRef, Interaction};

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

impl Regen {
    /// The bytes of the version whose seed is `seed`, for the procedural kinds; `None`
    /// for [`Regen::Xor`] (its bytes derive from the previous version).
    pub fn source(&self, seed: u64) -> Option<ContentSource> {
        Some(match self {
            Regen::Wav { secs } => ContentSource::Procedural(Arc::new(WavBody::new(seed, *secs))),
            Regen::Webm { len } => ContentSource::Procedural(Arc::new(WebmBody::new(seed, *len))),
            Regen::Generated(gen) => {
                ContentSource::Generated(Arc::new(Generated::new(gen.clone(), seed)))
            }
            Regen::Xor => return None,
        })
    }
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
#[derive(Clone)]
pub(crate) struct Item {
    pub key: String,
    pub kind: String,
    pub content_type: String,
    pub owning_agent: Option<String>,
    pub owning_interaction_plan: Option<String>,
    pub properties: Map<String, Value>,
    pub extra: Map<String, Value>,
    pub regen: Regen,
    pub state: ItemState,
}

/// One interaction.
#[derive(Clone)]
pub(crate) struct Record {
    /// Its place in the tenant: the synthetic index, or the position in a data-dir
    /// tenant. Keys the mutation overlay.
    pub id: u64,
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
            state: ItemState {
                version: 0,
                seed,
                last_modified,
                source,
            },
        }
    }

    /// The item as the API lists it (generates a document to learn its length).
    pub fn to_model(&self) -> ContentItem {
        let st = &self.state;
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

    /// The version after `current` (this item's state, or a later one): new bytes
    /// (same length for media and files, usually a new length for JSON),
    /// `lastModified` moved forward by `bump_secs` (at least 1).
    pub fn next_version(&self, current: &ItemState, bump_secs: u32) -> ItemState {
        let version = current.version + 1;
        let seed = mix(current.seed, u64::from(version));
        let source = self
            .regen
            .source(seed)
            .unwrap_or_else(|| xor_version(&current.source, seed));
        ItemState {
            version,
            seed,
            last_modified: current.last_modified
                + time::Duration::seconds(i64::from(bump_secs.max(1))),
            source,
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

    /// The position of the item whose key matches `key` case-insensitively (exact
    /// match preferred).
    pub fn item_index(&self, key: &str) -> Option<usize> {
        self.items.iter().position(|i| i.key == key).or_else(|| {
            self.items
                .iter()
                .position(|i| i.key.eq_ignore_ascii_case(key))
        })
    }

    /// The item whose key matches `key` (see [`Record::item_index`]).
    pub fn item(&self, key: &str) -> Option<&Item> {
        self.item_index(key).and_then(|n| self.items.get(n))
    }

    /// A snapshot of the item `key`, for serving it.
    pub fn view(&self, key: &str) -> Option<ItemView> {
        let item = self.item(key)?;
        Some(ItemView {
            guid: self.guid.clone(),
            key: item.key.clone(),
            kind: item.kind.clone(),
            content_type: item.content_type.clone(),
            state: item.state.clone(),
        })
    }
}

/// The next version of a source that can only be scrambled.
fn xor_version(source: &ContentSource, seed: u64) -> ContentSource {
    let mask = (seed as u8) | 1;
    let scrambled =
        |b: &Bytes| ContentSource::Memory(b.iter().map(|x| x ^ mask).collect::<Vec<u8>>().into());
    match source {
        ContentSource::File { file, xor } => ContentSource::File {
            file: file.clone(),
            xor: xor ^ mask,
        },
        ContentSource::Memory(b) => scrambled(b),
        ContentSource::Generated(g) => scrambled(g.bytes()),
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
