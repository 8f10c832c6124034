//! The catalog: what interactions and files exist, with their sizes, times and content
//! versions. Fed by one search of the mount window, per-guid lookups for guids outside
//! it, per-day searches for other days, and periodic re-listing. Knows nothing of FUSE.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use time::{Date, OffsetDateTime};

use crate::api::{ApiClient, ApiError};
use crate::cache::ContentId;
use crate::model::{is_guid, Interaction};
use crate::version::{ContentKey, ContentVersion, TenantId};

pub mod ino;
mod persist;
mod probe;
#[cfg(test)]
mod testing;
pub use persist::{CatalogStore, Checked};
mod refresh;
pub use refresh::{spawn_refresher, Change};

/// Name of the per-interaction metadata file.
pub const META_NAME: &str = ".interaction.json";
/// How long "no such guid" is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// Why the catalog could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// A search or lookup failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

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
    probed: OnceLock<Arc<FileEntry>>,
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

fn same_keys(a: &InteractionEntry, b: &InteractionEntry) -> bool {
    a.files.len() == b.files.len() && a.files.iter().zip(&b.files).all(|(x, y)| x.key == y.key)
}

/// A file whose version changed in a re-list.
#[derive(Debug, Clone)]
pub struct ChangedFile {
    pub ino: u64,
    /// The version it had.
    pub old: ContentKey,
}

#[derive(Debug, Default)]
struct Listing {
    /// The window's interactions, in listing (start) order.
    ordered: Vec<Arc<InteractionEntry>>,
    by_guid: HashMap<String, Arc<InteractionEntry>>,
    /// Position of each guid in `ordered` (for scan read-ahead).
    position: HashMap<String, usize>,
}

/// The catalog of one mount.
#[derive(Debug)]
pub struct Catalog {
    client: ApiClient,
    tenant: TenantId,
    from: OffsetDateTime,
    /// The window's end; moves forward with each re-list when `rolling`.
    to: RwLock<OffsetDateTime>,
    /// `--to now`: each re-list extends the window to the present.
    rolling: AtomicBool,
    listing: RwLock<Arc<Listing>>,
    /// Interactions looked up outside the window.
    extra: RwLock<HashMap<String, Arc<InteractionEntry>>>,
    negative: Mutex<HashMap<String, Instant>>,
    /// Days outside the window, searched on demand: guids in start order.
    days: Mutex<HashMap<Date, Arc<Vec<String>>>>,
    /// Serialises searches of one day so concurrent lookups make one request.
    day_lock: tokio::sync::Mutex<()>,
    /// Serialises size probes, so concurrent lookups of one file make one request.
    probe_lock: tokio::sync::Mutex<()>,
    next_content: AtomicU64,
    /// Where complete listings are saved, per day (the persistent cache).
    store: Option<CatalogStore>,
    /// Whether the listing has been checked against the API since it was read from
    /// the saved days.
    checked: tokio::sync::watch::Sender<Checked>,
}

/// Where a newly opened catalog's listing came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Listed from the API just now.
    Listed,
    /// Read from the saved days (this many), to be re-listed in the background.
    Saved { days: usize },
}

/// What the listing says of one file.
struct Listed<'a> {
    key: &'a str,
    kind: &'a str,
    content_type: &'a str,
    size: Option<u64>,
    mtime: OffsetDateTime,
    last_modified: Option<OffsetDateTime>,
}

impl Catalog {
    /// A catalog of `[from, to)` with nothing listed yet.
    pub(crate) fn empty(client: ApiClient, from: OffsetDateTime, to: OffsetDateTime) -> Catalog {
        Catalog {
            tenant: client.config().tenant(),
            client,
            from,
            to: RwLock::new(to),
            rolling: AtomicBool::new(false),
            listing: RwLock::new(Arc::new(Listing::default())),
            extra: RwLock::new(HashMap::new()),
            negative: Mutex::new(HashMap::new()),
            days: Mutex::new(HashMap::new()),
            day_lock: tokio::sync::Mutex::new(()),
            probe_lock: tokio::sync::Mutex::new(()),
            next_content: AtomicU64::new(1),
            store: None,
            checked: tokio::sync::watch::Sender::new(Checked::Yes),
        }
    }

    /// Wait until the listing has been checked against the API (or that failed): a
    /// version read from the saved days may have changed on the server since.
    pub async fn checked(&self) -> Checked {
        let mut rx = self.checked.subscribe();
        let seen = match rx.wait_for(|c| *c != Checked::Pending).await {
            Ok(c) => *c,
            Err(_) => Checked::Failed,
        };
        seen
    }

    /// Has the listing been checked against the API (or has that been tried)?
    pub fn is_checked(&self) -> bool {
        *self.checked.borrow() != Checked::Pending
    }

    /// Is `version` the listed version of its file (now)?
    pub fn is_current(&self, version: &ContentVersion) -> bool {
        self.known(&version.guid)
            .and_then(|e| e.file(&version.key).map(|f| f.version.id == version.id))
            .unwrap_or(false)
    }

    /// The catalog of `[from, to)`: from the saved days in `store` when it has any of
    /// the window (no request; re-list soon after), else listed from the API. Later
    /// complete listings are saved to `store`.
    pub async fn open(
        client: ApiClient,
        from: OffsetDateTime,
        to: OffsetDateTime,
        store: Option<CatalogStore>,
    ) -> Result<(Catalog, Opened), CatalogError> {
        let mut catalog = Catalog::empty(client, from, to);
        let saved = store.as_ref().map(|s| s.load(from, to));
        catalog.store = store;
        match saved {
            Some((items, days)) if days > 0 => {
                catalog.apply(items);
                catalog.checked.send_replace(Checked::Pending);
                Ok((catalog, Opened::Saved { days }))
            }
            _ => {
                catalog.refresh().await?;
                Ok((catalog, Opened::Listed))
            }
        }
    }

    /// Re-list the window. Files whose `lastModified` or size changed get a new content
    /// version; they are returned so the caller can drop cached pages.
    pub async fn refresh(&self) -> Result<Refresh, CatalogError> {
        if self.rolling.load(Ordering::Relaxed) {
            // New calls appear; the start stays, so nothing leaves the mount with time.
            let now = crate::util::now_secs() + time::Duration::MINUTE;
            let mut to = self.to.write();
            *to = (*to).max(now);
        }
        let to = self.window().1;
        let items = match self.client.search_all(self.from, to).await {
            Ok(items) => items,
            Err(e) => {
                self.checked.send_if_modified(|c| {
                    let pending = *c == Checked::Pending;
                    if pending {
                        *c = Checked::Failed;
                    }
                    pending
                });
                return Err(e.into());
            }
        };
        if let Some(store) = self.store.clone() {
            let (from, items) = (self.from, items.clone());
            let saved = tokio::task::spawn_blocking(move || store.save(from, to, &items)).await;
            match saved {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the listing"),
                Err(e) => tracing::warn!(error = %e, "saving the listing failed"),
            }
        }
        let refresh = self.apply(items);
        self.checked.send_replace(Checked::Yes);
        Ok(refresh)
    }

    /// Make `items` (the window's interactions, in start order) the listing.
    pub(crate) fn apply(&self, items: Vec<Interaction>) -> Refresh {
        let old = Arc::clone(&*self.listing.read());
        let mut changed = Vec::new();
        let mut dirs = Vec::new();
        let mut listing = Listing::default();
        for interaction in items {
            let previous = old.by_guid.get(&interaction.guid);
            let entry = Arc::new(self.entry(interaction, previous.map(|p| &**p), &mut changed));
            match previous {
                None => dirs.push(ino::day(entry.start_date())),
                Some(p) if !same_keys(p, &entry) => dirs.push(entry.ino),
                Some(_) => {}
            }
            listing
                .position
                .insert(entry.guid.clone(), listing.ordered.len());
            listing
                .by_guid
                .insert(entry.guid.clone(), Arc::clone(&entry));
            listing.ordered.push(entry);
        }
        let mut purged: Vec<ContentKey> = changed.iter().map(|c| c.old).collect();
        for (guid, gone) in &old.by_guid {
            if !listing.by_guid.contains_key(guid) {
                dirs.push(ino::day(gone.start_date()));
                purged.extend(gone.files().map(|f| f.version.id));
            }
        }
        if !dirs.is_empty() || old.ordered.len() != listing.ordered.len() {
            dirs.extend([ino::INTERACTIONS, ino::BY_DATE]);
        }
        dirs.sort_unstable();
        dirs.dedup();
        *self.listing.write() = Arc::new(listing);
        Refresh {
            files: changed,
            dirs,
            purged,
        }
    }

    /// A new file entry (a new content version) of interaction `guid`.
    fn file_entry(&self, guid: &str, l: Listed<'_>) -> FileEntry {
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
    fn entry(
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

    /// The window's interactions in listing order.
    pub fn listed(&self) -> Vec<Arc<InteractionEntry>> {
        self.listing.read().ordered.clone()
    }

    /// How many interactions the window lists.
    pub fn listed_len(&self) -> usize {
        self.listing.read().ordered.len()
    }

    /// Position of `guid` in the listing.
    pub fn position(&self, guid: &str) -> Option<usize> {
        self.listing.read().position.get(guid).copied()
    }

    /// Listed interactions at positions `[from, to)`.
    pub fn listed_range(&self, from: usize, to: usize) -> Vec<Arc<InteractionEntry>> {
        let l = self.listing.read();
        let to = to.min(l.ordered.len());
        l.ordered
            .get(from.min(to)..to)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    /// A known interaction (listed, or looked up before), without any request.
    pub fn known(&self, guid: &str) -> Option<Arc<InteractionEntry>> {
        if let Some(e) = self.listing.read().by_guid.get(guid) {
            return Some(Arc::clone(e));
        }
        self.extra.read().get(guid).cloned()
    }

    /// Is `guid` known not to exist (recently)?
    pub fn known_missing(&self, guid: &str) -> bool {
        let mut neg = self.negative.lock();
        match neg.get(guid) {
            Some(at) if at.elapsed() < NEGATIVE_TTL => true,
            Some(_) => {
                neg.remove(guid);
                false
            }
            None => false,
        }
    }

    /// Any interaction by guid: known ones cost nothing, others one request.
    /// `Ok(None)` when it does not exist (remembered for [`NEGATIVE_TTL`]).
    pub async fn lookup(&self, guid: &str) -> Result<Option<Arc<InteractionEntry>>, CatalogError> {
        if !is_guid(guid) {
            return Ok(None);
        }
        if let Some(e) = self.known(guid) {
            return Ok(Some(e));
        }
        if self.known_missing(guid) {
            return Ok(None);
        }
        match self.client.interaction(guid).await {
            Ok(interaction) => {
                let mut ignored = Vec::new();
                let entry = Arc::new(self.entry(interaction, None, &mut ignored));
                let mut extra = self.extra.write();
                let e = extra.entry(guid.to_string()).or_insert(entry);
                Ok(Some(Arc::clone(e)))
            }
            Err(ApiError::NotFound { .. }) => {
                self.negative
                    .lock()
                    .insert(guid.to_string(), Instant::now());
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Days of the window that have interactions, oldest first.
    pub fn listed_days(&self) -> Vec<Date> {
        let mut days: Vec<Date> = self
            .listing
            .read()
            .ordered
            .iter()
            .map(|e| e.start_date())
            .collect();
        days.dedup();
        days.sort();
        days.dedup();
        days
    }

    /// Is the whole UTC day inside the listed window (so the listing answers it)?
    fn day_in_window(&self, day: Date) -> bool {
        let start = day.midnight().assume_utc();
        start >= self.from && start + time::Duration::DAY <= self.window().1
    }

    /// The listed window `[from, to)` (`to` moves with time when rolling).
    pub fn window(&self) -> (OffsetDateTime, OffsetDateTime) {
        (self.from, *self.to.read())
    }

    /// With `--to now`: let each re-list extend the window to the present.
    pub fn set_rolling(&self, rolling: bool) {
        self.rolling.store(rolling, Ordering::Relaxed);
    }

    /// Did interaction `guid` start on `day` (UTC)? Answered like [`Catalog::day`],
    /// without listing the day when the window covers it.
    pub async fn started_on(&self, day: Date, guid: &str) -> Result<bool, CatalogError> {
        if self.day_in_window(day) {
            let l = self.listing.read();
            return Ok(l.by_guid.get(guid).is_some_and(|e| e.start_date() == day));
        }
        Ok(self.day(day).await?.iter().any(|g| g == guid))
    }

    /// Guids of the interactions that started on `day` (UTC), in start order. Days
    /// inside the window come from the listing; others cost one search, remembered.
    pub async fn day(&self, day: Date) -> Result<Arc<Vec<String>>, CatalogError> {
        if self.day_in_window(day) {
            let l = self.listing.read();
            return Ok(Arc::new(
                l.ordered
                    .iter()
                    .filter(|e| e.start_date() == day)
                    .map(|e| e.guid.clone())
                    .collect(),
            ));
        }
        if let Some(d) = self.days.lock().get(&day) {
            return Ok(Arc::clone(d));
        }
        let _one_search = self.day_lock.lock().await;
        if let Some(d) = self.days.lock().get(&day) {
            return Ok(Arc::clone(d));
        }
        let start = day.midnight().assume_utc();
        let items = self
            .client
            .search_all(start, start + time::Duration::DAY)
            .await?;
        let mut guids = Vec::with_capacity(items.len());
        {
            let mut extra = self.extra.write();
            let mut ignored = Vec::new();
            for interaction in items {
                guids.push(interaction.guid.clone());
                if self.listing.read().by_guid.contains_key(&interaction.guid) {
                    continue;
                }
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    extra.entry(interaction.guid.clone())
                {
                    slot.insert(Arc::new(self.entry(interaction, None, &mut ignored)));
                }
            }
        }
        let guids = Arc::new(guids);
        self.days.lock().insert(day, Arc::clone(&guids));
        Ok(guids)
    }

    /// Total bytes of the window's content (for statfs).
    pub fn total_bytes(&self) -> u64 {
        self.listing
            .read()
            .ordered
            .iter()
            .flat_map(|e| e.files())
            .map(|f| f.size)
            .sum()
    }
}
