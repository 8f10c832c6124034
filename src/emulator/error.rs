//! Error responses of the API routes: `{"message": ...}` bodies (api.md §6) with the
//! right status and headers.

use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{header, HeaderValue, StatusCode};

use crate::model::{ErrorBody, ACCEPT_V2, ACCEPT_V3};

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// 429 with `Retry-After` seconds.
    RateLimited { retry_after: u64 },
    /// 401: missing, unknown or expired bearer token.
    Unauthorized,
    /// 403: the token lacks the scope.
    Forbidden,
    /// 403: the client's access was revoked (`POST /_emulator/client`).
    Revoked,
    /// 400: no or another `Accept` version.
    VersionMissing,
    /// 400: a `vnd.newvoicemedia` version other than 2 and 3.
    VersionUnsupported,
    /// 400 with a message.
    BadRequest(String),
    /// 404 with a message.
    NotFound(String),
    /// 503 (`fail_rate`).
    Unavailable,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Revoked => StatusCode::FORBIDDEN,
            Self::VersionMissing | Self::VersionUnsupported | Self::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn message(&self) -> String {
        match self {
            Self::RateLimited { .. } => "Too many requests, please retry later".into(),
            Self::Unauthorized => "The access token is invalid or has expired".into(),
            Self::Forbidden => {
                "The access token does not grant the interaction-content:read scope".into()
            }
            Self::Revoked => "The client's access to this account has been revoked".into(),
            Self::VersionMissing => {
                format!("Invalid api-version! Valid values: '{ACCEPT_V2}', '{ACCEPT_V3}'")
            }
            Self::VersionUnsupported => format!("Invalid api-version! Valid values: '{ACCEPT_V3}'"),
            Self::BadRequest(m) | Self::NotFound(m) => m.clone(),
            Self::Unavailable => "The service is temporarily unavailable".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status(),
            Json(ErrorBody {
                message: self.message(),
            }),
        )
            .into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        match self {
            Self::RateLimited { retry_after } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::Unauthorized => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::Unavailable => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}
