//! Opening a file: the day it belongs to is brought back into memory first when the
//! catalog's memory budget let it go (from the saved catalog, or listed again), then
//! a handle is made of exactly the version listed now (content) or of the bytes of
//! `.interaction.json` with the guid's erasure count (so an erasure later fails it).
//!
//! Invariants: only `O_RDONLY` opens succeed (`EROFS` otherwise); a handle never
//! changes the version it reads; the kernel may keep its cached pages of an inode
//! only when the last open of that inode saw the same version (never mixed bytes).

use super::*;

impl Ops {
    /// Open `ino` with open(2) `flags`; returns the file handle.
    #[cfg(test)]
    pub(crate) fn open(&self, ino: u64, flags: i32) -> Result<u64, FsError> {
        self.open_entry(ino, flags, None).map(|(fh, _)| fh)
    }

    /// Open `ino` with open(2) `flags`: the handle, and whether the kernel may keep the
    /// pages it caches of `ino` (false when they may be of another version: never
    /// mixed bytes). The file's day is brought back into memory first if it left
    /// (`--catalog-memory`): from the saved catalog, or, without one, listed again
    /// from the API. What the FUSE adapter calls.
    pub(crate) async fn open_resident(&self, ino: u64, flags: i32) -> Result<(u64, bool), FsError> {
        self.allowed()?;
        let known = match self.node(ino)? {
            Node::File { guid, .. } | Node::Meta { guid } => {
                self.catalog.known_async(&guid).await?
            }
            _ => None,
        };
        self.open_entry(ino, flags, known)
    }

    /// The open itself; `known` is the node's entry when the caller already holds it
    /// (so a day that leaves memory again in between does not fail the open).
    fn open_entry(
        &self,
        ino: u64,
        flags: i32,
        known: Option<Arc<InteractionEntry>>,
    ) -> Result<(u64, bool), FsError> {
        self.allowed()?;
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_TRUNC | libc::O_CREAT) != 0
        {
            return Err(FsError::ReadOnly);
        }
        let known = |guid: &str| {
            known
                .clone()
                .filter(|e| e.guid().to_string() == guid)
                .or_else(|| self.catalog.known(guid))
                .ok_or(FsError::NotFound)
        };
        let handle = match self.node(ino)? {
            Node::File { guid, key } => {
                let e = known(&guid)?;
                let f = self.catalog.file(&e, &key).ok_or(FsError::NotFound)?;
                if let Some(position) = self.catalog.position(&guid) {
                    self.prefetcher.on_open(&key, position, |from, to| {
                        self.catalog
                            .listed_range(from, to)
                            .iter()
                            .filter_map(|e| self.catalog.file(e, &key).map(|f| source_of(&f)))
                            .collect()
                    });
                }
                Handle::Content {
                    source: source_of(&f),
                    ra: Mutex::new(self.prefetcher.resume(f.content)),
                    retention: self
                        .prefetcher
                        .retention(f.size, flags & libc::O_DIRECT != 0),
                    unchecked: AtomicBool::new(!self.catalog.is_checked(&guid)),
                }
            }
            Node::Meta { guid } => {
                // Counted before the entry is taken: an erasure in between is seen.
                let erasures = self.catalog.erasures_of(&guid);
                let bytes = known(&guid)?.meta_json();
                Handle::Meta {
                    guid,
                    erasures,
                    bytes,
                }
            }
            _ => return Err(FsError::IsDir),
        };
        let seen_as = match &handle {
            Handle::Content { source, .. } => source.content.0,
            Handle::Meta { bytes, .. } => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                h.finish()
            }
        };
        let keep = self.opened_as.lock().insert(ino, seen_as) == Some(seen_as);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.handles.write().insert(fh, Arc::new(handle));
        Ok((fh, keep))
    }
}
