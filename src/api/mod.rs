//! The Interaction Content API client. Knows nothing of FUSE.
//!
//! - `config`: endpoints, credentials, limits;
//! - `token`: OAuth2 client-credentials tokens (cached, refreshed, single-flight);
//! - `budget`: the client-wide request budget (requests per minute, in flight);
//! - `retry`: backoff, `Retry-After`, deadlines;
//! - `search`: windowed, paged, deduplicated search;
//! - `content`: exact, version-pinned ranged reads, redirects without the token;
//! - `stats`: counters.

pub mod budget;
mod client;
pub mod config;
pub mod content;
mod error;
pub mod retry;
pub mod search;
pub mod stats;
pub mod token;

pub use crate::version::ContentVersion;
pub use client::ApiClient;
pub use config::{ApiConfig, Credentials, Region};
pub use error::ApiError;
pub use search::SearchPager;
pub use stats::ClientStatsSnapshot;
