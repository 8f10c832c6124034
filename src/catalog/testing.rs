//! Catalogs for tests: built in memory over the scriptable API (`meta::mock`), and
//! listings marked as saved until re-checked.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{Catalog, DayState, Refresh};
use crate::meta::mock::MockMeta;
use crate::meta::Meta;
use crate::model::Interaction;

impl Catalog {
    /// A catalog of `items` in `[from, to)`, for tests: its API is unreachable, so
    /// anything not listed fails at once.
    pub(crate) fn in_memory(
        from: OffsetDateTime,
        to: OffsetDateTime,
        items: Vec<Interaction>,
    ) -> Catalog {
        let catalog = Catalog::with_mock(from, to, Arc::new(MockMeta::unreachable()));
        catalog.apply(items);
        catalog
    }

    /// A catalog of `[from, to)` over `api`, nothing listed yet.
    pub(crate) fn with_mock(
        from: OffsetDateTime,
        to: OffsetDateTime,
        api: Arc<MockMeta>,
    ) -> Catalog {
        Catalog::empty(Meta::mock(api), from, to)
    }

    /// Tests: the listing is as if read from saved days, until [`Catalog::recheck`].
    pub(crate) fn mark_unchecked(&self) {
        self.listing
            .write()
            .mark_all(DayState::Saved { listed: None });
    }

    /// Tests: the API refuses (or accepts again) this client.
    pub(crate) fn set_revoked(&self, revoked: bool) {
        if let Some(api) = self.client.as_mock() {
            api.set_revoked(revoked);
        }
    }

    /// Tests: `items` is what the API lists now.
    pub(crate) fn recheck(&self, items: Vec<Interaction>) -> Refresh {
        self.apply(items)
    }
}
