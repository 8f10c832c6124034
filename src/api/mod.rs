//! The Interaction Content API client. Knows nothing of FUSE.
//!
//! - `body`: response bodies read under a size cap;
//! - `access`: whether the tenant may be read at all (revoked clients read nothing);
//! - `config`: endpoints, credentials, limits;
//! - `token`: OAuth2 client-credentials tokens (cached, refreshed, single-flight);
//! - `budget`: the client-wide request budget (requests per minute, in flight);
//! - `retry`: backoff, `Retry-After`, deadlines;
//! - `search`: windowed, paged, deduplicated search;
//! - `content`: exact, version-pinned ranged reads, redirects without the token;
//! - `meta`: the client as the catalog's `meta::MetaSource`;
//! - `stats`: counters.

mod access;
mod body;
mod budget;
mod client;
mod config;
mod content;
mod error;
mod meta;
mod retry;
mod search;
mod stats;
#[cfg(test)]
mod test_server;
mod token;

pub use crate::meta::SearchPager;
pub use access::Access;
pub use budget::FleetPacer;
pub use client::ApiClient;
pub use config::{ApiConfig, Credentials, Region};
pub use content::Probe;
pub(crate) use error::append_causes;
pub use error::ApiError;
pub use search::search_windows;
pub use stats::{ClientStatsSnapshot, RequestKind};
