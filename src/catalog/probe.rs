//! Files listed without `contentLength`: their size is learned with one ranged GET
//! of the first block, whose bytes the caller keeps, so a file is never shown (or
//! read) as empty just because its listing left the size out.

use std::sync::Arc;

use bytes::Bytes;

use super::entry::Listed;
use super::{Catalog, CatalogError, FileEntry};

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
        if let Some(done) = file.probed.get() {
            return Ok((Arc::clone(done), None));
        }
        let probe = self.client.probe(guid, &file.key, head).await?;
        let sized = self.file_entry(
            guid,
            Listed {
                key: &file.key,
                kind: &file.kind,
                content_type: &file.content_type,
                size: Some(probe.size),
                mtime: file.mtime,
                last_modified: file.version.last_modified,
            },
        );
        if let Some(v) = &probe.validator {
            sized.version.pin(v);
        }
        tracing::debug!(%guid, key = %file.key, size = probe.size, "learned a size the listing left out");
        let sized = Arc::clone(file.probed.get_or_init(|| Arc::new(sized)));
        Ok((sized, Some(probe.head)))
    }
}
