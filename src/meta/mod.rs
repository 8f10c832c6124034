//! The metadata seam: what the catalog asks of the API — pages of a search, one
//! interaction, a size probe, and whether the tenant may be read at all — as the
//! [`MetaSource`] trait, the way `source` is the seam for blocks.
//!
//! The HTTP client is one implementation (`api::meta`); tests use a scriptable
//! in-memory API and a fault-injecting wrapper (`mock`). `catalog` holds a [`Meta`]
//! (an `Arc<dyn MetaSource>`) and never names the HTTP client.
//!
//! A search is paged by [`SearchPager`], one implementation for every source: the
//! range is split into windows of at most 7 days, each window's pages are followed
//! by their continuation tokens, and every interaction is returned once.
//!
//! Invariants every source keeps:
//! - **One window, one page.** [`MetaSource::search_page`] answers one page of one
//!   window `[a, b)` (at most 7 days), the page after `continuation` (none: the first);
//!   its `meta.nextContinuationToken` says whether there is another. It never pages by
//!   itself, so a pager can pace, stop or fail between pages.
//! - **Failures are the API's.** Every failure is an [`ApiError`] as the HTTP client
//!   would report it after its retries (404 → `NotFound`, 401/403, `Changed`, ...), so
//!   the catalog's handling (and `fs::errno`'s mapping) is the same whatever the source.
//! - **'static futures.** Methods take `&self` and return boxed futures that own what
//!   they need (as `source::BlockSource` does), so callers may hold them across awaits
//!   without borrowing the source.
//!
//! Invariants of the pager (a listing always ends): a page holding more items than
//! the `limit` asked ([`MAX_PAGE_LIMIT`]) is a protocol error; so is a continuation
//! token already seen in the same window, whatever came in between (A, B, A is a
//! cycle, not only A, A); items outside the range asked are dropped.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures::future::BoxFuture;
use time::OffsetDateTime;

use crate::api::{search_windows, ApiError, Probe};
use crate::model::{Interaction, SearchPage, MAX_PAGE_LIMIT};
use crate::version::TenantId;

#[cfg(test)]
pub(crate) mod mock;

/// A time window of a search, `[a, b)`.
pub type Window = (OffsetDateTime, OffsetDateTime);

/// What the catalog asks of the API (see the module essay).
pub trait MetaSource: Send + Sync + Debug {
    /// The tenant the answers are of (names content versions).
    fn tenant(&self) -> TenantId;

    /// One page of the search of `window` (at most 7 days): the first, or the one
    /// after `continuation`.
    fn search_page(
        &self,
        window: Window,
        continuation: Option<String>,
    ) -> BoxFuture<'static, Result<SearchPage, ApiError>>;

    /// `GET /interactions/{guid}`.
    fn interaction(&self, guid: &str) -> BoxFuture<'static, Result<Interaction, ApiError>>;

    /// The size of content `key` of `guid` (listed without one), from one ranged read
    /// of its first `head` bytes, which come back too.
    fn probe(
        &self,
        guid: &str,
        key: &str,
        head: u64,
    ) -> BoxFuture<'static, Result<Probe, ApiError>>;

    /// Does the API refuse this client now (one atomic load)?
    fn is_revoked(&self) -> bool;

    /// Ask now whether the client is (still, or again) allowed: one token request.
    fn probe_access(&self) -> BoxFuture<'static, ()>;
}

/// A shared [`MetaSource`], as the catalog holds it.
#[derive(Clone, Debug)]
pub struct Meta {
    source: Arc<dyn MetaSource>,
    /// The scriptable API behind it, when it is one (tests reach it through here).
    #[cfg(test)]
    mock: Option<Arc<mock::MockMeta>>,
}

impl From<Arc<dyn MetaSource>> for Meta {
    fn from(source: Arc<dyn MetaSource>) -> Meta {
        Meta {
            source,
            #[cfg(test)]
            mock: None,
        }
    }
}

impl Meta {
    /// The scriptable in-memory API `mock`.
    #[cfg(test)]
    pub(crate) fn mock(mock: Arc<mock::MockMeta>) -> Meta {
        let source: Arc<dyn MetaSource> = mock.clone();
        Meta {
            source,
            mock: Some(mock),
        }
    }

    /// The mock this was made of, if it was ([`Meta::mock`]).
    #[cfg(test)]
    pub(crate) fn as_mock(&self) -> Option<&Arc<mock::MockMeta>> {
        self.mock.as_ref()
    }

    pub fn tenant(&self) -> TenantId {
        self.source.tenant()
    }

    /// Every interaction whose `start` lies in `[from, to)`, each once, page by page.
    pub fn search(&self, from: OffsetDateTime, to: OffsetDateTime) -> SearchPager {
        SearchPager::new(Arc::clone(&self.source), from, to)
    }

    pub async fn interaction(&self, guid: &str) -> Result<Interaction, ApiError> {
        self.source.interaction(guid).await
    }

    pub async fn probe(&self, guid: &str, key: &str, head: u64) -> Result<Probe, ApiError> {
        self.source.probe(guid, key, head).await
    }

    pub fn is_revoked(&self) -> bool {
        self.source.is_revoked()
    }

    pub async fn probe_access(&self) {
        self.source.probe_access().await
    }
}

/// Walks the pages of a search. Memory: one page plus the guids already returned.
#[derive(Debug)]
pub struct SearchPager {
    source: Arc<dyn MetaSource>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    /// Windows not started yet, newest first (popped from the end).
    pending: Vec<Window>,
    /// The window being paged and the token of its next page.
    current: Option<(Window, Option<String>)>,
    seen: HashSet<String>,
    /// The continuation tokens received in the current window (to catch a cycle).
    tokens: HashSet<String>,
}

impl SearchPager {
    /// The search of `[from, to)` through `source`.
    pub fn new(source: Arc<dyn MetaSource>, from: OffsetDateTime, to: OffsetDateTime) -> Self {
        let mut pending = search_windows(from, to);
        pending.reverse();
        SearchPager {
            source,
            from,
            to,
            pending,
            current: None,
            seen: HashSet::new(),
            tokens: HashSet::new(),
        }
    }

    /// Has every page been returned (so the next call makes no request)?
    pub fn is_done(&self) -> bool {
        self.current.is_none() && self.pending.is_empty()
    }

    /// The next batch of new interactions (possibly empty), or `None` when done.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Interaction>>, ApiError> {
        let (window, token) = match self.current.take() {
            Some(c) => c,
            None => match self.pending.pop() {
                Some(w) => {
                    self.tokens.clear();
                    (w, None)
                }
                None => return Ok(None),
            },
        };
        let page = self.source.search_page(window, token).await?;
        let protocol = |detail: String| ApiError::Protocol {
            what: "GET interactions".into(),
            detail,
        };
        if page.items.len() > MAX_PAGE_LIMIT as usize {
            return Err(protocol(format!(
                "a page held {} items, more than the limit of {MAX_PAGE_LIMIT} asked",
                page.items.len()
            )));
        }
        match page.meta.next_continuation_token {
            Some(next) if !next.is_empty() => {
                if !self.tokens.insert(next.clone()) {
                    return Err(protocol(format!(
                        "the server sent a continuation token again after {} pages of this window (a cycle): the listing would never end",
                        self.tokens.len()
                    )));
                }
                self.current = Some((window, Some(next)));
            }
            _ => {}
        }
        let (from, to) = (self.from, self.to);
        let fresh = page
            .items
            .into_iter()
            .filter(|i| i.start >= from && i.start < to)
            .filter(|i| self.seen.insert(i.guid.clone()))
            .collect();
        Ok(Some(fresh))
    }
}
