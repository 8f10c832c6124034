//! What the access audit log (`fs::audit`) needs to know of the node table and of open
//! handles: the names a file is logged under, and whether the first byte of a read is
//! in the memory cache before the read. Read-only looks: nothing here changes state
//! the other operations see (a cache look refreshes the block's recency, as the read
//! that follows does anyway).

use std::sync::Arc;

use super::{Handle, Node, Ops};
use crate::audit::Tier;
use crate::cache::{BlockId, Lookup};
use crate::catalog::META_NAME;
use crate::source::Served;
use crate::version::ContentVersion;

/// Where the first byte of a read is, looked at before the read.
#[derive(Debug)]
pub(crate) enum Before {
    /// In memory already (or metadata, which always is).
    Memory,
    /// Block `index` of this version is not in memory: a tier delivers it.
    Block(Arc<ContentVersion>, u64),
}

impl Before {
    /// The tier that served the read, once it has returned.
    pub(crate) fn tier(&self, served: &Served) -> Tier {
        match self {
            Before::Memory => Tier::Memory,
            Before::Block(version, index) => {
                served.tier_of(version, *index).unwrap_or(Tier::Memory)
            }
        }
    }
}

impl Ops {
    /// `(guid, key)` of file `ino` (`.interaction.json` for metadata), or `None` for
    /// anything that is not a file.
    pub(crate) fn audit_names(&self, ino: u64) -> Option<(String, String)> {
        match self.node(ino).ok()? {
            Node::File { guid, key } => Some((guid, key)),
            Node::Meta { guid } => Some((guid, META_NAME.to_string())),
            _ => None,
        }
    }

    /// Is the byte at `offset` of open file `fh` in memory now?
    pub(crate) fn audit_before(&self, fh: u64, offset: u64) -> Before {
        let Ok(handle) = self.handle(fh) else {
            return Before::Memory;
        };
        let Handle::Content { source, .. } = &*handle else {
            return Before::Memory;
        };
        let index = offset / self.prefetcher.block_size().max(1);
        let id = BlockId {
            content: source.content,
            index,
        };
        match self.prefetcher.cache().lookup(id) {
            Lookup::Hit(_) => Before::Memory,
            _ => Before::Block(Arc::clone(&source.version), index),
        }
    }
}
