//! `GET /interactions` over any time range: split into ≤7-day half-open windows, each
//! paged with `continuationToken`, deduplicated by guid, one page at a time.
//!
//! Invariants (a listing always ends): a page body is read under
//! [`super::body::MAX_PAGE_BODY`]; a page holding more items than the `limit` asked
//! ([`MAX_PAGE_LIMIT`]) is a protocol error; so is a continuation token already seen
//! in the same window, whatever came in between (A, B, A is a cycle, not only A, A).

use std::collections::HashSet;

use time::OffsetDateTime;

use super::client::{read_json, ApiClient};
use super::stats::RequestKind;
use super::ApiError;
use crate::model::{Interaction, SearchPage, MAX_PAGE_LIMIT, MAX_SEARCH_WINDOW};
use crate::util::format_rfc3339;

/// Half-open windows `[a, b)` of at most 7 days covering `[from, to)`, oldest first.
pub fn search_windows(
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let mut out = Vec::new();
    let mut a = from;
    while a < to {
        let b = (a + MAX_SEARCH_WINDOW).min(to);
        out.push((a, b));
        a = b;
    }
    out
}

/// Walks the pages of a search. Memory: one page plus the guids already returned.
#[derive(Debug)]
pub struct SearchPager {
    client: ApiClient,
    from: OffsetDateTime,
    to: OffsetDateTime,
    /// Windows not started yet, newest first (popped from the end).
    pending: Vec<(OffsetDateTime, OffsetDateTime)>,
    /// The window being paged and the token of its next page.
    current: Option<((OffsetDateTime, OffsetDateTime), Option<String>)>,
    seen: HashSet<String>,
    /// The continuation tokens received in the current window (to catch a cycle).
    tokens: HashSet<String>,
}

impl ApiClient {
    /// Every interaction whose `start` lies in `[from, to)`, each exactly once.
    pub fn search(&self, from: OffsetDateTime, to: OffsetDateTime) -> SearchPager {
        let mut pending = search_windows(from, to);
        pending.reverse();
        SearchPager {
            client: self.clone(),
            from,
            to,
            pending,
            current: None,
            seen: HashSet::new(),
            tokens: HashSet::new(),
        }
    }

    /// All of a search at once.
    pub async fn search_all(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<Interaction>, ApiError> {
        let mut pager = self.search(from, to);
        let mut all = Vec::new();
        while let Some(page) = pager.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    async fn search_page(
        &self,
        window: (OffsetDateTime, OffsetDateTime),
        continuation: Option<&str>,
    ) -> Result<SearchPage, ApiError> {
        let (a, b) = window;
        let start = format_rfc3339(a);
        let end = format_rfc3339(b);
        let what = format!("GET interactions?start={start}&end={end}");
        let url = self.url(&["interactions"])?;
        let limit = MAX_PAGE_LIMIT.to_string();
        self.retrying(&what, |token| {
            let mut query: Vec<(&str, &str)> =
                vec![("start", &start), ("end", &end), ("limit", &limit)];
            if let Some(c) = continuation {
                query.push(("continuationToken", c));
            }
            let req = self.inner.http.get(url.clone()).query(&query);
            let what = what.clone();
            async move {
                let resp = self
                    .send_api(&what, RequestKind::Search, &token, req)
                    .await?;
                read_json::<SearchPage>(&what, resp, super::body::MAX_PAGE_BODY).await
            }
        })
        .await
    }
}

impl SearchPager {
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
        let page = self.client.search_page(window, token.as_deref()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn windows_cover_range_without_overlap() {
        let from = datetime!(2026-11-01 00:00 UTC);
        let to = datetime!(2026-11-21 12:00 UTC);
        let w = search_windows(from, to);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0], (from, datetime!(2026-11-08 00:00 UTC)));
        assert_eq!(w[2].1, to);
        for pair in w.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
        }
        assert!(search_windows(to, from).is_empty());
    }
}
