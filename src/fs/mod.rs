//! The filesystem: the directory tree over the catalog, and reads through the
//! prefetcher, as async operations ([`ops`]) behind a thin fuser adapter ([`fuse`]).
//!
//! ```text
//! /interactions/<guid>/<contentKey>          content, exactly as the API serves it
//! /interactions/<guid>/.interaction.json     the interaction's metadata
//! /by-date/<YYYY-MM-DD>/<guid>               symlink to ../../interactions/<guid>
//! /calls/<YYYY-MM-DD>/<name>/<type><ext>     the same inodes as interactions/<guid>/
//! /by-agent/<id>/<YYYY-MM-DD>/<name>         symlink to ../../../calls/<day>/<name>
//! /by-number/<n>/<YYYY-MM-DD>/<name>         symlink to ../../../calls/<day>/<name>
//! ```
//!
//! Invariants:
//! - **Names from the catalog, bytes from the prefetcher.** `fs` never fetches: it
//!   holds a `Catalog` and a `Prefetcher`, and never sees the block source behind it.
//! - **Stable inodes.** Inode numbers hash what a node names (`catalog::ino`), so they
//!   are the same across remounts; the kernel may cache entries and attributes for an
//!   hour ([`ops::TTL`]) because a changed file is invalidated explicitly on re-list.
//! - **One errno mapping.** Every failure is an [`FsError`], mapped to errno in
//!   `errno` only; a failure of a cache tier never reaches it (it is a miss below).
//! - **One owner and permission rule.** Every node's owner and bits come from one
//!   [`Access`] (`access`: `--uid`, `--gid`, `--file-mode`, `--dir-mode`, defaults by
//!   `--allow-other`); the kernel enforces them (`default_permissions`), and getxattr
//!   also checks the caller against the file rule.
//! - **No waiting on a runtime worker for FUSE.** Requests start on the FUSE thread
//!   and move to the runtime only when they must wait (`answer`); the runtime never
//!   makes a call that waits on the kernel.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::prefetch::Prefetcher;

mod access;
mod answer;
mod attr;
mod audit;
mod counters;
mod errno;
mod fuse;
mod node;
mod ops;
mod page;
mod passthrough;
#[cfg(test)]
mod reftest;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access;
#[cfg(test)]
mod tests_erase;
#[cfg(test)]
mod tests_views;
mod views;
mod xattr;

pub use access::{parse_mode, Access};
pub use audit::FsAudit;
pub use counters::{FsCounters, LastError};
pub use fuse::VccFs;

impl VccFs {
    /// The filesystem over `catalog`, its nodes owned and moded by `access`.
    pub fn new(
        catalog: Arc<Catalog>,
        prefetcher: Arc<Prefetcher>,
        rt: tokio::runtime::Handle,
        access: Access,
    ) -> VccFs {
        VccFs {
            ops: Arc::new(ops::Ops::new(catalog, prefetcher).with_access(access)),
            rt,
            counters: Arc::default(),
            passthrough: Arc::new(passthrough::Passthrough::new(true)),
            audit: None,
        }
    }

    /// Log every open of a file to `audit` (`--audit-log`; see `audit`).
    pub fn with_audit(mut self, audit: Arc<FsAudit>) -> VccFs {
        self.audit = Some(audit);
        self
    }

    /// Never let the kernel read local files itself (`--no-passthrough`): every read
    /// comes through vccfs.
    pub fn without_passthrough(self) -> VccFs {
        self.passthrough.disable();
        self
    }

    /// What readers saw (errors, latency), for status and metrics.
    pub fn counters(&self) -> Arc<FsCounters> {
        Arc::clone(&self.counters)
    }
}
