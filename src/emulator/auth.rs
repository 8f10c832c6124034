//! OAuth2 client-credentials tokens (api.md §2): `POST /Auth/connect/token` and bearer
//! checks. Tokens are random opaque strings remembered with their expiry and scopes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;

use super::App;
use crate::model::TokenResponse;

/// Scopes the token endpoint knows (How to authenticate, api.md §2).
pub(crate) const KNOWN_SCOPES: &[&str] = &[
    "interaction-content:read",
    "interaction-content:delete",
    "stats",
    "users:read",
    "users:write",
    "agents-availability:read",
    "interactions:write",
    "globalpci",
];

/// Why a token request failed: the documented 400 bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenError {
    InvalidRequest(&'static str),
    InvalidClient,
    UnsupportedGrantType,
    MissingScope,
    InvalidScope(String),
}

#[derive(Serialize)]
struct OAuthError {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<String>,
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let (error, description) = match self {
            Self::InvalidRequest(d) => ("invalid_request", Some(d.to_string())),
            Self::InvalidClient => ("invalid_client", None),
            Self::UnsupportedGrantType => {
                ("unsupported_grant_type", Some("Invalid grant_type".into()))
            }
            Self::MissingScope => ("invalid_scope", Some("You must specify a scope".into())),
            Self::InvalidScope(s) => (
                "invalid_scope",
                Some(format!("\"{s}\" is an invalid scope")),
            ),
        };
        json_utf8(
            StatusCode::BAD_REQUEST,
            &OAuthError {
                error,
                error_description: description,
            },
        )
    }
}

/// A JSON response with `Content-Type: application/json; charset=utf-8`.
pub(crate) fn json_utf8<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BearerError {
    /// Missing, malformed, unknown or expired: 401.
    Invalid,
    /// Valid but without the scope: 403.
    MissingScope,
}

struct Grant {
    expires: Instant,
    scopes: Vec<String>,
}

/// Issued tokens.
#[derive(Default)]
pub(crate) struct TokenStore {
    grants: Mutex<HashMap<String, Grant>>,
}

impl TokenStore {
    /// Issues a token for `scopes`, valid for `ttl`.
    pub fn issue(&self, scopes: Vec<String>, ttl: Duration) -> String {
        let mut raw = [0u8; 32];
        rand::rng().fill(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut grants = self.grants.lock();
        grants.retain(|_, g| g.expires > now);
        grants.insert(
            token.clone(),
            Grant {
                expires: now + ttl,
                scopes,
            },
        );
        token
    }

    /// Checks an `Authorization` header for a live bearer token with `scope`.
    pub fn check(
        &self,
        authorization: Option<&HeaderValue>,
        scope: &str,
    ) -> Result<(), BearerError> {
        let value = authorization
            .and_then(|v| v.to_str().ok())
            .ok_or(BearerError::Invalid)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(BearerError::Invalid)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(BearerError::Invalid);
        }
        let grants = self.grants.lock();
        let grant = grants.get(token.trim()).ok_or(BearerError::Invalid)?;
        if grant.expires <= Instant::now() {
            return Err(BearerError::Invalid);
        }
        if grant.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(BearerError::MissingScope)
        }
    }

    /// Forgets every token.
    pub fn revoke_all(&self) {
        self.grants.lock().clear();
    }
}

/// Client credentials from HTTP Basic (preferred) or the form body.
fn credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, b64) = v.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (id, secret) = s.split_once(':')?;
        return Some((id.to_string(), secret.to_string()));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
    ))
}

/// Validates a token request; returns the granted scopes.
pub(crate) fn validate(
    client_id: &str,
    client_secret: &str,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Vec<String>, TokenError> {
    // IdentityServer order: client, then grant type, then scope.
    match credentials(headers, form) {
        Some((id, secret)) if id == client_id && secret == client_secret => {}
        _ => return Err(TokenError::InvalidClient),
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(TokenError::UnsupportedGrantType);
    }
    let scopes: Vec<String> = form
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    if scopes.is_empty() {
        return Err(TokenError::MissingScope);
    }
    if let Some(bad) = scopes.iter().find(|s| !KNOWN_SCOPES.contains(&s.as_str())) {
        return Err(TokenError::InvalidScope(bad.clone()));
    }
    Ok(scopes)
}

/// `POST /Auth/connect/token`.
pub(crate) async fn token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return TokenError::InvalidRequest(
            "The token endpoint only accepts application/x-www-form-urlencoded content",
        )
        .into_response();
    };
    if app.client_revoked() {
        tracing::debug!("token request refused: the client is revoked");
        return TokenError::InvalidClient.into_response();
    }
    match validate(
        &app.args.client_id,
        &app.args.client_secret,
        &headers,
        &form,
    ) {
        Ok(scopes) => {
            let ttl = app.faults.get().token_ttl.max(1);
            let access_token = app.tokens.issue(scopes, Duration::from_secs(ttl));
            let mut resp = json_utf8(
                StatusCode::OK,
                &TokenResponse {
                    access_token,
                    expires_in: ttl,
                    token_type: "Bearer".into(),
                },
            );
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e) => {
            tracing::debug!(error = ?e, "token request refused");
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validation_order_and_messages() {
        let h = HeaderMap::new();
        let ok = form(&[
            ("grant_type", "client_credentials"),
            ("scope", "interaction-content:read stats"),
            ("client_id", "a"),
            ("client_secret", "b"),
        ]);
        assert_eq!(validate("a", "b", &h, &ok).map(|s| s.len()), Ok(2));
        assert_eq!(validate("a", "x", &h, &ok), Err(TokenError::InvalidClient));
        let mut f = ok.clone();
        f.insert("grant_type".into(), "password".into());
        assert_eq!(
            validate("a", "b", &h, &f),
            Err(TokenError::UnsupportedGrantType)
        );
        let mut f = ok.clone();
        f.remove("scope");
        assert_eq!(validate("a", "b", &h, &f), Err(TokenError::MissingScope));
        let mut f = ok.clone();
        f.insert("scope".into(), "interaction-content:read nope".into());
        assert_eq!(
            validate("a", "b", &h, &f),
            Err(TokenError::InvalidScope("nope".into()))
        );
        let mut basic = HeaderMap::new();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        let f = form(&[("grant_type", "client_credentials"), ("scope", "stats")]);
        assert!(validate("a", "b", &basic, &f).is_ok());
    }

    #[test]
    fn bearer_checks() {
        let store = TokenStore::default();
        let t = store.issue(vec!["stats".into()], Duration::from_secs(60));
        let hv = HeaderValue::from_str(&format!("Bearer {t}")).expect("hv");
        assert_eq!(store.check(Some(&hv), "stats"), Ok(()));
        assert_eq!(
            store.check(Some(&hv), "interaction-content:read"),
            Err(BearerError::MissingScope)
        );
        assert_eq!(store.check(None, "stats"), Err(BearerError::Invalid));
        let expired = store.issue(vec!["stats".into()], Duration::ZERO);
        let hv2 = HeaderValue::from_str(&format!("bearer {expired}")).expect("hv");
        assert_eq!(store.check(Some(&hv2), "stats"), Err(BearerError::Invalid));
        store.revoke_all();
        assert_eq!(store.check(Some(&hv), "stats"), Err(BearerError::Invalid));
    }
}
