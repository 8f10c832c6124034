//! Control routes under `/_emulator` (no auth, never rate-limited, faulted or counted):
//!
//! - `GET /_emulator/stats`, `DELETE /_emulator/stats` (reset; returns the zeroed counters);
//! - `GET /_emulator/faults`, `POST /_emulator/faults` with a partial [`FaultPatch`]
//!   (e.g. `{"reset_rate": 0.2, "down": true}`; unknown fields and rates outside 0..1
//!   are refused with 400); returns the new settings;
//! - `POST /_emulator/mutate` `{"guid", "contentKey", "bumpSecs"?}`: a new version of
//!   that item (new bytes, `lastModified` + `bumpSecs`, default 60); returns the item;
//! - `POST /_emulator/delete` `{"guid"}`: the interaction is gone from then on (not
//!   listed, `GET /interactions/{guid}` and its content 404); returns `{"guid"}`, 404
//!   if it is not served. With `"contentKey"`, only that item goes (the interaction is
//!   listed and looked up without it, its content 404); 404 if there is no such item,
//!   409 if it is the interaction's last;
//! - `POST /_emulator/client` `{"revoked": true|false}`: while revoked, the token
//!   endpoint answers 400 `{"error":"invalid_client"}` and the API 403 to tokens it
//!   issued before (api.md §2, §6); restored, both serve as before (earlier tokens
//!   included). Returns `{"revoked": ...}`;
//! - `GET /_emulator/tenant`: every interaction served now (ground truth, no 7-day
//!   window, every `contentLength`), streamed as one JSON array built a few
//!   interactions at a time; `?start=..&end=..` (ISO 8601, both optional) keeps those
//!   starting in `[start, end)`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;
use time::OffsetDateTime;

use super::auth::json_utf8;
use super::faults::FaultPatch;
use super::search::parse_time;
use super::tenant::ScanFrom;
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

/// `POST /_emulator/client` body and answer.
#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientState {
    revoked: bool,
}

/// `POST /_emulator/client`.
pub(crate) async fn set_client(
    State(app): State<Arc<App>>,
    body: Result<Json<ClientState>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    app.revoked
        .store(req.revoked, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(revoked = req.revoked, "client access changed");
    json_utf8(
        StatusCode::OK,
        &ClientState {
            revoked: app.client_revoked(),
        },
    )
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

#[derive(Deserialize)]
pub(crate) struct DeleteRequest {
    guid: String,
    #[serde(rename = "contentKey")]
    content_key: Option<String>,
}

/// `POST /_emulator/delete`.
pub(crate) async fn delete(
    State(app): State<Arc<App>>,
    body: Result<Json<DeleteRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if let Some(key) = &req.content_key {
        return match app.tenant.delete_item(&req.guid, key) {
            Some(true) => {
                tracing::info!(guid = %req.guid, %key, "content item deleted");
                json_utf8(
                    StatusCode::OK,
                    &serde_json::json!({ "guid": req.guid, "contentKey": key }),
                )
            }
            Some(false) => error(
                StatusCode::CONFLICT,
                format!(
                    "'{key}' is the last item of '{}': delete the interaction",
                    req.guid
                ),
            ),
            None => error(
                StatusCode::NOT_FOUND,
                format!("No item '{key}' in interaction '{}'", req.guid),
            ),
        };
    }
    if app.tenant.delete(&req.guid) {
        tracing::info!(guid = %req.guid, "interaction deleted");
        json_utf8(StatusCode::OK, &serde_json::json!({ "guid": req.guid }))
    } else {
        error(
            StatusCode::NOT_FOUND,
            format!("No interaction '{}'", req.guid),
        )
    }
}

/// Bytes of JSON sent per chunk of `GET /_emulator/tenant`.
const TENANT_CHUNK: usize = 64 * 1024;

#[derive(Deserialize)]
pub(crate) struct TenantQuery {
    start: Option<String>,
    end: Option<String>,
}

/// `GET /_emulator/tenant`.
pub(crate) async fn tenant(
    State(app): State<Arc<App>>,
    query: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(StatusCode::BAD_REQUEST, "The query string is malformed");
    };
    let time = |v: &Option<String>, default: OffsetDateTime| match v {
        None => Ok(default),
        Some(s) => parse_time(s).ok_or_else(|| format!("'{s}' is not an ISO 8601 date and time")),
    };
    let far = time::Duration::days(365 * 1000);
    let (start, end) = match (
        time(&q.start, OffsetDateTime::UNIX_EPOCH - far / 10),
        time(&q.end, OffsetDateTime::now_utc() + far),
    ) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(msg), _) | (_, Err(msg)) => return error(StatusCode::BAD_REQUEST, msg),
    };
    // Built on a blocking thread, a chunk at a time; a client that goes away stops it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let tenant = app.tenant.clone();
    tokio::task::spawn_blocking(move || {
        let mut buf = b"[".to_vec();
        let mut first = true;
        for r in tenant
            .scan(ScanFrom::Start(start), end)
            .filter(|r| r.start < end)
        {
            if !std::mem::take(&mut first) {
                buf.push(b',');
            }
            if serde_json::to_writer(&mut buf, &r.to_model()).is_err() {
                return;
            }
            if buf.len() >= TENANT_CHUNK
                && tx.blocking_send(std::mem::take(&mut buf).into()).is_err()
            {
                return;
            }
        }
        buf.push(b']');
        let _ = tx.blocking_send(buf.into());
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let mut resp = Body::from_stream(body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}
