//! Response bodies read with a size cap while they stream.
//!
//! Invariants:
//! - no JSON body (search page, lookup, token, error) is read whole on trust: it is
//!   read chunk by chunk ([`reqwest::Response::chunk`]) into a buffer that never grows
//!   past its cap; a declared `Content-Length` over the cap is refused before any byte
//!   is read, and a body that streams past it is refused the moment it does;
//! - a capped body past its cap is a [`BodyError::TooLarge`] (the caller makes it a
//!   fatal protocol error: the same request would bring the same body again);
//! - an error body is only ever shown as an excerpt: [`read_truncated`] keeps its first
//!   [`MAX_ERROR_BODY`] bytes and stops reading there, never failing.
//!
//! Content bytes are not read here: ranged reads allocate from the range asked for
//! (see `content.rs`).

use reqwest::Response;

/// A search page (1,000 interactions with their content lists are a few MiB).
pub(crate) const MAX_PAGE_BODY: usize = 16 << 20;
/// One interaction's lookup, or a token response.
pub(crate) const MAX_JSON_BODY: usize = 1 << 20;
/// What an error response may contribute to a message.
pub(crate) const MAX_ERROR_BODY: usize = 64 << 10;

/// Why a capped body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the cap (declared or streamed).
    TooLarge { cap: usize },
    /// The connection broke mid-body.
    Transport(reqwest::Error),
}

impl BodyError {
    /// `response body is larger than 16 MiB`-style text, for a protocol error.
    pub(crate) fn too_large(cap: usize) -> String {
        format!(
            "response body is larger than {} (refused unread)",
            crate::util::human_bytes(cap as u64)
        )
    }
}

/// The whole body of `resp`, if it is at most `cap` bytes.
pub(crate) async fn read_capped(mut resp: Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge { cap });
    }
    let hint = declared.map_or(0, |n| n as usize).min(cap);
    let mut body = Vec::with_capacity(hint);
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if chunk.len() > cap - body.len() {
            return Err(BodyError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most the first `cap` bytes of `resp`'s body (what came before a broken
/// connection, if it broke): for error excerpts.
pub(crate) async fn read_truncated(mut resp: Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
