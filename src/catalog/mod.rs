//! The catalog: what interactions and files exist, with their sizes, times and content
//! versions. Knows nothing of FUSE.
//!
//! The window is listed **per UTC day, lazily**: opening a catalog lists nothing (one
//! search of the window's last minute checks the API and the credentials), so a mount
//! is live in seconds whatever the window. A day is listed when someone needs it (a
//! `readdir` or lookup in `/by-date/<day>`, a `readdir` of `/interactions`) and in the
//! background, newest first, within a share of the budget; saved days (the persistent
//! catalog) are shown at once and re-listed in the background. A guid not listed yet
//! costs one `GET /interactions/{guid}`. Re-listing follows the age policy of
//! [`policy`]: the recent tail every `--refresh`, whole days less often as they age.
//!
//! Invariants:
//! - a listing of a range replaces exactly what the catalog held in that range, and a
//!   listing that started earlier never overwrites a range a later one applied (see
//!   `days.rs`), so data never goes back in time;
//! - the window's start never moves: nothing leaves a running mount as time passes;
//!   with `--to now` its end follows the present at each refresh;
//! - every change of the listing is reported once through the hook of
//!   [`Catalog::on_change`] (invalidate kernel caches, purge tiers, erase what the API
//!   no longer has — `erase.rs`);
//! - an erased file version ([`Catalog::forget`]) is never handed out again: its
//!   `ContentId` is remembered as erased and a new lookup builds a new one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use time::{Date, OffsetDateTime};

use crate::api::ApiError;
use crate::meta::{Meta, MetaSource};
use crate::model::is_guid;
use crate::sync::{AtomicBool, AtomicU64, Mutex, RwLock};
use crate::version::{ContentVersion, TenantId};

mod compact;
mod days;
mod entry;
mod erase;
#[cfg(test)]
mod footprint;
pub mod ino;
mod listing;
mod live;
mod persist;
pub mod policy;
mod probe;
mod refresh;
mod resident;
#[cfg(test)]
mod testing;
pub mod views;

pub use entry::{DayDiff, FileEntry, InteractionEntry, Refresh};
pub use erase::Forgotten;
pub use listing::DayState;
pub use persist::{CatalogStore, Checked};
pub use policy::{Policy, TailMark};
pub use refresh::{spawn_refresher, Change};

use listing::Listing;

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
    /// A day brought back into memory left again before it could be read, time after
    /// time: the catalog's memory budget is too small for the readers at once.
    #[error("{day} left memory again each time it came back (--catalog-memory too small for the readers at once)")]
    Unsettled { day: Date },
}

/// Why `vccfs refresh` could not re-list.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelistError {
    #[error("{day} is not in the mount's window ({} .. {})", crate::util::format_rfc3339(*.from), crate::util::format_rfc3339(*.to))]
    OutOfWindow {
        day: Date,
        from: OffsetDateTime,
        to: OffsetDateTime,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl From<ApiError> for RelistError {
    fn from(e: ApiError) -> Self {
        RelistError::Catalog(e.into())
    }
}

/// Where a newly opened catalog's listing comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Nothing saved: days are listed on demand and in the background.
    Lazy,
    /// Read from the saved days (this many), to be re-listed in the background.
    Saved { days: usize },
}

/// How far the window's days are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub window: usize,
    pub listed: usize,
    pub saved: usize,
    pub partial: usize,
}

/// Where listing changes go (set once the mount can act on them).
struct Hook(OnceLock<Box<dyn Fn(Change) + Send + Sync>>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Hook(set)"
        } else {
            "Hook(unset)"
        })
    }
}

/// The catalog of one mount.
#[derive(Debug)]
pub struct Catalog {
    /// What the catalog asks of the API (`meta`: the HTTP client, or a mock).
    client: Meta,
    tenant: TenantId,
    from: OffsetDateTime,
    /// The window's end; moves forward with each refresh when `rolling`.
    to: RwLock<OffsetDateTime>,
    /// `--to now`: each refresh extends the window to the present.
    rolling: AtomicBool,
    listing: RwLock<Listing>,
    /// Interactions looked up by guid and not (yet) in a listed day.
    extra: RwLock<HashMap<String, Arc<InteractionEntry>>>,
    negative: Mutex<HashMap<String, Instant>>,
    /// Days outside the window, searched on demand: guids in start order.
    days: Mutex<HashMap<Date, Arc<Vec<String>>>>,
    /// One listing at a time per day, so concurrent readers make one search.
    day_locks: Mutex<HashMap<Date, Arc<tokio::sync::Mutex<()>>>>,
    /// Ranges applied by listings, with the sequence number of when each search began.
    applied: Mutex<Vec<(u64, OffsetDateTime, OffsetDateTime)>>,
    search_seq: AtomicU64,
    /// What the last tails re-listed (the next tail reaches back to it).
    last_tail: Mutex<TailMark>,
    /// Serialises writes of the saved days, and listings from choosing what they may
    /// change to applying it (`days.rs`).
    save_lock: tokio::sync::Mutex<()>,
    /// Serialises size probes, so concurrent lookups of one file make one request.
    probe_lock: tokio::sync::Mutex<()>,
    next_content: AtomicU64,
    interner: live::Interner,
    /// The file entries in use, and sizes learned.
    live: live::LiveFiles,
    /// Where listings are saved, per day (the persistent cache).
    store: Option<CatalogStore>,
    hook: Hook,
    /// File versions erased while in use: never served again.
    erased: RwLock<std::collections::HashSet<crate::cache::ContentId>>,
    /// How many times each guid was forgotten (erased): open `.interaction.json`
    /// handles of an erased guid read nothing more (`erase.rs`).
    forgotten: RwLock<HashMap<String, u64>>,
    /// When each guid of `extra` was last looked up (re-checked by age, `erase.rs`).
    extra_checked: Mutex<HashMap<String, OffsetDateTime>>,
    /// The views' names (`calls/`, `by-agent/`, `by-number/`), per day, built lazily.
    views: views::Views,
    /// The memory budget: which days stay in memory (`resident.rs`).
    resident: resident::Resident,
}

impl Catalog {
    /// A catalog of `[from, to)` with nothing listed yet.
    pub(crate) fn empty(client: Meta, from: OffsetDateTime, to: OffsetDateTime) -> Catalog {
        Catalog {
            tenant: client.tenant(),
            client,
            from,
            to: RwLock::new(to),
            rolling: AtomicBool::new(false),
            listing: RwLock::new(Listing::default()),
            extra: RwLock::new(HashMap::new()),
            negative: Mutex::new(HashMap::new()),
            days: Mutex::new(HashMap::new()),
            day_locks: Mutex::new(HashMap::new()),
            applied: Mutex::new(Vec::new()),
            search_seq: AtomicU64::new(0),
            last_tail: Mutex::new(TailMark::default()),
            save_lock: tokio::sync::Mutex::new(()),
            probe_lock: tokio::sync::Mutex::new(()),
            next_content: AtomicU64::new(1),
            interner: live::Interner::default(),
            live: live::LiveFiles::default(),
            store: None,
            hook: Hook(OnceLock::new()),
            erased: RwLock::new(std::collections::HashSet::new()),
            forgotten: RwLock::new(HashMap::new()),
            extra_checked: Mutex::new(HashMap::new()),
            views: views::Views::default(),
            resident: resident::Resident::default(),
        }
    }

    /// The catalog of `[from, to)`: the saved days in `store` are shown at once (to be
    /// re-listed in the background); nothing else is listed yet. Without saved days,
    /// one search of the window's last minute checks the API URL and credentials.
    pub async fn open(
        client: Arc<dyn MetaSource>,
        from: OffsetDateTime,
        to: OffsetDateTime,
        store: Option<CatalogStore>,
    ) -> Result<(Catalog, Opened), CatalogError> {
        Catalog::open_within(client, from, to, store, u64::MAX).await
    }

    /// [`Catalog::open`] with at most `budget` bytes of the listing in memory
    /// (`--catalog-memory`): saved days are read one at a time, oldest first, and the
    /// older ones leave memory as the newer come in (`resident.rs`).
    pub async fn open_within(
        client: Arc<dyn MetaSource>,
        from: OffsetDateTime,
        to: OffsetDateTime,
        store: Option<CatalogStore>,
        budget: u64,
    ) -> Result<(Catalog, Opened), CatalogError> {
        let mut catalog = Catalog::empty(Meta::from(client), from, to);
        catalog.resident = resident::Resident::within(budget);
        let saved = store
            .as_ref()
            .map(|s| s.saved_days(from, to))
            .unwrap_or_default();
        catalog.store = store;
        let mut days = 0;
        for day in saved {
            let part = catalog.part(day);
            // A whole day of the window with an index stays on disk until it is
            // needed: 8 bytes an interaction read, not the day parsed.
            let index = (part == days::day_range(day))
                .then(|| catalog.store.as_ref().and_then(|s| s.day_index(day)))
                .flatten();
            if let Some(index) = index {
                if catalog.listing.write().add_away(
                    day,
                    DayState::Saved {
                        listed: index.listed,
                    },
                    index,
                ) {
                    days += 1;
                }
                continue;
            }
            let Some(entries) = catalog
                .store
                .as_ref()
                .and_then(|s| catalog.load_saved(s, day))
            else {
                continue;
            };
            days += 1;
            catalog.apply_day(day, part, entries, Some(DayState::Saved { listed: None }));
        }
        if days > 0 {
            return Ok((catalog, Opened::Saved { days }));
        }
        let check_from = (to - time::Duration::MINUTE).max(from);
        catalog.client.search(check_from, to).next_page().await?;
        Ok((catalog, Opened::Lazy))
    }

    /// Send every later change of the listing to `hook` (it must not block).
    pub fn on_change(&self, hook: impl Fn(Change) + Send + Sync + 'static) {
        let _ = self.hook.0.set(Box::new(hook));
    }

    fn notify(&self, r: &Refresh) {
        if r.is_empty() {
            return;
        }
        tracing::debug!(
            files = r.files.len(),
            dirs = r.dirs.len(),
            "the listing changed"
        );
        let Some(hook) = self.hook.0.get() else {
            return;
        };
        for ino in r.files.iter().map(|f| f.ino).chain(r.dirs.iter().copied()) {
            hook(Change::Invalidate(ino));
        }
        for key in &r.purged {
            hook(Change::Purge(*key));
        }
        for e in &r.gone {
            hook(Change::Gone {
                guid: e.guid().to_string(),
                entry: Some(Arc::clone(e)),
            });
        }
        for (guid, key, version) in &r.content_gone {
            hook(Change::ContentGone {
                guid: guid.clone(),
                key: key.clone(),
                version: *version,
            });
        }
    }

    /// Report that the API answered 404 for `guid` (erase it everywhere).
    fn gone(&self, guid: &str) {
        if let Some(hook) = self.hook.0.get() {
            hook(Change::Gone {
                guid: guid.to_string(),
                entry: None,
            });
        }
    }

    /// Is the tenant's access revoked (one atomic load; see `api::Access`)?
    pub fn is_revoked(&self) -> bool {
        self.client.is_revoked()
    }

    /// Is `version` the listed version of its file (now)?
    pub fn is_current(&self, version: &ContentVersion) -> bool {
        self.known(&version.guid)
            .and_then(|e| {
                e.meta(&version.key)
                    .map(|m| self.version_key(&e.guid(), m).0 == version.id)
            })
            .unwrap_or(false)
    }

    /// How many interactions the listed days hold.
    pub fn listed_len(&self) -> usize {
        self.listing.read().len()
    }

    /// Position of `guid` in the listing.
    pub fn position(&self, guid: &str) -> Option<usize> {
        self.listing.read().position(guid)
    }

    /// Listed interactions at positions `[from, to)`.
    pub fn listed_range(&self, from: usize, to: usize) -> Vec<Arc<InteractionEntry>> {
        self.listing.read().range(from, to)
    }

    /// A known interaction (listed, or looked up before), without any request: a day
    /// that left memory is read back from the saved catalog (without a disk cache, see
    /// [`Catalog::known_async`]).
    pub fn known(&self, guid: &str) -> Option<Arc<InteractionEntry>> {
        if let Some(e) = self.known_here(guid) {
            return Some(e);
        }
        let day = self.listing.read().away_day_of(guid)?;
        if self.reload_saved(day) {
            return self.known_here(guid);
        }
        None
    }

    /// A known interaction in memory (listed, or looked up before).
    pub(crate) fn known_here(&self, guid: &str) -> Option<Arc<InteractionEntry>> {
        {
            let l = self.listing.read();
            if let Some(e) = l.get(guid) {
                l.touch(e.start_date());
                return Some(Arc::clone(e));
            }
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
        if let Some(e) = self.known_async(guid).await? {
            return Ok(Some(e));
        }
        if self.known_missing(guid) {
            return Ok(None);
        }
        match self.client.interaction(guid).await {
            Ok(interaction) => {
                let entry = Arc::new(self.entry(interaction));
                if let Some(e) = self.listing.read().get(guid) {
                    // Its day was listed meanwhile.
                    return Ok(Some(Arc::clone(e)));
                }
                let mut extra = self.extra.write();
                let e = extra.entry(guid.to_string()).or_insert(entry);
                self.extra_seen([guid]);
                Ok(Some(Arc::clone(e)))
            }
            Err(ApiError::NotFound { .. }) => {
                self.negative
                    .lock()
                    .insert(guid.to_string(), Instant::now());
                // Whatever a tier still keeps of it (an earlier mount's) can go.
                self.gone(guid);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Ask the API for `guid` again (its content stopped matching the listed version,
    /// or answered 404): one `GET /interactions/{guid}`; a new version replaces the
    /// old one at once, for new opens, and its inodes are invalidated. A 404 erases
    /// the interaction, content it no longer lists is erased (through the hook).
    pub async fn revalidate(&self, guid: &str) -> Result<(), CatalogError> {
        let Some(previous) = self.known(guid) else {
            return Ok(());
        };
        let interaction = match self.client.interaction(guid).await {
            Ok(i) => i,
            Err(ApiError::NotFound { .. }) => {
                self.negative
                    .lock()
                    .insert(guid.to_string(), Instant::now());
                self.gone(guid);
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if self.extra.read().contains_key(guid) {
            self.extra_seen([guid]);
        }
        let mut refresh = Refresh::default();
        let entry = Arc::new(self.entry(interaction));
        self.changes(&previous, &entry, &mut refresh.files);
        if !entry::same_keys(&previous, &entry) {
            refresh.dirs.push(entry.ino());
        }
        refresh.purged = refresh.files.iter().map(|c| c.old).collect();
        refresh.content_gone = self
            .removed_files(&previous, &entry)
            .into_iter()
            .map(|(key, version)| (guid.to_string(), key, version))
            .collect();
        let day = entry.start_date();
        let replaced = self.listing.write().replace(Arc::clone(&entry));
        if !replaced {
            self.extra.write().insert(guid.to_string(), entry);
        }
        self.notify(&refresh);
        self.relisted(day);
        Ok(())
    }

    /// The window `[from, to)` (`to` moves with time when rolling).
    pub fn window(&self) -> (OffsetDateTime, OffsetDateTime) {
        (self.from, *self.to.read())
    }

    /// With `--to now`: let each refresh extend the window to the present.
    pub fn set_rolling(&self, rolling: bool) {
        self.rolling.store(rolling, Ordering::Relaxed);
    }

    /// Rolling: move the window's end to the present (plus a minute).
    fn roll(&self) {
        if self.rolling.load(Ordering::Relaxed) {
            let now = crate::util::now_secs() + time::Duration::MINUTE;
            let mut to = self.to.write();
            *to = (*to).max(now);
        }
    }

    /// Every UTC day with a part inside the window, oldest first.
    pub fn window_days(&self) -> Vec<Date> {
        let (from, to) = self.window();
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        let last = (to - time::Duration::NANOSECOND).date();
        let mut day = from.date();
        while day <= last {
            out.push(day);
            match day.next_day() {
                Some(d) => day = d,
                None => break,
            }
        }
        out
    }

    /// How far the window's days are listed.
    pub fn day_counts(&self) -> DayCounts {
        let window = self.window_days();
        let l = self.listing.read();
        let mut c = DayCounts {
            window: window.len(),
            ..DayCounts::default()
        };
        for day in window {
            match l.state(day) {
                Some(DayState::Listed { .. }) => c.listed += 1,
                Some(DayState::Saved { .. }) => c.saved += 1,
                Some(DayState::Partial) => c.partial += 1,
                None => {}
            }
        }
        c
    }

    /// Total bytes and files (with each interaction's directory and metadata file) of
    /// what is listed, for statfs.
    pub fn totals(&self) -> (u64, u64) {
        let l = self.listing.read();
        let (mut bytes, mut files) = (0, 0);
        for (_, day) in l.days() {
            let (b, f) = match &day.away {
                Some(away) => away.totals,
                None => listing::totals(&day.entries),
            };
            bytes += b;
            files += f;
        }
        (bytes, files)
    }
}
