//! What the store holds, in memory: every block file with its length and last use,
//! in LRU order, and the space they use against the cap. Pure bookkeeping, no I/O: the writer
//! thread asks it which files to delete and tells it what it wrote.

use std::collections::HashMap;
use std::time::SystemTime;

use lru::LruCache;

/// A version's name in the store: its guid's keyed name (16 bytes, its directory),
/// then its content key (16 bytes).
pub(super) type Key = [u8; 32];

/// One block of one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct StoredBlock {
    pub key: Key,
    pub index: u64,
}

/// Why a block cannot be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NoRoom {
    /// Bigger than the whole cap.
    Cap,
    /// Not even deleting every block would leave the filesystem its free space.
    Disk,
}

/// Hits on blocks not yet indexed, kept while the start-up scan runs (bounded).
const MAX_EARLY: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    len: u64,
    used: SystemTime,
}

/// Block files, their LRU order and the space they use.
#[derive(Debug)]
pub(super) struct Index {
    /// Block → file length and last use; least recently used first out.
    lru: LruCache<StoredBlock, Entry>,
    /// Blocks held per version (a version's directory goes when it reaches 0).
    per_key: HashMap<Key, u32>,
    /// Bytes of the files indexed.
    used: u64,
    /// Bytes admitted but not yet written (the writer's one block in flight).
    reserved: u64,
    max_bytes: u64,
    /// The cap a full disk set (`ENOSPC`, `EDQUOT`): the usage at that moment.
    disk_full_cap: Option<u64>,
    scanning: bool,
    early: Vec<StoredBlock>,
}

impl Index {
    pub fn new(max_bytes: u64) -> Index {
        Index {
            lru: LruCache::unbounded(),
            per_key: HashMap::new(),
            used: 0,
            reserved: 0,
            max_bytes,
            disk_full_cap: None,
            scanning: true,
            early: Vec::new(),
        }
    }

    /// The effective cap.
    pub fn cap(&self) -> u64 {
        self.disk_full_cap
            .map_or(self.max_bytes, |c| c.min(self.max_bytes))
    }

    /// Bytes of the files held and of the block being written.
    pub fn used(&self) -> u64 {
        self.used + self.reserved
    }

    pub fn files(&self) -> u64 {
        self.lru.len() as u64
    }

    pub fn contains(&self, id: &StoredBlock) -> bool {
        self.lru.contains(id)
    }

    /// Index a file of `len` bytes as the most recently used; false (and no change) if
    /// it is indexed already.
    pub fn insert(&mut self, id: StoredBlock, len: u64) -> bool {
        self.insert_at(id, len, SystemTime::now())
    }

    fn insert_at(&mut self, id: StoredBlock, len: u64, used: SystemTime) -> bool {
        if self.lru.contains(&id) {
            return false;
        }
        self.lru.push(id, Entry { len, used });
        *self.per_key.entry(id.key).or_default() += 1;
        self.used += len;
        true
    }

    /// A hit: `id` becomes the most recently used. False if it is not indexed (during
    /// the start-up scan the hit is remembered and applied when the scan lands).
    pub fn touch(&mut self, id: StoredBlock) -> bool {
        if let Some(e) = self.lru.get_mut(&id) {
            e.used = SystemTime::now();
            return true;
        }
        if self.scanning && self.early.len() < MAX_EARLY {
            self.early.push(id);
        }
        false
    }

    /// Forget `id`; its file length if it was indexed.
    pub fn remove(&mut self, id: &StoredBlock) -> Option<u64> {
        let len = self.lru.pop(id)?.len;
        self.used -= len;
        if let Some(n) = self.per_key.get_mut(&id.key) {
            *n -= 1;
            if *n == 0 {
                self.per_key.remove(&id.key);
            }
        }
        Some(len)
    }

    /// Entries held of `key` (its blocks, or its whole file).
    pub fn count(&self, key: &Key) -> u64 {
        self.per_key.get(key).copied().map_or(0, u64::from)
    }

    /// Does the index still hold any block of `key`?
    pub fn holds_key(&self, key: &Key) -> bool {
        self.per_key.contains_key(key)
    }

    /// Forget every block of `key`; their bytes and count.
    pub fn remove_key(&mut self, key: &Key) -> (u64, u64) {
        if !self.holds_key(key) {
            return (0, 0);
        }
        let ids: Vec<StoredBlock> = self
            .lru
            .iter()
            .filter(|(id, _)| &id.key == key)
            .map(|(id, _)| *id)
            .collect();
        let bytes = ids.iter().filter_map(|id| self.remove(id)).sum();
        (bytes, ids.len() as u64)
    }

    /// The bytes to free before `size` more fit under the cap and in `headroom`.
    fn need(&self, size: u64, headroom: Option<u64>) -> Result<u64, NoRoom> {
        let cap = self.cap();
        if size > cap {
            return Err(NoRoom::Cap);
        }
        let over_cap = (self.used() + size).saturating_sub(cap);
        let over_disk = headroom.map_or(0, |h| size.saturating_sub(h));
        Ok(over_cap.max(over_disk))
    }

    /// Make room for a file of `size` bytes, given `headroom`: how much the filesystem
    /// can still take before it is under its minimum free space (`None`: unknown, no
    /// limit). On success `size` is reserved and the blocks to delete first are
    /// returned, already forgotten, least recently used first. Nothing is evicted
    /// when the block cannot be admitted at all.
    pub fn admit(
        &mut self,
        size: u64,
        headroom: Option<u64>,
    ) -> Result<Vec<(StoredBlock, u64)>, NoRoom> {
        let need = self.need(size, headroom)?;
        if need > self.used {
            return Err(NoRoom::Disk);
        }
        let mut victims = Vec::new();
        let mut freed = 0;
        while freed < need {
            let Some((id, len)) = self.pop_lru() else {
                break;
            };
            freed += len;
            victims.push((id, len));
        }
        self.reserved += size;
        Ok(victims)
    }

    /// [`Index::admit`], never evicting a block of `keep` (the version being made
    /// whole: its blocks are read to write it).
    pub fn admit_except(
        &mut self,
        size: u64,
        headroom: Option<u64>,
        keep: &Key,
    ) -> Result<Vec<(StoredBlock, u64)>, NoRoom> {
        let need = self.need(size, headroom)?;
        let mut chosen = Vec::new();
        let mut freed = 0;
        for (id, &Entry { len, .. }) in self.lru.iter().rev() {
            if freed >= need {
                break;
            }
            if &id.key != keep {
                freed += len;
                chosen.push(*id);
            }
        }
        if freed < need {
            return Err(NoRoom::Disk);
        }
        let victims = chosen
            .into_iter()
            .filter_map(|id| self.remove(&id).map(|len| (id, len)))
            .collect();
        self.reserved += size;
        Ok(victims)
    }

    fn pop_lru(&mut self) -> Option<(StoredBlock, u64)> {
        let (id, _) = self.lru.peek_lru()?;
        let id = *id;
        self.remove(&id).map(|len| (id, len))
    }

    /// The reserved block was written as `id`.
    pub fn commit(&mut self, id: StoredBlock, size: u64) {
        self.release(size);
        self.insert(id, size);
    }

    /// The reserved block was not written.
    pub fn release(&mut self, size: u64) {
        self.reserved = self.reserved.saturating_sub(size);
    }

    /// The disk is full: the cap becomes what is held now.
    pub fn disk_full(&mut self) {
        self.disk_full_cap = Some(self.used);
    }

    /// Forget least recently used blocks until the usage is within the cap; the
    /// blocks to delete.
    pub fn trim(&mut self) -> Vec<(StoredBlock, u64)> {
        let mut victims = Vec::new();
        while self.used() > self.cap() {
            match self.pop_lru() {
                Some(v) => victims.push(v),
                None => break,
            }
        }
        victims
    }

    /// The start-up scan found `found` (file length and mtime): index what is not
    /// indexed yet, oldest mtime least recently used, then the hits seen meanwhile.
    pub fn scanned(&mut self, mut found: Vec<(StoredBlock, u64, SystemTime)>) {
        found.sort_by_key(|&(_, _, mtime)| mtime);
        for (id, len, mtime) in found {
            self.insert_at(id, len, mtime);
        }
        let now = SystemTime::now();
        for id in std::mem::take(&mut self.early) {
            if let Some(e) = self.lru.get_mut(&id) {
                e.used = now;
            }
        }
        self.scanning = false;
    }

    /// Forget the blocks last used before `before` (the least recently used, which
    /// are the oldest); the blocks to delete.
    pub fn expire(&mut self, before: SystemTime) -> Vec<(StoredBlock, u64)> {
        let mut victims = Vec::new();
        while self.lru.peek_lru().is_some_and(|(_, e)| e.used < before) {
            match self.pop_lru() {
                Some(v) => victims.push(v),
                None => break,
            }
        }
        victims
    }

    /// The versions held whose key `pick` chooses.
    pub fn keys_where(&self, pick: impl Fn(&Key) -> bool) -> Vec<Key> {
        self.per_key.keys().filter(|k| pick(k)).copied().collect()
    }

    pub fn scanning(&self) -> bool {
        self.scanning
    }

    /// Blocks from least to most recently used (tests).
    #[cfg(test)]
    pub fn order(&self) -> Vec<StoredBlock> {
        self.lru.iter().rev().map(|(id, _)| *id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn b(index: u64) -> StoredBlock {
        StoredBlock {
            key: [(index % 2) as u8; 32],
            index,
        }
    }

    fn index_of(n: u64, len: u64, max: u64) -> Index {
        let mut ix = Index::new(max);
        ix.scanned(Vec::new());
        for i in 0..n {
            assert!(ix.insert(b(i), len));
        }
        ix
    }

    #[test]
    fn admission_evicts_least_recently_used_first_and_reserves() {
        let mut ix = index_of(4, 10, 40);
        assert!(ix.touch(b(0)));
        let victims = ix.admit(15, None).expect("room");
        assert_eq!(victims, [(b(1), 10), (b(2), 10)]);
        assert_eq!(ix.used(), 20 + 15);
        ix.commit(b(9), 15);
        assert_eq!((ix.used(), ix.files()), (35, 3));
        assert_eq!(ix.order(), [b(3), b(0), b(9)]);
        assert!(!ix.insert(b(9), 99), "no double count");
        assert_eq!(ix.used(), 35);
    }

    #[test]
    fn a_block_that_cannot_fit_evicts_nothing() {
        let mut ix = index_of(3, 10, 40);
        assert_eq!(ix.admit(41, None), Err(NoRoom::Cap));
        // 5 bytes of headroom: a 50-byte block needs 45 freed, only 30 are held.
        assert_eq!(ix.admit(50, Some(5)), Err(NoRoom::Cap));
        let mut ix = index_of(3, 10, 1000);
        assert_eq!(ix.admit(50, Some(5)), Err(NoRoom::Disk));
        assert_eq!((ix.used(), ix.files()), (30, 3));
        let victims = ix.admit(20, Some(5)).expect("room after two evictions");
        assert_eq!(victims.len(), 2);
        ix.release(20);
        assert_eq!(ix.used(), 10);
    }

    #[test]
    fn a_full_disk_lowers_the_cap_to_the_usage() {
        let mut ix = index_of(3, 10, 1000);
        ix.disk_full();
        assert_eq!(ix.cap(), 30);
        let victims = ix.admit(10, None).expect("room");
        assert_eq!(victims, [(b(0), 10)]);
    }

    #[test]
    fn versions_are_counted_and_removed_whole() {
        let mut ix = index_of(5, 10, 1000);
        assert!(ix.holds_key(&[0; 32]));
        assert_eq!(ix.remove_key(&[0; 32]), (30, 3));
        assert!(!ix.holds_key(&[0; 32]));
        assert_eq!((ix.used(), ix.files()), (20, 2));
        assert_eq!(ix.remove(&b(1)), Some(10));
        assert_eq!(ix.remove(&b(1)), None);
        assert!(ix.holds_key(&[1; 32]));
    }

    #[test]
    fn the_scan_orders_by_mtime_and_applies_early_hits() {
        let mut ix = Index::new(25);
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert!(!ix.touch(b(2)), "not indexed yet");
        ix.scanned(vec![
            (b(1), 10, t(30)),
            (b(2), 10, t(10)),
            (b(3), 10, t(20)),
        ]);
        assert!(!ix.scanning());
        assert_eq!(ix.order(), [b(3), b(1), b(2)]);
        assert_eq!(ix.trim(), [(b(3), 10)]);
        assert_eq!(ix.used(), 20);
        assert!(!ix.touch(b(7)));
        assert!(
            ix.early.is_empty(),
            "early hits are kept only while scanning"
        );
    }

    #[test]
    fn expiry_forgets_what_was_last_used_before_the_cutoff() {
        let mut ix = Index::new(1000);
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        ix.scanned(vec![
            (b(1), 10, t(10)),
            (b(2), 10, t(20)),
            (b(3), 10, t(30)),
        ]);
        assert!(ix.touch(b(1)), "a hit is a use, now");
        assert_eq!(ix.expire(t(25)), [(b(2), 10)]);
        assert_eq!(
            ix.expire(t(25)),
            [],
            "b(3) is newer, so b(1) after it stays"
        );
        assert_eq!(
            ix.expire(SystemTime::now() + Duration::from_secs(1)).len(),
            2
        );
        assert_eq!((ix.used(), ix.files()), (0, 0));
        assert!(ix.keys_where(|_| true).is_empty());
    }
}
