//! Files listed without `contentLength`: their size is learned with one ranged GET
//! of the first block, whose bytes the caller keeps, so a file is never shown (or
//! read) as empty just because its listing left the size out.
//!
//! Invariant: a learned size is kept by the file's unsized_key version key, so re-lists
//! that still leave the size out keep it, and the sized version is pinned to the
//! validator the probe saw.

use std::sync::Arc;

use bytes::Bytes;

use super::{Catalog, CatalogError, FileEntry};
use crate::version::ContentKey;

impl Catalog {
    /// `file` of interaction `guid` with its size known: as it is if the listing gave
    /// the size (or it was learned before), else after one ranged GET of its first
    /// `head` bytes, which come back too (to be kept: they are block 0).
    pub async fn sized(
        &self,
        guid: &str,
        file: &Arc<FileEntry>,
        head: u64,
    ) -> Result<(Arc<FileEntry>, Option<Bytes>), CatalogError> {
        if file.size_known {
            return Ok((Arc::clone(file), None));
        }
        let _one_probe = self.probe_lock.lock().await;
        let lm = file.version.last_modified;
        let unsized_key = ContentKey::new(self.tenant, guid, &file.key, 0, lm);
        if self.live.learned(&unsized_key).is_some() {
            if let Some(e) = self.known(guid) {
                if let Some(f) = self.file(&e, &file.key) {
                    return Ok((f, None));
                }
            }
        }
        let probe = self.client.probe(guid, &file.key, head).await?;
        let names = [
            Arc::clone(&file.key),
            Arc::clone(&file.kind),
            Arc::clone(&file.content_type),
        ];
        let sized = self.new_file(guid, names, Some(probe.size), file.mtime, lm);
        if let Some(v) = &probe.validator {
            sized.version.pin(v);
        }
        let sized = Arc::new(sized);
        let sized = self.live.insert(sized);
        self.live.learn(unsized_key, probe.size);
        tracing::debug!(%guid, key = %file.key, size = probe.size, "learned a size the listing left out");
        Ok((sized, Some(probe.head)))
    }
}
