//! The middleware in front of every emulated route (token, API, storage host): counts
//! the request, applies `down` and `--latency-ms`, then for `/interaction-content`
//! routes checks, in order, the rate limit (and `burst_429`), the bearer token, its
//! scope, the client's access (403 while revoked), the `Accept` version and
//! `fail_rate`; finally counts the response status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};

use super::auth::BearerError;
use super::error::ApiError;
use super::faults::{roll, FaultConfig};
use super::server::ConnCtx;
use super::stats::Stats;
use super::App;
use crate::model::{ACCEPT_V2, ACCEPT_V3, SCOPE_READ};

/// The API version negotiated from `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    V2,
    V3,
}

/// Which emulated route a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    Token,
    Search,
    Interaction,
    Content,
    Storage,
}

impl Surface {
    fn is_api(self) -> bool {
        matches!(self, Self::Search | Self::Interaction | Self::Content)
    }
}

/// The version gate (api.md §1, §6): `Accept` must name the v2 or v3 media type (v3
/// wins); another `vnd.newvoicemedia` version gets the v3-only message, anything else
/// (or nothing) the two-version message.
pub(crate) fn negotiate(headers: &HeaderMap) -> Result<ApiVersion, ApiError> {
    let mut found = None;
    let mut other_version = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let media = range
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media == ACCEPT_V3 {
                found = Some(ApiVersion::V3);
            } else if media == ACCEPT_V2 {
                found = found.or(Some(ApiVersion::V2));
            } else if media.starts_with("application/vnd.newvoicemedia.v") {
                other_version = true;
            }
        }
    }
    match found {
        Some(v) => Ok(v),
        None if other_version => Err(ApiError::VersionUnsupported),
        None => Err(ApiError::VersionMissing),
    }
}

/// The API checks, in order; returns the negotiated version.
fn gate(app: &App, cfg: &FaultConfig, headers: &HeaderMap) -> Result<ApiVersion, ApiError> {
    if app.faults.take_burst_429() {
        return Err(ApiError::RateLimited { retry_after: 1 });
    }
    app.limiter
        .admit(cfg.rate_limit, Instant::now())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    app.tokens
        .check(headers.get(header::AUTHORIZATION), SCOPE_READ)
        .map_err(|e| match e {
            BearerError::Invalid => ApiError::Unauthorized,
            BearerError::MissingScope => ApiError::Forbidden,
        })?;
    if app.client_revoked() {
        return Err(ApiError::Revoked);
    }
    let version = negotiate(headers)?;
    if roll(cfg.fail_rate) {
        return Err(ApiError::Unavailable);
    }
    Ok(version)
}

fn count_request(stats: &Stats, surface: Surface, headers: &HeaderMap) {
    let c = &stats.c;
    let ranged = headers.contains_key(header::RANGE);
    if let Some(p) = headers
        .get(super::stats::PURPOSE_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        stats.count_purpose(p, surface == Surface::Content);
    }
    match surface {
        Surface::Token => Stats::inc(&c.token_requests),
        Surface::Search => Stats::inc(&c.search_requests),
        Surface::Interaction => Stats::inc(&c.interaction_requests),
        Surface::Content => {
            Stats::inc(&c.content_requests);
            if ranged {
                Stats::inc(&c.range_requests);
            }
        }
        Surface::Storage => {
            Stats::inc(&c.storage_requests);
            if ranged {
                Stats::inc(&c.storage_range_requests);
            }
            if headers.contains_key(header::AUTHORIZATION) {
                Stats::inc(&c.auth_leaked);
                tracing::warn!("storage host received an Authorization header");
            }
        }
    }
}

/// The middleware; its state names the route.
pub(crate) async fn guard(
    State((app, surface)): State<(Arc<App>, Surface)>,
    mut req: Request,
    next: Next,
) -> Response {
    count_request(&app.stats, surface, req.headers());
    let cfg = app.faults.get();
    if cfg.down {
        Stats::inc(&app.stats.c.dropped_connections);
        if let Some(conn) = req.extensions().get::<Arc<ConnCtx>>() {
            conn.drop_now();
            // The connection task drops this future with the connection.
            std::future::pending::<()>().await;
        }
        // Not served by our accept loop: the closest thing is a bare 503.
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if cfg.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.latency_ms)).await;
    }
    if surface.is_api() {
        match gate(&app, &cfg, req.headers()) {
            Ok(v) => {
                req.extensions_mut().insert(v);
            }
            Err(e) => {
                tracing::debug!(?surface, error = ?e, "request refused");
                let resp = e.into_response();
                app.stats.count_status(resp.status());
                return resp;
            }
        }
    }
    let resp = next.run(req).await;
    tracing::debug!(?surface, status = resp.status().as_u16(), "response");
    app.stats.count_status(resp.status());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("hv"));
        h
    }

    #[test]
    fn version_gate() {
        assert_eq!(negotiate(&accept(ACCEPT_V3)), Ok(ApiVersion::V3));
        assert_eq!(negotiate(&accept(ACCEPT_V2)), Ok(ApiVersion::V2));
        assert_eq!(
            negotiate(&accept(
                "application/json, application/vnd.newvoicemedia.v2+json; q=0.9"
            )),
            Ok(ApiVersion::V2)
        );
        assert_eq!(
            negotiate(&accept("application/vnd.newvoicemedia.v1+json")),
            Err(ApiError::VersionUnsupported)
        );
        assert_eq!(negotiate(&accept("*/*")), Err(ApiError::VersionMissing));
        assert_eq!(negotiate(&HeaderMap::new()), Err(ApiError::VersionMissing));
    }
}
