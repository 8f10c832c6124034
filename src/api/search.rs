//! `GET /interactions` over any time range: split into ≤7-day half-open windows, each
//! paged with `continuationToken`, deduplicated by guid, one page at a time (the pager,
//! shared by every metadata source, is `meta::SearchPager`).
//!
//! Invariant: a page body is read under [`super::body::MAX_PAGE_BODY`].

use std::sync::Arc;

use time::OffsetDateTime;

use super::client::{read_json, ApiClient};
use super::stats::RequestKind;
use super::ApiError;
use crate::meta::SearchPager;
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

impl ApiClient {
    /// Every interaction whose `start` lies in `[from, to)`, each exactly once.
    pub fn search(&self, from: OffsetDateTime, to: OffsetDateTime) -> SearchPager {
        SearchPager::new(Arc::new(self.clone()), from, to)
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

    pub(super) async fn search_page(
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
