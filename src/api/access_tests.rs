//! Access state transitions against a tiny scripted server: the token endpoint and the
//! API answer whatever status the test sets.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::Mutex;

use super::Access;
use crate::api::{ApiClient, ApiError};

const GUID: &str = "0e3c1b4a-9f59-4c5d-8a3b-6f1e2d3c4b5a";

/// What the server answers: (status, body) for tokens and for API routes.
#[derive(Clone)]
struct Script {
    token: (u16, &'static str),
    api: (u16, &'static str),
}

type Shared = Arc<Mutex<Script>>;

const TOKEN_OK: (u16, &str) = (
    200,
    r#"{"access_token":"t","expires_in":7200,"token_type":"Bearer"}"#,
);
const SEARCH_OK: (u16, &str) = (200, r#"{"items":[],"meta":{}}"#);

fn answer((status, body): (u16, &'static str)) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "application/json")], body).into_response()
}

async fn token(State(s): State<Shared>) -> Response {
    let t = s.lock().token;
    answer(t)
}

async fn api(State(s): State<Shared>) -> Response {
    let a = s.lock().api;
    answer(a)
}

async fn server(script: Script) -> (ApiClient, Shared) {
    let shared = Arc::new(Mutex::new(script));
    let app = Router::new()
        .route("/token", post(token))
        .route("/interaction-content/interactions", get(api))
        .route("/interaction-content/interactions/{guid}", get(api))
        .with_state(Arc::clone(&shared));
    (crate::api::test_server::client_of(app).await, shared)
}

async fn search(c: &ApiClient) -> Result<(), ApiError> {
    let now = crate::util::now_secs();
    c.search(now - time::Duration::HOUR, now)
        .next_page()
        .await
        .map(|_| ())
}

fn revoked(c: &ApiClient) -> bool {
    let a = c.access();
    assert_eq!(a.is_revoked(), c.is_revoked());
    a.is_revoked()
}

#[tokio::test]
async fn token_invalid_client_revokes_and_a_granted_token_restores() {
    let (c, s) = server(Script {
        token: (400, r#"{"error":"invalid_client"}"#),
        api: SEARCH_OK,
    })
    .await;
    assert_eq!(c.access(), Access::Ok);
    let e = search(&c).await.expect_err("refused");
    assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");
    let Access::Revoked { since, reason } = c.access() else {
        panic!("not revoked");
    };
    assert!(reason.contains("invalid_client"), "{reason}");
    assert!(since > 0);
    // A second refusal keeps `since`.
    assert!(c.probe_access().await.is_revoked());
    assert!(matches!(c.access(), Access::Revoked { since: s2, .. } if s2 == since));
    s.lock().token = TOKEN_OK;
    assert_eq!(c.probe_access().await, Access::Ok);
    search(&c).await.expect("works again");
    assert!(!revoked(&c));
}

#[tokio::test]
async fn token_401_revokes_other_token_errors_do_not() {
    let (c, s) = server(Script {
        token: (401, r#"{"error":"whatever"}"#),
        api: SEARCH_OK,
    })
    .await;
    assert!(c.probe_access().await.is_revoked());
    s.lock().token = TOKEN_OK;
    assert!(!c.probe_access().await.is_revoked());
    for refusal in [
        (503, "{}"),
        (500, "{}"),
        (429, "{}"),
        (400, r#"{"error":"invalid_scope"}"#),
    ] {
        s.lock().token = refusal;
        assert!(!c.probe_access().await.is_revoked(), "{refusal:?}");
    }
}

#[tokio::test]
async fn a_search_403_revokes_and_an_api_answer_restores() {
    let (c, s) = server(Script {
        token: TOKEN_OK,
        api: (403, r#"{"message":"no"}"#),
    })
    .await;
    let e = search(&c).await.expect_err("403");
    assert!(matches!(e, ApiError::Forbidden { .. }), "{e:?}");
    assert!(revoked(&c));
    // Still revoked while the API refuses, whatever the token endpoint says.
    assert!(search(&c).await.is_err());
    s.lock().api = SEARCH_OK;
    search(&c).await.expect("allowed again");
    assert!(!revoked(&c));
}

#[tokio::test]
async fn one_interactions_403_revokes_only_if_the_client_is_refused() {
    let (c, s) = server(Script {
        token: TOKEN_OK,
        api: (403, r#"{"message":"no access to this interaction"}"#),
    })
    .await;
    let e = c.interaction(GUID).await.expect_err("403");
    assert!(matches!(e, ApiError::Forbidden { .. }), "{e:?}");
    assert!(!revoked(&c), "a per-interaction 403 with a working client");
    s.lock().token = (400, r#"{"error":"invalid_client"}"#);
    assert!(c.interaction(GUID).await.is_err());
    assert!(revoked(&c), "the confirming token request was refused");
}

#[tokio::test]
async fn server_errors_and_transport_failures_change_nothing() {
    let (c, s) = server(Script {
        token: TOKEN_OK,
        api: (503, "{}"),
    })
    .await;
    assert!(search(&c).await.is_err());
    assert!(!revoked(&c));
    // Revoked, then the servers fail: still revoked (nothing proves otherwise).
    s.lock().api = (403, "{}");
    assert!(search(&c).await.is_err());
    assert!(revoked(&c));
    *s.lock() = Script {
        token: (503, "{}"),
        api: (500, "{}"),
    };
    assert!(search(&c).await.is_err());
    assert!(revoked(&c));
    let mut cfg = c.config().clone();
    cfg.api_url = "http://127.0.0.1:9/interaction-content".into();
    cfg.auth_url = "http://127.0.0.1:9/token".into();
    let gone = ApiClient::new(cfg).expect("client");
    assert!(search(&gone).await.is_err());
    assert!(!gone.probe_access().await.is_revoked());
}
