//! OAuth2 client-credentials tokens: cached, refreshed at 90% of their life, refreshed
//! once more after a 401, and fetched by one caller at a time (single-flight).
//!
//! Every answer of the token endpoint that says whether the client is allowed updates
//! the tenant's [`super::access`] state: a granted token restores it, `400
//! invalid_client` or `401` revokes it; anything else leaves it as it is.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::access::AccessState;
use super::budget::RequestBudget;
use super::client::transport_error;
use super::config::Credentials;
use super::stats::ClientStats;
use super::ApiError;
use crate::model::{TokenResponse, SCOPE_READ};

/// A bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// The `Authorization` header value.
    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Hands out a valid token, fetching a new one when needed.
#[derive(Debug)]
pub struct TokenSource {
    http: reqwest::Client,
    auth_url: String,
    credentials: Credentials,
    stats: Arc<ClientStats>,
    budget: Arc<RequestBudget>,
    access: Arc<AccessState>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    pub(crate) fn new(
        http: reqwest::Client,
        auth_url: String,
        credentials: Credentials,
        stats: Arc<ClientStats>,
        budget: Arc<RequestBudget>,
        access: Arc<AccessState>,
    ) -> Self {
        TokenSource {
            http,
            auth_url,
            credentials,
            stats,
            budget,
            access,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// A token that is not due for refresh. Concurrent callers wait for one fetch.
    pub async fn get(&self) -> Result<AccessToken, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, ttl) = self.fetch().await?;
        // Refresh at 90% of the lifetime, as the official samples do.
        let refresh_at = Instant::now() + ttl.mul_f64(0.9);
        *cached = Some(Cached {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// Forget `rejected` (the API answered 401 to it) so the next `get` fetches anew.
    /// A token another caller already replaced is left alone.
    pub async fn invalidate(&self, rejected: &AccessToken) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == rejected) {
            *cached = None;
        }
    }

    /// Forget the cached token, whatever it is: the next `get` asks the endpoint.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self) -> Result<(AccessToken, Duration), ApiError> {
        let fetched = self.fetch_once().await;
        match &fetched {
            Ok(_) => self.access.restore(),
            Err(ApiError::Unauthorized { detail, .. }) => self.access.revoke(detail),
            Err(_) => {}
        }
        fetched
    }

    async fn fetch_once(&self) -> Result<(AccessToken, Duration), ApiError> {
        let what = "POST token".to_string();
        // Tokens spend from the budget like every other request (the fleet's, too).
        let _permit = self.budget.acquire().await;
        self.stats.count_request(super::stats::RequestKind::Token);
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", SCOPE_READ),
            ("client_id", self.credentials.client_id.as_str()),
            ("client_secret", self.credentials.client_secret.as_str()),
        ];
        let resp = self
            .http
            .post(&self.auth_url)
            .header(
                super::stats::PURPOSE_HEADER,
                super::stats::RequestKind::Token.purpose(),
            )
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(&what, e))?;
        let status = resp.status();
        if status.is_success() {
            use super::body::{read_capped, BodyError, MAX_JSON_BODY};
            let body = read_capped(resp, MAX_JSON_BODY)
                .await
                .map_err(|e| match e {
                    BodyError::Transport(e) => transport_error(&what, e),
                    BodyError::TooLarge { cap } => ApiError::Protocol {
                        what: what.clone(),
                        detail: format!("token {}", BodyError::too_large(cap)),
                    },
                })?;
            let parsed: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| ApiError::Protocol {
                    what: what.clone(),
                    detail: format!("token response is not the documented JSON: {e}"),
                })?;
            if parsed.access_token.is_empty() {
                return Err(ApiError::Protocol {
                    what,
                    detail: "empty access_token".into(),
                });
            }
            // Never trust a silly lifetime: at least 2 s, at most a day.
            let ttl = Duration::from_secs(parsed.expires_in.clamp(2, 86_400));
            tracing::debug!(ttl_secs = ttl.as_secs(), "fetched access token");
            return Ok((AccessToken(Arc::from(parsed.access_token)), ttl));
        }
        let body = super::body::read_truncated(resp, super::body::MAX_ERROR_BODY).await;
        let detail = oauth_error_detail(&body);
        match status.as_u16() {
            400 | 401 if detail.contains("invalid_client") || status.as_u16() == 401 => {
                Err(ApiError::Unauthorized {
                    what,
                    detail: format!(
                        "the token endpoint rejected client id {:?}: wrong client id or secret ({detail})",
                        self.credentials.client_id
                    ),
                })
            }
            400 if detail.contains("invalid_scope") => Err(ApiError::Forbidden {
                what,
                detail: format!("scope {SCOPE_READ} refused: {detail}"),
            }),
            404 | 405 => Err(ApiError::Protocol {
                what,
                detail: format!("HTTP {status}: this URL is not a token endpoint (check --auth-url / --region)"),
            }),
            429 | 500..=599 => Err(ApiError::Transport {
                what,
                detail: format!("token endpoint answered HTTP {status}"),
            }),
            _ => Err(ApiError::BadRequest {
                what,
                status: status.as_u16(),
                detail,
            }),
        }
    }
}

/// `error`/`error_description` of an OAuth2 error body, or a short excerpt of it.
fn oauth_error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(OAuthError {
            error,
            error_description: Some(d),
        }) => format!("{error}: {d}"),
        Ok(OAuthError { error, .. }) => error,
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(120)]).to_string();
            if text.trim().is_empty() {
                "empty body".into()
            } else {
                text
            }
        }
    }
}
