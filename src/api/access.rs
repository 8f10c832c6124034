//! The tenant's access: is this client (still) allowed to read the tenant at all?
//!
//! A revoked client must not go on reading what it cached while it was allowed, so the
//! client keeps one tenant-wide state that the filesystem checks before serving
//! anything of the tenant's (listings, cached bytes in any tier):
//!
//! - **Revoked** when the token endpoint refuses the client (`400 invalid_client`, or
//!   `401`), or the API refuses a token it issued (`403`): a search's 403 at once (the
//!   search is tenant-wide), a 403 on one interaction or file only once a fresh token
//!   request confirms it (api.md §6: a user may lack access to *some* interactions; that
//!   is that file's `EACCES`, not the tenant's). Every 403 also drops the cached token,
//!   so the next request is a token request: the probe that finds out.
//! - **Ok again** at the first token the endpoint grants or the first answer the API
//!   serves to a token (2xx, and the redirects/412/416 it only gives authorised callers).
//! - **Unchanged** by everything else: transport errors, timeouts, 429, 5xx, 404. An API
//!   that is merely unreachable still serves what is cached.
//!
//! Invariants: reading the state is one atomic load (the read path does it on every
//! operation); `since` is when the current revocation began (a second refusal while
//! revoked keeps it, and updates the reason); restoring when not revoked is one load.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Whether the tenant may be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "access", rename_all = "lowercase")]
pub enum Access {
    Ok,
    Revoked {
        /// Unix seconds when the refusal was first seen.
        since: u64,
        /// What refused, as the server said it (never a secret).
        reason: String,
    },
}

impl Access {
    pub fn is_revoked(&self) -> bool {
        matches!(self, Access::Revoked { .. })
    }
}

/// The shared state behind [`Access`].
#[derive(Debug, Default)]
pub(crate) struct AccessState {
    revoked: AtomicBool,
    /// The server accepted this client at least once (so a refusal is a revocation,
    /// worth a warning, not wrong credentials at start-up, which the mount reports).
    accepted: AtomicBool,
    detail: Mutex<Option<(u64, String)>>,
}

impl AccessState {
    /// One atomic load.
    pub(crate) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self) -> Access {
        if !self.is_revoked() {
            return Access::Ok;
        }
        match self.detail.lock().clone() {
            Some((since, reason)) => Access::Revoked { since, reason },
            None => Access::Ok,
        }
    }

    /// The server refused the client: `reason` says how.
    pub(crate) fn revoke(&self, reason: &str) {
        let mut d = self.detail.lock();
        let since = match d.as_ref() {
            Some((since, _)) if self.is_revoked() => *since,
            _ => {
                if self.accepted.load(Ordering::Relaxed) {
                    tracing::warn!(%reason, "access revoked: cached content is refused until the API accepts this client again");
                } else {
                    tracing::debug!(%reason, "the client is refused (it never was accepted here)");
                }
                crate::util::now_secs().unix_timestamp().max(0) as u64
            }
        };
        *d = Some((since, reason.to_string()));
        self.revoked.store(true, Ordering::Release);
    }

    /// The server accepted the client.
    pub(crate) fn restore(&self) {
        if !self.accepted.load(Ordering::Relaxed) {
            self.accepted.store(true, Ordering::Relaxed);
        }
        if !self.is_revoked() {
            return;
        }
        let mut d = self.detail.lock();
        if self.revoked.swap(false, Ordering::AcqRel) {
            tracing::info!("access restored");
        }
        *d = None;
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
