//! Catalogs for tests: built in memory, and listings marked as saved until re-checked.

use std::time::Duration;

use time::OffsetDateTime;

use super::{Catalog, DayState, Refresh};
use crate::api::ApiClient;
use crate::model::Interaction;

impl Catalog {
    /// A catalog of `items` in `[from, to)`, for tests: its client points at a port
    /// where nothing listens, so anything not listed fails at once.
    pub(crate) fn in_memory(
        from: OffsetDateTime,
        to: OffsetDateTime,
        items: Vec<Interaction>,
    ) -> Catalog {
        let creds = crate::api::Credentials {
            client_id: "test".into(),
            client_secret: "secret".into(),
        };
        let unreachable = "http://127.0.0.1:9";
        let mut cfg = crate::api::ApiConfig::new(
            &format!("{unreachable}/interaction-content"),
            &format!("{unreachable}/token"),
            creds,
        )
        .expect("a valid test configuration");
        cfg.retry_deadline = Duration::from_millis(200);
        let client = ApiClient::new(cfg).expect("a test client");
        let catalog = Catalog::empty(client, from, to);
        catalog.apply(items);
        catalog
    }

    /// Tests: the listing is as if read from saved days, until [`Catalog::recheck`].
    pub(crate) fn mark_unchecked(&self) {
        self.listing.write().mark_all(DayState::Saved);
    }

    /// Tests: the API refuses (or accepts again) this client.
    pub(crate) fn set_revoked(&self, revoked: bool) {
        match revoked {
            true => self.client.inner.access.revoke("test"),
            false => self.client.inner.access.restore(),
        }
    }

    /// Tests: `items` is what the API lists now.
    pub(crate) fn recheck(&self, items: Vec<Interaction>) -> Refresh {
        self.apply(items)
    }
}
