//! What the compact listing does not keep: interned strings, the file entries in use
//! (each a content version with its pin and its cache identity), and sizes learned
//! for files listed without one.
//!
//! Invariants:
//! - while anyone holds a [`FileEntry`] (an open file, a read-ahead), asking for the
//!   same version gives that same entry — one pin and one [`ContentId`] per version
//!   in use, so blocks of two pins never meet in the memory cache;
//! - an entry nobody holds and that fell out of the recent set is built afresh with a
//!   new `ContentId` (its old memory blocks are simply never found again; the disk
//!   and shared tiers check the validator they stored);
//! - the interner only holds strings that repeat (content keys other than GUIDs,
//!   types, content types, agents, directions), never one per interaction: GUIDs and
//!   phone numbers are kept in the entry itself (`compact.rs`).

use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};

use lru::LruCache;
use parking_lot::Mutex;

use super::entry::Names;
use super::FileEntry;
use crate::version::ContentKey;

/// File entries kept alive after their last user, most recent first.
const RECENT: usize = 16_384;

#[derive(Debug, Default)]
pub(super) struct Interner {
    strings: Mutex<HashSet<Arc<str>>>,
    names: Mutex<HashSet<Arc<Names>>>,
}

impl Interner {
    /// The one `(key, type, content type)` triple equal to these.
    pub fn names(&self, key: &str, kind: &str, content_type: &str) -> Arc<Names> {
        let want = Names {
            key: self.intern(key),
            kind: self.intern(kind),
            content_type: self.intern(content_type),
        };
        let mut set = self.names.lock();
        if let Some(have) = set.get(&want) {
            return Arc::clone(have);
        }
        let new = Arc::new(want);
        set.insert(Arc::clone(&new));
        new
    }

    pub fn intern(&self, s: &str) -> Arc<str> {
        let mut set = self.strings.lock();
        if let Some(have) = set.get(s) {
            return Arc::clone(have);
        }
        let new: Arc<str> = Arc::from(s);
        set.insert(Arc::clone(&new));
        new
    }
}

#[derive(Debug)]
pub(super) struct LiveFiles {
    inner: Mutex<Inner>,
    /// Sizes learned by probing files listed without one, by their unsized_key version.
    learned: Mutex<HashMap<ContentKey, u64>>,
}

#[derive(Debug)]
struct Inner {
    weak: HashMap<ContentKey, Weak<FileEntry>>,
    recent: LruCache<ContentKey, Arc<FileEntry>>,
}

impl Default for LiveFiles {
    fn default() -> Self {
        LiveFiles {
            inner: Mutex::new(Inner {
                weak: HashMap::new(),
                recent: LruCache::new(NonZeroUsize::new(RECENT).unwrap_or(NonZeroUsize::MIN)),
            }),
            learned: Mutex::new(HashMap::new()),
        }
    }
}

impl LiveFiles {
    /// The entry of version `id` in use, or the one `build` makes (then in use).
    pub fn get_or(&self, id: ContentKey, build: impl FnOnce() -> FileEntry) -> Arc<FileEntry> {
        let mut s = self.inner.lock();
        if let Some(f) = s.recent.get(&id) {
            return Arc::clone(f);
        }
        if let Some(f) = s.weak.get(&id).and_then(Weak::upgrade) {
            s.recent.put(id, Arc::clone(&f));
            return f;
        }
        let f = Arc::new(build());
        s.weak.insert(id, Arc::downgrade(&f));
        s.recent.put(id, Arc::clone(&f));
        if s.weak.len() > 4 * RECENT {
            s.weak.retain(|_, w| w.strong_count() > 0);
        }
        f
    }

    /// Put `f` in use as its version (a probe made it, pinned).
    pub fn insert(&self, f: Arc<FileEntry>) -> Arc<FileEntry> {
        let id = f.version.id;
        self.get_or_arc(id, f)
    }

    fn get_or_arc(&self, id: ContentKey, f: Arc<FileEntry>) -> Arc<FileEntry> {
        let mut s = self.inner.lock();
        if let Some(have) = s.weak.get(&id).and_then(Weak::upgrade) {
            return have;
        }
        s.weak.insert(id, Arc::downgrade(&f));
        s.recent.put(id, Arc::clone(&f));
        f
    }

    /// Take version `id` out of use (erased): whoever holds its entry keeps it, and
    /// the next ask builds a new one. Returns the entry if anyone still held it.
    pub fn take(&self, id: &ContentKey) -> Option<Arc<FileEntry>> {
        let mut s = self.inner.lock();
        let recent = s.recent.pop(id);
        let weak = s.weak.remove(id).and_then(|w| w.upgrade());
        recent.or(weak)
    }

    /// Take every version of `guid` still in use out of use (its interaction is
    /// erased): the current versions and any older one a handle still holds.
    pub fn take_guid(&self, guid: &str) -> Vec<Arc<FileEntry>> {
        let mut s = self.inner.lock();
        let ids: Vec<ContentKey> = s
            .weak
            .iter()
            .filter_map(|(id, w)| {
                let f = w.upgrade()?;
                f.version.guid.eq_ignore_ascii_case(guid).then_some(*id)
            })
            .collect();
        ids.iter()
            .filter_map(|id| {
                let recent = s.recent.pop(id);
                let weak = s.weak.remove(id).and_then(|w| w.upgrade());
                recent.or(weak)
            })
            .collect()
    }

    pub fn learned(&self, unsized_key: &ContentKey) -> Option<u64> {
        self.learned.lock().get(unsized_key).copied()
    }

    pub fn learn(&self, unsized_key: ContentKey, size: u64) {
        self.learned.lock().insert(unsized_key, size);
    }
}
