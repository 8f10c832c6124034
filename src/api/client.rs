//! The API client: one `send` path (budget, token, status mapping) under one retry loop.
//!
//! The tenant's [`Access`] is kept here: `send_api` is the one place API answers pass,
//! so it restores access on an authorised answer and revokes it on a 403 (see
//! `access.rs` for the rule); the token source does the same for the token endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};

use super::access::{Access, AccessState};
use super::budget::RequestBudget;
use super::config::ApiConfig;
use super::error::describe_transport;
use super::retry::{parse_retry_after, Failure, RetryState};
use super::stats::{ClientStats, ClientStatsSnapshot, RequestKind};
use super::token::{AccessToken, TokenSource};
use super::ApiError;
use crate::model::{ErrorBody, Interaction, ACCEPT_V3};

/// Handle to the Interaction Content API. Cheap to clone; all clones share one
/// connection pool, token, budget and counters.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: ApiConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) tokens: TokenSource,
    pub(crate) budget: Arc<RequestBudget>,
    pub(crate) stats: Arc<ClientStats>,
    pub(crate) access: Arc<AccessState>,
    /// Signed storage URLs that content requests were redirected to, by (guid, key).
    pub(crate) redirects: Mutex<HashMap<(String, String), (Url, Instant)>>,
}

impl ApiClient {
    /// Build a client. Sends nothing yet.
    pub fn new(cfg: ApiConfig) -> Result<Self, ApiError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .pool_max_idle_per_host(cfg.max_concurrency.max(8))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vccfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ApiError::Config(format!(
                    "cannot build HTTP client: {}",
                    describe_transport(e)
                ))
            })?;
        let stats = Arc::new(ClientStats::default());
        let budget = Arc::new(RequestBudget::new(cfg.max_rpm, cfg.max_concurrency));
        let access = Arc::new(AccessState::default());
        let tokens = TokenSource::new(
            http.clone(),
            cfg.auth_url.clone(),
            cfg.credentials.clone(),
            Arc::clone(&stats),
            Arc::clone(&budget),
            Arc::clone(&access),
        );
        Ok(ApiClient {
            inner: Arc::new(Inner {
                cfg,
                http,
                tokens,
                budget,
                stats,
                access,
                redirects: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.cfg
    }

    /// Take turns with a fleet's shared budget from now on (`--redis`).
    pub(crate) fn join_fleet(&self, fleet: Arc<dyn super::budget::FleetPacer>) {
        self.inner.budget.join_fleet(fleet);
    }

    /// Requests sent in the last minute.
    pub(crate) fn sent_last_minute(&self) -> usize {
        self.inner.budget.sent_last_minute()
    }

    /// The counters themselves (by status, budget waits).
    pub(crate) fn counters(&self) -> &ClientStats {
        &self.inner.stats
    }

    /// Whether the tenant may be read (see `access.rs`).
    pub fn access(&self) -> Access {
        self.inner.access.get()
    }

    /// `access().is_revoked()` in one atomic load: for the read path.
    pub fn is_revoked(&self) -> bool {
        self.inner.access.is_revoked()
    }

    /// Ask the token endpoint now (one request, whatever token is cached): whether the
    /// client is still, or again, allowed. Transport failures leave the state as it is.
    pub async fn probe_access(&self) -> Access {
        self.inner.tokens.forget().await;
        if let Err(e) = self.inner.tokens.get().await {
            tracing::debug!(error = %e, "access probe failed");
        }
        self.access()
    }

    /// Counters of requests sent so far.
    pub fn stats(&self) -> ClientStatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// `GET /interactions/{guid}`.
    pub async fn interaction(&self, guid: &str) -> Result<Interaction, ApiError> {
        let what = format!("GET interactions/{guid}");
        let url = self.url(&["interactions", guid])?;
        self.retrying(&what, |token| {
            let url = url.clone();
            let what = what.clone();
            async move {
                let resp = self
                    .send_api(
                        &what,
                        RequestKind::Interaction,
                        &token,
                        self.inner.http.get(url),
                    )
                    .await?;
                read_json(&what, resp, super::body::MAX_JSON_BODY).await
            }
        })
        .await
    }

    /// `{api_url}/seg/seg/...` with each segment percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url, ApiError> {
        let mut url = Url::parse(&self.inner.cfg.api_url)
            .map_err(|e| ApiError::Config(format!("bad API URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| ApiError::Config("API URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Run `attempt` until it succeeds, fails for good, or the retry deadline passes.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        what: &str,
        mut attempt: F,
    ) -> Result<T, ApiError>
    where
        F: FnMut(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut state = RetryState::new(self.inner.cfg.retry_deadline);
        loop {
            let token = match self.inner.tokens.get().await {
                Ok(t) => t,
                Err(e) if e.is_transient() => {
                    state.pause(e, None).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match attempt(token).await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Reauth { rejected, err }) => {
                    if !state.allow_reauth() {
                        return Err(err);
                    }
                    tracing::debug!(%what, "token rejected; fetching a new one");
                    self.inner.tokens.invalidate(&rejected).await;
                }
                Err(Failure::Retry { err, wait }) => {
                    self.inner.stats.count_retry();
                    state.pause(err, wait).await?;
                }
            }
        }
    }

    /// Send one API request with the budget, the token and the version header, and
    /// map failure statuses. Returns responses with 2xx, 3xx, 412 and 416.
    pub(crate) async fn send_api(
        &self,
        what: &str,
        kind: RequestKind,
        token: &AccessToken,
        req: reqwest::RequestBuilder,
    ) -> Result<Response, Failure> {
        let req = req
            .header(ACCEPT, ACCEPT_V3)
            .header(AUTHORIZATION, token.header_value());
        let resp = self.send_counted(what, kind, req).await?;
        let checked = self.check_status(what, Some(token), resp).await;
        match &checked {
            Ok(_) => self.inner.access.restore(),
            Err(Failure::Fatal(ApiError::Forbidden { detail, .. })) => {
                self.on_forbidden(kind, detail).await;
            }
            Err(_) => {}
        }
        checked
    }

    /// The API refused a token it issued: a search's refusal is the tenant's; one
    /// interaction's is only if a fresh token request is refused too.
    async fn on_forbidden(&self, kind: RequestKind, detail: &str) {
        self.inner.tokens.forget().await;
        if kind == RequestKind::Search {
            self.inner
                .access
                .revoke(&format!("the API refused a search: {detail}"));
        } else if !self.inner.access.is_revoked() {
            // Revokes on its own if the endpoint refuses the client.
            let _ = self.inner.tokens.get().await;
        }
    }

    /// Send under the budget, count and trace it; transport failures are retryable.
    pub(crate) async fn send_counted(
        &self,
        what: &str,
        kind: RequestKind,
        req: reqwest::RequestBuilder,
    ) -> Result<Response, Failure> {
        let asked = Instant::now();
        let _permit = self.inner.budget.acquire().await;
        self.inner.stats.count_budget_wait(asked.elapsed());
        self.inner.stats.count_request(kind);
        let started = Instant::now();
        let result = req
            .header(super::stats::PURPOSE_HEADER, kind.purpose())
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let status = result.as_ref().map_or(0, |r| r.status().as_u16());
        self.inner.stats.count_status(kind, status);
        match result {
            Ok(resp) => {
                tracing::debug!(%what, status = resp.status().as_u16(), latency_ms, "response");
                Ok(resp)
            }
            Err(e) => {
                tracing::debug!(%what, latency_ms, "request failed");
                Err(Failure::retry(transport_error(what, e)))
            }
        }
    }

    /// Map a response status to success or a failure of the right kind.
    pub(crate) async fn check_status(
        &self,
        what: &str,
        token: Option<&AccessToken>,
        resp: Response,
    ) -> Result<Response, Failure> {
        let status = resp.status();
        if status.is_success()
            || status.is_redirection()
            || status == StatusCode::PRECONDITION_FAILED
            || status == StatusCode::RANGE_NOT_SATISFIABLE
        {
            return Ok(resp);
        }
        let what = what.to_string();
        match status.as_u16() {
            401 => {
                let err = ApiError::Unauthorized {
                    what,
                    detail: error_message(resp).await,
                };
                Err(match token {
                    Some(t) => Failure::Reauth {
                        rejected: t.clone(),
                        err,
                    },
                    None => Failure::Fatal(err),
                })
            }
            403 => Err(Failure::Fatal(ApiError::Forbidden {
                what,
                detail: error_message(resp).await,
            })),
            404 | 410 => Err(Failure::Fatal(ApiError::NotFound { what })),
            429 => {
                self.inner.stats.count_429();
                let wait = retry_after(resp.headers()).unwrap_or(Duration::from_secs(1));
                self.inner.budget.on_rate_limited(wait);
                Err(Failure::Retry {
                    err: ApiError::RateLimited {
                        what,
                        waited: Duration::ZERO,
                    },
                    wait: Some(wait),
                })
            }
            500..=599 => {
                let wait = retry_after(resp.headers());
                Err(Failure::Retry {
                    err: ApiError::Transport {
                        what,
                        detail: format!("server error HTTP {status}"),
                    },
                    wait,
                })
            }
            code => Err(Failure::Fatal(ApiError::BadRequest {
                what,
                status: code,
                detail: error_message(resp).await,
            })),
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// Map a reqwest error of one attempt to a retryable error.
pub(crate) fn transport_error(what: &str, e: reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::Timeout {
            what: what.to_string(),
            waited: Duration::ZERO,
            detail: describe_transport(e),
        }
    } else {
        ApiError::Transport {
            what: what.to_string(),
            detail: describe_transport(e),
        }
    }
}

/// The `message` of an API error body, or an excerpt of whatever came (of at most
/// [`super::body::MAX_ERROR_BODY`] bytes read).
async fn error_message(resp: Response) -> String {
    let status = resp.status();
    let body = super::body::read_truncated(resp, super::body::MAX_ERROR_BODY).await;
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => e.message.chars().take(500).collect(),
        Err(_) => {
            let excerpt = String::from_utf8_lossy(&body[..body.len().min(160)])
                .trim()
                .to_string();
            if excerpt.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {excerpt}")
            }
        }
    }
}

/// Read a JSON body of at most `cap` bytes; a broken body is retryable, a body of the
/// wrong shape or over the cap is not (the URL is probably not the API, and the same
/// request would bring the same body).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    what: &str,
    resp: Response,
    cap: usize,
) -> Result<T, Failure> {
    use super::body::{read_capped, BodyError};
    let status = resp.status();
    if status != StatusCode::OK {
        return Err(Failure::Fatal(ApiError::Protocol {
            what: what.to_string(),
            detail: format!("unexpected HTTP {status}"),
        }));
    }
    let body = read_capped(resp, cap).await.map_err(|e| match e {
        BodyError::Transport(e) => Failure::retry(transport_error(what, e)),
        BodyError::TooLarge { cap } => Failure::Fatal(ApiError::Protocol {
            what: what.to_string(),
            detail: BodyError::too_large(cap),
        }),
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        Failure::Fatal(ApiError::Protocol {
            what: what.to_string(),
            detail: format!(
                "response is not the API's JSON (is the URL an Interaction Content API?): {e}"
            ),
        })
    })
}
