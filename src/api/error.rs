//! The client's one error type. The filesystem maps each variant to one errno.

use std::time::Duration;

/// Everything that can go wrong talking to the API. `what` names the request
/// (method, path with guid and key, never a token).
#[derive(Debug, thiserror::Error, Clone)]
pub enum ApiError {
    #[error("{what}: not found")]
    NotFound { what: String },
    #[error("{what}: unauthorized ({detail})")]
    Unauthorized { what: String, detail: String },
    #[error("{what}: forbidden ({detail})")]
    Forbidden { what: String, detail: String },
    #[error("{what}: rejected by the API (HTTP {status}): {detail}")]
    BadRequest {
        what: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: still rate limited (HTTP 429) after retrying for {waited:?}")]
    RateLimited { what: String, waited: Duration },
    #[error("{what}: the content changed on the server ({detail})")]
    Changed { what: String, detail: String },
    #[error("{what}: timed out after {waited:?} ({detail})")]
    Timeout {
        what: String,
        waited: Duration,
        detail: String,
    },
    #[error("{what}: the server broke the protocol: {detail}")]
    Protocol { what: String, detail: String },
    #[error("{what}: {detail}")]
    Transport { what: String, detail: String },
    #[error("configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// True for failures worth retrying (the request may succeed if sent again).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Transport { .. }
                | ApiError::Timeout { .. }
                | ApiError::Protocol { .. }
                | ApiError::RateLimited { .. }
        )
    }
}

/// Describe a reqwest error without its URL (signed storage URLs carry secrets).
pub(crate) fn describe_transport(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    append_causes(&mut s, &e);
    s
}

/// `s`, then each cause of `e` that `s` does not say already, after `: `.
pub(crate) fn append_causes(s: &mut String, e: &dyn std::error::Error) {
    let mut src = e.source();
    while let Some(inner) = src {
        let part = inner.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        src = inner.source();
    }
}
