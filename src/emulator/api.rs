//! Handlers of the `/interaction-content` routes (api.md §3–§5). The guard has
//! already checked rate limit, token, scope and version when they run.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use super::auth::json_utf8;
use super::content;
use super::error::ApiError;
use super::guard::ApiVersion;
use super::search;
use super::server::ConnCtx;
use super::App;
use crate::model::is_guid;

/// The documented GUID checks: length first, then shape.
fn check_guid(guid: &str) -> Result<(), ApiError> {
    if guid.chars().count() != 36 {
        return Err(ApiError::BadRequest(
            "GUID must be 36 characters in length".into(),
        ));
    }
    if !is_guid(guid) {
        return Err(ApiError::BadRequest(format!(
            "GUID '{guid}' is not a valid UUID string"
        )));
    }
    Ok(())
}

/// `GET /interaction-content/interactions`.
pub(crate) async fn search(
    State(app): State<Arc<App>>,
    version: Option<Extension<ApiVersion>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let version = version.map_or(ApiVersion::V3, |v| v.0);
    let Ok(Query(params)) = query else {
        return ApiError::BadRequest("The query string is malformed".into()).into_response();
    };
    let result = search::parse(&params)
        .and_then(|q| search::run(&app.tenant, &q, version, app.args.end_inclusive));
    match result {
        Ok(body) => json_utf8(StatusCode::OK, &body),
        Err(e) => e.into_response(),
    }
}

/// `GET /interaction-content/interactions/{guid}`.
pub(crate) async fn interaction(State(app): State<Arc<App>>, Path(guid): Path<String>) -> Response {
    if let Err(e) = check_guid(&guid) {
        return e.into_response();
    }
    match app.tenant.interaction(&guid) {
        Some(i) => json_utf8(StatusCode::OK, &i),
        None => ApiError::NotFound(format!("Interaction '{guid}' was not found")).into_response(),
    }
}

/// `GET /interaction-content/interactions/{guid}/content/{contentKey}` (and `HEAD`).
pub(crate) async fn content(
    State(app): State<Arc<App>>,
    Path((guid, key)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    conn: Option<Extension<Arc<ConnCtx>>>,
) -> Response {
    if let Err(e) = check_guid(&guid) {
        return e.into_response();
    }
    let Some(rec) = app.tenant.record(&guid) else {
        return ApiError::NotFound(format!("Interaction '{guid}' was not found")).into_response();
    };
    let Some(view) = app.tenant.view(&rec.guid, &key) else {
        return ApiError::NotFound(format!(
            "Content '{key}' was not found for interaction '{guid}'"
        ))
        .into_response();
    };
    app.stats.count_type(&view.kind);
    if let Some(signer) = &app.storage {
        let url = signer.url(&view.guid, &view.key);
        let mut resp = StatusCode::FOUND.into_response();
        if let Ok(v) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return resp;
    }
    let validators = content::Validators::api(&view);
    content::serve(&app, view, validators, &method, &headers, conn.map(|c| c.0))
}
