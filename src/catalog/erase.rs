//! Erasure in the catalog: taking an interaction (or one of its files) out of
//! everything the catalog holds, and re-checking interactions opened by name.
//!
//! [`Catalog::forget`] removes a guid from the listing, from the interactions looked
//! up by name (`extra`), from the days searched outside the window and from its
//! saved day (re-saved without it), and remembers it as missing for
//! [`super::NEGATIVE_TTL`], so its next lookup is `ENOENT` and no readdir shows it.
//! Its file versions in use are taken out of use: their `ContentId`s are remembered
//! as erased (reads of open handles fail, `fs::ops`), and the next lookup builds new
//! entries with new ids; the guid's erasure is counted ([`Catalog::erasures_of`]), so
//! an open `.interaction.json` (whose bytes `fs` holds) reads nothing more either, even
//! if the API lists the guid again later. What the other layers must drop is returned as a
//! [`Forgotten`]; the catalog itself touches no cache, no kernel and no tier
//! (`crate::erase` does).
//!
//! Invariants:
//! - a forgotten guid is in no listing, `extra`, outside day or saved day when
//!   `forget` returns (a listing that began before may add it back: then the API
//!   still lists it, and the API is the source of truth);
//! - an erased `ContentId` is never handed out again (ids are never reused), and
//!   erasing a guid erases every version of it still in use, older ones a handle
//!   opened before a re-list included;
//! - interactions in `extra` are looked up again once their day's age policy says a
//!   re-list of that day would be due ([`Policy::staleness`]), at most
//!   [`EXTRA_PER_TICK`] lookups per `--refresh` tick, most overdue first, so the
//!   budget they take is bounded whatever was opened by name.

use std::sync::Arc;

use time::{Date, OffsetDateTime};

use super::{ino, Catalog, InteractionEntry, Policy, META_NAME};
use crate::cache::ContentId;
use crate::version::ContentKey;

/// Lookups of interactions opened by name, at most, per `--refresh` tick.
pub const EXTRA_PER_TICK: usize = 8;

/// What the catalog removed of one guid (or one file), and what the other layers
/// must drop.
#[derive(Debug, Clone, Default)]
pub struct Forgotten {
    pub guid: String,
    /// Its start day, when the catalog knew it (for `by-date/<day>/<guid>`).
    pub day: Option<Date>,
    /// Inodes whose kernel caches must go: the interaction's directory, its files,
    /// its metadata file (or only the one file, for a file erased alone).
    pub inos: Vec<u64>,
    /// `(parent inode, name)` of the directory entries the kernel must forget.
    pub entries: Vec<(u64, String)>,
    /// Versions that were in use: their memory blocks go, their open handles fail.
    pub contents: Vec<ContentId>,
    /// Every content version the catalog knew of it (what a tier may keep).
    pub versions: Vec<ContentKey>,
    /// Catalog records removed: listing, lookups by name, saved day, file.
    pub records: u64,
}

impl Catalog {
    /// Take `guid` out of the catalog (see the module's essay). `removed` is its entry
    /// when a re-list already took it out of the listing.
    pub async fn forget(&self, guid: &str, removed: Option<Arc<InteractionEntry>>) -> Forgotten {
        let mut out = Forgotten {
            guid: guid.to_string(),
            ..Forgotten::default()
        };
        // A day out of memory comes back first, so its guid leaves it like any other.
        let away = self.listing.read().away_day_of(guid);
        if let Some(day) = away {
            if let Err(e) = self.ensure_day(day).await {
                tracing::warn!(error = %e, %day, "cannot bring a day back to erase from it");
            }
        }
        let listed = self.listing.write().remove(guid);
        let looked_up = self.extra.write().remove(guid);
        self.extra_checked.lock().remove(guid);
        *self
            .forgotten
            .write()
            .entry(guid.to_ascii_lowercase())
            .or_default() += 1;
        out.records += u64::from(listed.is_some()) + u64::from(looked_up.is_some());
        self.negative
            .lock()
            .insert(guid.to_string(), std::time::Instant::now());
        for guids in self.days.lock().values_mut() {
            if guids.iter().any(|g| g.eq_ignore_ascii_case(guid)) {
                let kept = guids
                    .iter()
                    .filter(|g| !g.eq_ignore_ascii_case(guid))
                    .cloned()
                    .collect();
                *guids = Arc::new(kept);
            }
        }
        out.entries.push((ino::INTERACTIONS, guid.to_string()));
        out.inos.extend([ino::INTERACTIONS, ino::interaction(guid)]);
        // Versions a handle still holds that the listing has since replaced (or of
        // an entry already gone): erased too, or that handle would read their
        // cached bytes.
        let older = self.live.take_guid(guid);
        out.versions.extend(older.iter().map(|f| f.version.id));
        out.contents.extend(older.iter().map(|f| f.content));
        self.erased.write().extend(older.iter().map(|f| f.content));
        let Some(entry) = removed.or(listed).or(looked_up) else {
            return out;
        };
        let day = entry.start_date();
        out.day = Some(day);
        out.entries.push((ino::day(day), guid.to_string()));
        out.inos.extend([ino::day(day), entry.meta_ino()]);
        out.inos
            .extend(entry.keys().map(|k| ino::file(&entry.guid(), &k)));
        out.entries.extend(
            entry
                .keys()
                .map(|k| (entry.ino(), k.to_string()))
                .chain([(entry.ino(), META_NAME.to_string())]),
        );
        let (inos, entries) = self.forget_views(day, guid);
        out.inos.extend(inos);
        out.entries.extend(entries);
        let current = self.version_keys(&entry);
        out.contents.extend(self.erase_versions(&current));
        for v in current {
            if !out.versions.contains(&v) {
                out.versions.push(v);
            }
        }
        if self.unsave(day, guid).await {
            out.records += 1;
        }
        out
    }

    /// Take file `key` of `guid` (version `version`) out of use: the API no longer has
    /// it, and the entry without it already replaced the old one.
    pub fn forget_content(&self, guid: &str, key: &str, version: ContentKey) -> Forgotten {
        let dir = ino::interaction(guid);
        Forgotten {
            guid: guid.to_string(),
            day: None,
            inos: vec![dir, ino::file(guid, key)],
            entries: vec![(dir, key.to_string())],
            contents: self.erase_versions(&[version]),
            versions: vec![version],
            records: 1,
        }
    }

    /// How many times `guid` was erased (forgotten) so far: a handle opened when it was
    /// `n` must read nothing once it is more.
    pub fn erasures_of(&self, guid: &str) -> u64 {
        let forgotten = self.forgotten.read();
        if forgotten.is_empty() {
            return 0;
        }
        forgotten
            .get(&guid.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Has version `content` been erased (its handles must not read)?
    pub fn is_erased(&self, content: ContentId) -> bool {
        let erased = self.erased.read();
        !erased.is_empty() && erased.contains(&content)
    }

    /// Take `versions` out of use; the ids of those in use are erased and returned.
    fn erase_versions(&self, versions: &[ContentKey]) -> Vec<ContentId> {
        let ids: Vec<ContentId> = versions
            .iter()
            .filter_map(|v| self.live.take(v))
            .map(|f| f.content)
            .collect();
        self.erased.write().extend(ids.iter().copied());
        ids
    }

    /// Re-save `day` without `guid` (through the one save lock); true if it was saved.
    async fn unsave(&self, day: Date, guid: &str) -> bool {
        let Some(store) = self.store.clone() else {
            return false;
        };
        let _one = self.save_lock.lock().await;
        let g = guid.to_string();
        match tokio::task::spawn_blocking(move || store.erase(day, &g)).await {
            Ok(Ok(was)) => was,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %day, "cannot re-save the day without an erased interaction");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-saving a day failed");
                false
            }
        }
    }

    /// Note that `guids` of `extra` were just listed or looked up.
    pub(super) fn extra_seen<'a>(&self, guids: impl IntoIterator<Item = &'a str>) {
        let now = crate::util::now_secs();
        let mut checked = self.extra_checked.lock();
        for g in guids {
            checked.insert(g.to_string(), now);
        }
    }

    /// Look the interactions of `extra` up again whose day would be due for a re-list
    /// by `policy` (most overdue first, at most [`EXTRA_PER_TICK`]); a 404 erases one
    /// (through [`Catalog::revalidate`]). Returns how many were looked up.
    pub(crate) async fn recheck_extra(&self, policy: &Policy) -> usize {
        let now = crate::util::now_secs();
        let mut due: Vec<(f64, String)> = {
            let extra = self.extra.read();
            let checked = self.extra_checked.lock();
            extra
                .iter()
                .filter_map(|(g, e)| {
                    let at = checked
                        .get(g)
                        .copied()
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    let since = std::time::Duration::try_from(now - at).unwrap_or_default();
                    let stale = policy.staleness(now, e.start_date());
                    (since >= stale && !stale.is_zero())
                        .then(|| (since.as_secs_f64() / stale.as_secs_f64(), g.clone()))
                })
                .collect()
        };
        due.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut n = 0;
        for (_, guid) in due.into_iter().take(EXTRA_PER_TICK) {
            n += 1;
            if let Err(e) = self.revalidate(&guid).await {
                tracing::warn!(error = %e, %guid, "cannot look an interaction up again");
                break;
            }
        }
        n
    }
}
