//! Control routes under `/_emulator` (no auth, never rate-limited, faulted or counted):
//!
//! - `GET /_emulator/stats`, `DELETE /_emulator/stats` (reset; returns the zeroed counters);
//! - `GET /_emulator/faults`, `POST /_emulator/faults` with a partial [`FaultPatch`]
//!   (e.g. `{"reset_rate": 0.2, "down": true}`; unknown fields and rates outside 0..1
//!   are refused with 400); returns the new settings;
//! - `POST /_emulator/mutate` `{"guid", "contentKey", "bumpSecs"?}`: a new version of
//!   that item (new bytes, `lastModified` + `bumpSecs`, default 60); returns the item;
//! - `GET /_emulator/tenant`: every interaction (ground truth, no 7-day window).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::StatusCode;
use serde::Deserialize;

use super::auth::json_utf8;
use super::faults::FaultPatch;
use super::App;
use crate::model::ErrorBody;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_utf8(
        status,
        &ErrorBody {
            message: message.into(),
        },
    )
}

/// `GET /_emulator/stats`.
pub(crate) async fn stats(State(app): State<Arc<App>>) -> Response {
    json_utf8(StatusCode::OK, &app.stats.snapshot())
}

/// `DELETE /_emulator/stats`.
pub(crate) async fn reset_stats(State(app): State<Arc<App>>) -> Response {
    app.stats.reset();
    json_utf8(StatusCode::OK, &app.stats.snapshot())
}

/// `GET /_emulator/faults`.
pub(crate) async fn faults(State(app): State<Arc<App>>) -> Response {
    json_utf8(StatusCode::OK, &app.faults.get())
}

/// `POST /_emulator/faults`.
pub(crate) async fn set_faults(
    State(app): State<Arc<App>>,
    body: Result<Json<FaultPatch>, JsonRejection>,
) -> Response {
    let patch = match body {
        Ok(Json(p)) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match app.faults.patch(&patch) {
        Ok(cfg) => {
            if patch.revoke_tokens == Some(true) {
                app.tokens.revoke_all();
            }
            tracing::info!(?cfg, "faults changed");
            json_utf8(StatusCode::OK, &cfg)
        }
        Err(msg) => error(StatusCode::BAD_REQUEST, msg),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MutateRequest {
    guid: String,
    content_key: String,
    #[serde(default = "default_bump")]
    bump_secs: u32,
}

fn default_bump() -> u32 {
    60
}

/// `POST /_emulator/mutate`.
pub(crate) async fn mutate(
    State(app): State<Arc<App>>,
    body: Result<Json<MutateRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match app
        .tenant
        .mutate(&req.guid, &req.content_key, req.bump_secs)
    {
        Some(item) => {
            tracing::info!(guid = %req.guid, key = %req.content_key, "content mutated");
            json_utf8(StatusCode::OK, &item)
        }
        None => error(
            StatusCode::NOT_FOUND,
            format!(
                "No content '{}' in interaction '{}'",
                req.content_key, req.guid
            ),
        ),
    }
}

/// `GET /_emulator/tenant`.
pub(crate) async fn tenant(State(app): State<Arc<App>>) -> Response {
    json_utf8(StatusCode::OK, &app.tenant.interactions()).into_response()
}
