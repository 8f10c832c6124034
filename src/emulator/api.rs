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
use super::record::{mix, Fnv};
use super::search;
use super::server::ConnCtx;
use super::App;
use crate::model::{is_guid, Interaction};

/// Whether `--omit-content-length rate` leaves `contentLength` out of the listing of
/// `guid`/`key` (as the tenant spells them): a hash of `(seed, guid, key)` mapped to
/// [0, 1) is below `rate`, so the same items lack it in every response.
pub(crate) fn omits_content_length(seed: u64, rate: f64, guid: &str, key: &str) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let mut h = Fnv::new();
    h.write(guid.to_ascii_lowercase().as_bytes());
    h.write(b"/");
    h.write(key.as_bytes());
    // 53 random bits: an f64 in [0, 1) without rounding up to 1.
    let unit = (mix(seed, h.finish()) >> 11) as f64 / (1u64 << 53) as f64;
    unit < rate
}

/// An interaction as listed: `contentLength` dropped where `--omit-content-length`
/// says so.
fn listed(app: &App, i: &mut Interaction) {
    let (seed, rate) = (app.args.seed, app.args.omit_content_length);
    for c in &mut i.content {
        if omits_content_length(seed, rate, &i.guid, &c.content_key) {
            c.content_length = None;
        }
    }
}

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
        Ok(mut body) => {
            for i in body.interactions_mut() {
                listed(&app, i);
            }
            json_utf8(StatusCode::OK, &body)
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /interaction-content/interactions/{guid}`.
pub(crate) async fn interaction(State(app): State<Arc<App>>, Path(guid): Path<String>) -> Response {
    if let Err(e) = check_guid(&guid) {
        return e.into_response();
    }
    match app.tenant.interaction(&guid) {
        Some(mut i) => {
            listed(&app, &mut i);
            json_utf8(StatusCode::OK, &i)
        }
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
    let Some(view) = rec.view(&key) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_lengths_follow_rate_and_seed() {
        let keys: Vec<String> = (0..2000).map(|n| format!("key{n}")).collect();
        let g = "2480FC2C-bbd7-427c-9439-02f76583aef5";
        let count = |seed, rate| {
            keys.iter()
                .filter(|k| omits_content_length(seed, rate, g, k))
                .count()
        };
        assert_eq!(count(42, 0.0), 0);
        assert_eq!(count(42, 1.0), keys.len());
        let n = count(42, 0.3);
        assert!((500..=700).contains(&n), "{n} of 2000 at 0.3");
        // Per (seed, guid, key): the guid's case does not matter, the seed does.
        assert!(keys.iter().all(|k| omits_content_length(42, 0.3, g, k)
            == omits_content_length(42, 0.3, &g.to_ascii_lowercase(), k)));
        assert!(keys
            .iter()
            .any(|k| omits_content_length(42, 0.3, g, k) != omits_content_length(43, 0.3, g, k)));
    }
}
