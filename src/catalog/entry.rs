//! Catalog entries, compact: one interaction directory as the listing says it, in
//! about 500 heap bytes and 3 allocations (strings that repeat interned, GUIDs — the
//! interaction's and content keys that are GUIDs — as 16 bytes, phone numbers inline,
//! no rendered JSON, no per-file objects), so a million listed interactions fit in
//! about half a GiB (`footprint.rs` measures it).
//!
//! Invariants:
//! - an [`InteractionEntry`] keeps every field of the interaction the API returned
//!   (unknown ones too): [`InteractionEntry::interaction`] gives it back unchanged, so
//!   `.interaction.json` (rendered on demand) is byte for byte what it always was;
//! - a file's version is what the listing says (size, `lastModified`), named by its
//!   [`ContentKey`]; the [`FileEntry`] of a version in use is one object with one pin
//!   (`live.rs`), built on demand;
//! - a re-list reports a file as changed exactly when its version key changes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime};

use super::compact::{Guid, Spelled, Text};
use super::{ino, Catalog};
use crate::cache::ContentId;
use crate::model::{guid_bytes, guid_text, ContentItem, IdRef, Interaction};
use crate::version::{ContentKey, ContentVersion};

/// One content file of an interaction, as a version in use.
#[derive(Debug)]
pub struct FileEntry {
    pub key: Arc<str>,
    pub ino: u64,
    pub kind: Arc<str>,
    pub content_type: Arc<str>,
    /// 0 until learned when `size_known` is false.
    pub size: u64,
    /// The listing gave `contentLength` (or a probe learned the size).
    pub size_known: bool,
    pub mtime: OffsetDateTime,
    /// Which cache blocks hold this version.
    pub content: ContentId,
    pub version: Arc<ContentVersion>,
}

/// A content item's key, type and content type: interned together (a handful of
/// distinct triples per tenant). The key is `""` for items keyed by a GUID (kept in
/// the item's 16 bytes instead, as those never repeat).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct Names {
    pub key: Arc<str>,
    pub kind: Arc<str>,
    pub content_type: Arc<str>,
}

/// What the listing says of one content item.
#[derive(Debug)]
pub(super) struct FileMeta {
    pub names: Arc<Names>,
    size: u64,
    rest: Option<Box<ItemRest>>,
    pub last_modified: Option<OffsetDateTime>,
    /// The key, when it is a canonical GUID (then `names.key` is empty).
    guid_key: Option<[u8; 16]>,
    has_size: bool,
    /// A file of the directory (a usable name, its first use in the item list).
    pub shown: bool,
}

/// The rarely present parts of a content item.
#[derive(Debug, Default)]
struct ItemRest {
    owning_agent: Option<IdRef>,
    owning_interaction_plan: Option<IdRef>,
    properties: Map<String, Value>,
    extra: Map<String, Value>,
}

/// `(direction, connectFrom, connectTo, handling agents)` of an interaction.
pub type Parties<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    &'a [Arc<str>],
);

/// One interaction: a directory of files.
#[derive(Debug)]
pub struct InteractionEntry {
    guid: Guid,
    pub start: OffsetDateTime,
    connect_from: Option<Text>,
    connect_to: Option<Text>,
    direction: Option<Arc<str>>,
    agents: Box<[Arc<str>]>,
    files: Box<[FileMeta]>,
    extra: Option<Box<Map<String, Value>>>,
    meta_len: u32,
}

impl InteractionEntry {
    /// Its GUID, as the API spelled it.
    pub fn guid(&self) -> Spelled<'_> {
        self.guid.text()
    }

    pub(super) fn guid_key(&self) -> &Guid {
        &self.guid
    }

    pub fn ino(&self) -> u64 {
        ino::interaction(&self.guid())
    }

    pub fn meta_ino(&self) -> u64 {
        ino::meta(&self.guid())
    }

    pub fn start_date(&self) -> Date {
        self.start.date()
    }

    /// Newest `lastModified` of its files (or its start).
    pub fn meta_mtime(&self) -> OffsetDateTime {
        self.metas()
            .map(|f| f.last_modified.unwrap_or(self.start))
            .max()
            .unwrap_or(self.start)
            .max(self.start)
    }

    /// `(direction, connectFrom, connectTo, handling agents)` as listed (views' names).
    pub fn parties(&self) -> Parties<'_> {
        fn text(t: &Option<Text>) -> Option<&str> {
            t.as_ref().map(Text::as_str)
        }
        let direction = self.direction.as_deref();
        (
            direction,
            text(&self.connect_from),
            text(&self.connect_to),
            &self.agents,
        )
    }

    /// The names of its files, in listing order.
    pub fn keys(&self) -> impl Iterator<Item = Spelled<'_>> {
        self.metas().map(FileMeta::key)
    }

    pub(super) fn meta(&self, key: &str) -> Option<&FileMeta> {
        self.metas().find(|f| f.is(key))
    }

    pub(super) fn metas(&self) -> impl Iterator<Item = &FileMeta> {
        self.files.iter().filter(|f| f.shown)
    }

    /// The interaction as the API returned it.
    pub fn interaction(&self) -> Interaction {
        Interaction {
            guid: self.guid().to_string(),
            start: self.start,
            connect_from: self.connect_from.as_ref().map(|t| t.as_str().to_string()),
            connect_to: self.connect_to.as_ref().map(|t| t.as_str().to_string()),
            direction: self.direction.as_deref().map(str::to_string),
            handling_agents: self
                .agents
                .iter()
                .map(|a| IdRef { id: a.to_string() })
                .collect(),
            content: self.files.iter().map(FileMeta::item).collect(),
            extra: self.extra.as_deref().cloned().unwrap_or_default(),
        }
    }

    /// `.interaction.json`: the metadata as the API returned it, pretty-printed.
    pub fn meta_json(&self) -> Bytes {
        Bytes::from(render(&self.interaction()))
    }

    /// The length of [`InteractionEntry::meta_json`].
    pub fn meta_len(&self) -> u64 {
        u64::from(self.meta_len)
    }
}

fn render(i: &Interaction) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(i).unwrap_or_default();
    out.push(b'\n');
    out
}

/// `render(i).len()`, counted as it is written (nothing allocated: every interaction
/// a listing or a reload makes an entry of is measured).
fn rendered_len(i: &Interaction) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match serde_json::to_writer_pretty(&mut n, i) {
        Ok(()) => n.0 + 1,
        Err(_) => 1,
    }
}

impl FileMeta {
    /// Its content key, as the API spelled it.
    pub fn key(&self) -> Spelled<'_> {
        match &self.guid_key {
            Some(b) => Spelled::Guid(guid_text(b)),
            None => Spelled::Str(&self.names.key),
        }
    }

    /// Is its content key `key`?
    pub fn is(&self, key: &str) -> bool {
        match &self.guid_key {
            Some(b) => guid_text(b) == key.as_bytes(),
            None => *self.names.key == *key,
        }
    }

    /// `contentLength`, if the listing gave it.
    pub fn size(&self) -> Option<u64> {
        self.has_size.then_some(self.size)
    }

    fn item(&self) -> ContentItem {
        let rest = self.rest.as_deref();
        ContentItem {
            content_key: self.key().to_string(),
            kind: self.names.kind.to_string(),
            content_type: self.names.content_type.to_string(),
            content_length: self.size(),
            last_modified: self.last_modified,
            owning_agent: rest.and_then(|r| r.owning_agent.clone()),
            owning_interaction_plan: rest.and_then(|r| r.owning_interaction_plan.clone()),
            properties: rest.map(|r| r.properties.clone()).unwrap_or_default(),
            extra: rest.map(|r| r.extra.clone()).unwrap_or_default(),
        }
    }
}

/// What a re-list changed.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Files with a new version.
    pub files: Vec<ChangedFile>,
    /// Directories (inodes) whose entries changed.
    pub dirs: Vec<u64>,
    /// Content versions that changed: whatever a tier keeps of them can go.
    pub purged: Vec<ContentKey>,
    /// Interactions the API no longer lists (already out of the listing): to erase.
    pub gone: Vec<Arc<InteractionEntry>>,
    /// Content items the API no longer has, of interactions it still has: `(guid,
    /// key, the version they had)`, to erase.
    pub content_gone: Vec<(String, String, ContentKey)>,
    /// The same, by day and guid, for people (`vccfs refresh`).
    pub days: std::collections::BTreeMap<Date, DayDiff>,
}

/// What a re-list changed in one day: guids of interactions that appeared, vanished,
/// or have a file of a new version (or files added or gone).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DayDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Refresh {
    /// Add what `other` changed.
    pub fn merge(&mut self, other: Refresh) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
        self.dirs.sort_unstable();
        self.dirs.dedup();
        self.purged.extend(other.purged);
        self.gone.extend(other.gone);
        self.content_gone.extend(other.content_gone);
        for (day, d) in other.days {
            let mine = self.days.entry(day).or_default();
            mine.added.extend(d.added);
            mine.removed.extend(d.removed);
            mine.changed.extend(d.changed);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.dirs.is_empty()
            && self.purged.is_empty()
            && self.gone.is_empty()
            && self.content_gone.is_empty()
    }
}

pub(super) fn same_keys(a: &InteractionEntry, b: &InteractionEntry) -> bool {
    a.keys().eq(b.keys())
}

/// A file whose version changed in a re-list.
#[derive(Debug, Clone)]
pub struct ChangedFile {
    pub ino: u64,
    /// The version it had.
    pub old: ContentKey,
}

impl Catalog {
    /// The version key of file `m` of `guid` (its learned size if the listing had none).
    pub(super) fn version_key(&self, guid: &str, m: &FileMeta) -> (ContentKey, Option<u64>) {
        let key = m.key();
        let unsized_key = || ContentKey::new(self.tenant, guid, &key, 0, m.last_modified);
        let size = m.size().or_else(|| self.live.learned(&unsized_key()));
        let id = ContentKey::new(self.tenant, guid, &key, size.unwrap_or(0), m.last_modified);
        (id, size)
    }

    /// File `key` of `e` as a version in use (its size if learned since listing).
    pub fn file(&self, e: &InteractionEntry, key: &str) -> Option<Arc<FileEntry>> {
        let m = e.meta(key)?;
        let guid = e.guid();
        let (id, size) = self.version_key(&guid, m);
        let mtime = m.last_modified.unwrap_or(e.start);
        Some(self.live.get_or(id, || {
            self.new_file(
                &guid,
                [
                    match m.guid_key {
                        Some(_) => Arc::from(key),
                        None => Arc::clone(&m.names.key),
                    },
                    Arc::clone(&m.names.kind),
                    Arc::clone(&m.names.content_type),
                ],
                size,
                mtime,
                m.last_modified,
            )
        }))
    }

    /// A new file entry: a new version object (unpinned) and a new cache identity.
    pub(super) fn new_file(
        &self,
        guid: &str,
        [key, kind, content_type]: [Arc<str>; 3],
        size: Option<u64>,
        mtime: OffsetDateTime,
        last_modified: Option<OffsetDateTime>,
    ) -> FileEntry {
        FileEntry {
            ino: ino::file(guid, &key),
            version: Arc::new(ContentVersion::new(
                self.tenant,
                guid,
                &key,
                size.unwrap_or(0),
                last_modified,
            )),
            key,
            kind,
            content_type,
            size: size.unwrap_or(0),
            size_known: size.is_some(),
            mtime,
            content: ContentId(self.next_content.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// Every file of `e`, as versions in use.
    #[cfg(test)]
    pub fn files(&self, e: &InteractionEntry) -> Vec<Arc<FileEntry>> {
        e.keys().filter_map(|k| self.file(e, &k)).collect()
    }

    /// The version keys of `e`'s files (what the tiers may keep of it).
    pub(super) fn version_keys(&self, e: &InteractionEntry) -> Vec<ContentKey> {
        let guid = e.guid();
        e.metas().map(|m| self.version_key(&guid, m).0).collect()
    }

    /// The compact entry of `interaction`.
    pub(super) fn entry(&self, interaction: Interaction) -> InteractionEntry {
        let meta_len = u32::try_from(rendered_len(&interaction)).unwrap_or(u32::MAX);
        let shown_items = interaction.shown();
        let Interaction {
            guid,
            start,
            connect_from,
            connect_to,
            direction,
            handling_agents,
            content,
            extra,
        } = interaction;
        let mut files: Vec<FileMeta> = Vec::with_capacity(content.len());
        for (item, shown) in content.into_iter().zip(shown_items) {
            if !crate::model::is_content_key(&item.content_key) {
                tracing::warn!(%guid, key = %item.content_key, "skipping content with an unusable key");
            }
            let ContentItem {
                content_key,
                kind,
                content_type,
                content_length,
                last_modified,
                owning_agent,
                owning_interaction_plan,
                properties,
                extra,
            } = item;
            let rest = (owning_agent.is_some()
                || owning_interaction_plan.is_some()
                || !properties.is_empty()
                || !extra.is_empty())
            .then(|| {
                Box::new(ItemRest {
                    owning_agent,
                    owning_interaction_plan,
                    properties,
                    extra,
                })
            });
            let guid_key = guid_bytes(&content_key);
            let key = if guid_key.is_some() { "" } else { &content_key };
            files.push(FileMeta {
                names: self.interner.names(key, &kind, &content_type),
                size: content_length.unwrap_or(0),
                rest,
                last_modified,
                guid_key,
                has_size: content_length.is_some(),
                shown,
            });
        }
        InteractionEntry {
            guid: Guid::new(&guid),
            start,
            connect_from: connect_from.as_deref().map(Text::new),
            connect_to: connect_to.as_deref().map(Text::new),
            direction: direction.map(|s| self.interner.intern(&s)),
            agents: handling_agents
                .iter()
                .map(|a| self.interner.intern(&a.id))
                .collect(),
            files: files.into_boxed_slice(),
            extra: (!extra.is_empty()).then(|| Box::new(extra)),
            meta_len,
        }
    }

    /// The files of `previous` that `entry` no longer has: `(key, version)`.
    pub(super) fn removed_files(
        &self,
        previous: &InteractionEntry,
        entry: &InteractionEntry,
    ) -> Vec<(String, ContentKey)> {
        let guid = previous.guid();
        previous
            .metas()
            .filter(|m| entry.meta(&m.key()).is_none())
            .map(|m| (m.key().to_string(), self.version_key(&guid, m).0))
            .collect()
    }

    /// Report in `changed` the files of `entry` whose version differs from `previous`.
    pub(super) fn changes(
        &self,
        previous: &InteractionEntry,
        entry: &InteractionEntry,
        changed: &mut Vec<ChangedFile>,
    ) {
        let (old_guid, guid) = (previous.guid(), entry.guid());
        for m in entry.metas() {
            let key = m.key();
            let Some(old) = previous.meta(&key) else {
                continue;
            };
            let (old_key, _) = self.version_key(&old_guid, old);
            let (new_key, _) = self.version_key(&guid, m);
            if old_key != new_key {
                changed.push(ChangedFile {
                    ino: ino::file(&guid, &key),
                    old: old_key,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
