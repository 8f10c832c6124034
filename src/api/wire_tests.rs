//! The wire's bounds against a tiny scripted server on loopback: capped bodies (declared
//! and streamed without end), pages over the limit, continuation cycles, redirects to
//! plain http. Each must end in a clear error within seconds, never hang.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::{ApiClient, ApiError};
use crate::version::{ContentVersion, TenantId};

const GUID: &str = "0e3c1b4a-9f59-4c5d-8a3b-6f1e2d3c4b5a";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A search page of 17 MiB with its Content-Length.
    BigPage,
    /// A search page that streams without end (no Content-Length).
    EndlessPage,
    /// A page of 1,001 interactions.
    TooManyItems,
    /// Continuation tokens A, B, A, ...
    Cycle,
    /// A token response of 2 MiB.
    BigToken,
    /// A search refused with an 8 MiB error body.
    BigError,
    /// Content redirected to plain http on a non-loopback host.
    RedirectHttp,
}

struct Server {
    mode: Mode,
    searches: AtomicU64,
}

type Shared = Arc<Server>;

fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    (status, [("content-type", "application/json")], body.into()).into_response()
}

async fn token(State(s): State<Shared>) -> Response {
    if s.mode == Mode::BigToken {
        let pad = "a".repeat(2 << 20);
        return json(
            StatusCode::OK,
            format!(r#"{{"access_token":"{pad}","expires_in":7200}}"#),
        );
    }
    json(
        StatusCode::OK,
        r#"{"access_token":"t","expires_in":7200,"token_type":"Bearer"}"#,
    )
}

fn item(i: usize) -> String {
    let now = crate::util::format_rfc3339(crate::util::now_secs() - time::Duration::MINUTE);
    format!(r#"{{"guid":"00000000-0000-4000-8000-{i:012}","start":"{now}","content":[]}}"#)
}

async fn search(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    s.searches.fetch_add(1, Ordering::Relaxed);
    match s.mode {
        Mode::BigPage => {
            let pad = "a".repeat(17 << 20);
            json(
                StatusCode::OK,
                format!(r#"{{"items":[],"meta":{{"pad":"{pad}"}}}}"#),
            )
        }
        Mode::EndlessPage => {
            let head = futures::stream::once(async {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(br#"{"items":[],"pad":""#))
            });
            let chunk = bytes::Bytes::from(vec![b'a'; 64 << 10]);
            let tail = futures::stream::repeat_with(move || Ok(chunk.clone()));
            use futures::StreamExt;
            json(StatusCode::OK, Body::from_stream(head.chain(tail)))
        }
        Mode::TooManyItems => {
            let items: Vec<String> = (0..1001).map(item).collect();
            json(
                StatusCode::OK,
                format!(r#"{{"items":[{}],"meta":{{}}}}"#, items.join(",")),
            )
        }
        Mode::Cycle => {
            let next = match q.get("continuationToken").map(String::as_str) {
                None => "A",
                Some("A") => "B",
                Some(_) => "A",
            };
            json(
                StatusCode::OK,
                format!(
                    r#"{{"items":[{}],"meta":{{"nextContinuationToken":"{next}"}}}}"#,
                    item(1)
                ),
            )
        }
        Mode::BigError => json(StatusCode::BAD_REQUEST, "x".repeat(8 << 20)),
        _ => json(StatusCode::OK, r#"{"items":[],"meta":{}}"#),
    }
}

async fn content() -> Response {
    (
        StatusCode::FOUND,
        [("location", "http://192.0.2.1/bucket/object?sig=secret")],
    )
        .into_response()
}

async fn server(mode: Mode) -> (ApiClient, Shared) {
    let shared = Arc::new(Server {
        mode,
        searches: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/token", post(token))
        .route("/interaction-content/interactions", get(search))
        .route(
            "/interaction-content/interactions/{guid}/content/{key}",
            get(content),
        )
        .with_state(Arc::clone(&shared));
    (crate::api::test_server::client_of(app).await, shared)
}

/// Every page of the last hour's listing, bounded in time: the error it ends with.
async fn list_err(c: &ApiClient) -> ApiError {
    let now = crate::util::now_secs();
    let started = Instant::now();
    let listed = tokio::time::timeout(
        Duration::from_secs(20),
        c.search_all(now - time::Duration::HOUR, now),
    )
    .await
    .expect("the listing must end, not hang");
    assert!(started.elapsed() < Duration::from_secs(10));
    listed.expect_err("the listing must fail")
}

#[tokio::test]
async fn an_oversized_page_is_refused_unread() {
    let (c, s) = server(Mode::BigPage).await;
    let e = list_err(&c).await;
    assert!(e.to_string().contains("larger than 16.0 MiB"), "{e}");
    assert_eq!(s.searches.load(Ordering::Relaxed), 1, "not retried");
}

#[tokio::test]
async fn an_endless_page_is_cut_at_the_cap() {
    let (c, s) = server(Mode::EndlessPage).await;
    let e = list_err(&c).await;
    assert!(e.to_string().contains("larger than 16.0 MiB"), "{e}");
    assert_eq!(s.searches.load(Ordering::Relaxed), 1, "not retried");
}

#[tokio::test]
async fn a_page_over_the_limit_is_an_error() {
    let (c, _) = server(Mode::TooManyItems).await;
    let e = list_err(&c).await;
    assert!(
        e.to_string()
            .contains("a page held 1001 items, more than the limit of 1000"),
        "{e}"
    );
}

#[tokio::test]
async fn a_continuation_cycle_is_an_error() {
    let (c, s) = server(Mode::Cycle).await;
    let e = list_err(&c).await;
    assert!(e.to_string().contains("(a cycle)"), "{e}");
    // None → A, A → B, B → A: the third page closes the cycle.
    assert_eq!(s.searches.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn an_oversized_token_is_refused() {
    let (c, s) = server(Mode::BigToken).await;
    let e = list_err(&c).await;
    assert!(
        e.to_string()
            .contains("token response body is larger than 1.0 MiB"),
        "{e}"
    );
    assert_eq!(s.searches.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_huge_error_body_becomes_a_short_excerpt() {
    let (c, _) = server(Mode::BigError).await;
    let e = list_err(&c).await;
    let text = e.to_string();
    assert!(text.contains("HTTP 400"), "{text}");
    assert!(text.len() < 400, "{} bytes", text.len());
}

#[tokio::test]
async fn a_redirect_to_plain_http_is_refused_counted_and_not_followed() {
    let (c, _) = server(Mode::RedirectHttp).await;
    let tenant = TenantId::new("http://test/interaction-content", "c");
    let obj = ContentVersion::new(tenant, GUID, "recording", 1000, None);
    let started = Instant::now();
    let e = c.read_range(&obj, 0, 100).await.expect_err("refused");
    // 192.0.2.1 (TEST-NET-1) never answers: following it would take the connect timeout.
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = e.to_string();
    assert!(text.contains("plain http on a non-loopback host"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(c.stats().refused_redirects, 1);
    assert_eq!(c.stats().content_requests, 1, "nothing sent to the target");
}
