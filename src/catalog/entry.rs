//! Catalog entries: one interaction directory and its files, as the listing says them.
//!
//! Invariants: a [`FileEntry`] is one content version — a new `lastModified` or size
//! makes a new entry (new [`ContentId`], new [`ContentVersion`]), never an edit; an
//! entry rebuilt from a new listing keeps the file entries whose version did not
//! change, so open handles and cached blocks stay valid across re-lists.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use time::{Date, OffsetDateTime};

use super::{ino, Catalog};
use crate::cache::ContentId;
use crate::model::Interaction;
use crate::version::{ContentKey, ContentVersion};

/// One content file of an interaction.
#[derive(Debug)]
pub struct FileEntry {
    pub key: String,
    pub ino: u64,
    pub kind: String,
    pub content_type: String,
    /// 0 until learned when `size_known` is false.
    pub size: u64,
    /// The listing gave `contentLength` (or a probe learned the size).
    pub size_known: bool,
    pub mtime: OffsetDateTime,
    /// Which cache blocks hold this version.
    pub content: ContentId,
    pub version: Arc<ContentVersion>,
    /// For a file listed without a size: the same file with its size learned
    /// ([`Catalog::sized`]); lookups through the interaction see that one.
    pub(super) probed: OnceLock<Arc<FileEntry>>,
}

impl FileEntry {
    /// This file, or its probed twin once its size is known.
    fn current(self: &Arc<FileEntry>) -> &Arc<FileEntry> {
        self.probed.get().unwrap_or(self)
    }
}

/// One interaction: a directory of files.
#[derive(Debug)]
pub struct InteractionEntry {
    pub guid: String,
    pub ino: u64,
    pub meta_ino: u64,
    pub interaction: Interaction,
    /// `.interaction.json`: the metadata as the API returned it.
    pub meta_json: Bytes,
    /// Newest `lastModified` of its files (or its start).
    pub meta_mtime: OffsetDateTime,
    files: Vec<Arc<FileEntry>>,
}

impl InteractionEntry {
    /// File `key`, with its size if it has been learned since listing.
    pub fn file(&self, key: &str) -> Option<&Arc<FileEntry>> {
        self.files
            .iter()
            .find(|f| f.key == key)
            .map(FileEntry::current)
    }

    /// Its files in listing order (sizes as learned).
    pub fn files(&self) -> impl Iterator<Item = &Arc<FileEntry>> {
        self.files.iter().map(FileEntry::current)
    }
    pub fn start_date(&self) -> Date {
        self.interaction.start.date()
    }
}

/// What a re-list changed.
#[derive(Debug, Default)]
pub struct Refresh {
    /// Files with a new version.
    pub files: Vec<ChangedFile>,
    /// Directories (inodes) whose entries changed.
    pub dirs: Vec<u64>,
    /// Content versions that changed or vanished: whatever a tier keeps of them can go.
    pub purged: Vec<ContentKey>,
}

impl Refresh {
    /// Add what `other` changed.
    pub fn merge(&mut self, other: Refresh) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
        self.dirs.sort_unstable();
        self.dirs.dedup();
        self.purged.extend(other.purged);
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty() && self.purged.is_empty()
    }
}

pub(super) fn same_keys(a: &InteractionEntry, b: &InteractionEntry) -> bool {
    a.files.len() == b.files.len() && a.files.iter().zip(&b.files).all(|(x, y)| x.key == y.key)
}

/// A file whose version changed in a re-list.
#[derive(Debug, Clone)]
pub struct ChangedFile {
    pub ino: u64,
    /// The version it had.
    pub old: ContentKey,
}

/// What the listing says of one file.
pub(super) struct Listed<'a> {
    pub key: &'a str,
    pub kind: &'a str,
    pub content_type: &'a str,
    pub size: Option<u64>,
    pub mtime: OffsetDateTime,
    pub last_modified: Option<OffsetDateTime>,
}

impl Catalog {
    /// A new file entry (a new content version) of interaction `guid`.
    pub(super) fn file_entry(&self, guid: &str, l: Listed<'_>) -> FileEntry {
        let size = l.size.unwrap_or(0);
        FileEntry {
            key: l.key.to_string(),
            ino: ino::file(guid, l.key),
            kind: l.kind.to_string(),
            content_type: l.content_type.to_string(),
            size,
            size_known: l.size.is_some(),
            mtime: l.mtime,
            content: ContentId(self.next_content.fetch_add(1, Ordering::Relaxed)),
            version: Arc::new(ContentVersion::new(
                self.tenant,
                guid,
                l.key,
                size,
                l.last_modified,
            )),
            probed: OnceLock::new(),
        }
    }

    /// Build an entry; files unchanged since `previous` keep their content version.
    pub(super) fn entry(
        &self,
        interaction: Interaction,
        previous: Option<&InteractionEntry>,
        changed: &mut Vec<ChangedFile>,
    ) -> InteractionEntry {
        let guid = interaction.guid.clone();
        let start = interaction.start;
        let mut files = Vec::new();
        for item in &interaction.content {
            // Keys that cannot be file names are skipped (logged once per listing).
            if !crate::model::is_content_key(&item.content_key) {
                tracing::warn!(%guid, key = %item.content_key, "skipping content with an unusable key");
                continue;
            }
            if files
                .iter()
                .any(|f: &Arc<FileEntry>| f.key == item.content_key)
            {
                continue;
            }
            let size = item.content_length;
            let mtime = item.last_modified.unwrap_or(start);
            let ino = ino::file(&guid, &item.content_key);
            // A listing without a size keeps the size learned before, if any.
            let reuse = previous
                .and_then(|p| p.file(&item.content_key))
                .filter(|f| size.is_none_or(|s| s == f.size && f.size_known) && f.mtime == mtime);
            let file = match reuse {
                Some(f) => Arc::clone(f),
                None => {
                    if let Some(old) = previous.and_then(|p| p.file(&item.content_key)) {
                        changed.push(ChangedFile {
                            ino,
                            old: old.version.id,
                        });
                    }
                    Arc::new(self.file_entry(
                        &guid,
                        Listed {
                            key: &item.content_key,
                            kind: &item.kind,
                            content_type: &item.content_type,
                            size,
                            mtime,
                            last_modified: item.last_modified,
                        },
                    ))
                }
            };
            files.push(file);
        }
        let meta_mtime = files
            .iter()
            .map(|f| f.mtime)
            .max()
            .unwrap_or(start)
            .max(start);
        let mut meta_json = serde_json::to_vec_pretty(&interaction).unwrap_or_default();
        meta_json.push(b'\n');
        InteractionEntry {
            ino: ino::interaction(&guid),
            meta_ino: ino::meta(&guid),
            guid,
            interaction,
            meta_json: Bytes::from(meta_json),
            meta_mtime,
            files,
        }
    }
}
