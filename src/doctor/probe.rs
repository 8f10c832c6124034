//! The doctor's own HTTP: plain reqwest (the client hides the headers we want to see),
//! built like the client's (rustls with the ring provider, no automatic redirects, the
//! same timeouts and user agent), each request timed and logged as an [`Exchange`].
//!
//! Invariants:
//! - at most [`MAX_REQUESTS`] requests are ever sent: the next one is refused locally;
//! - a logged URL keeps its scheme, host and path; of its query only the values of
//!   `start`, `end` and `limit` are kept (a signed storage URL's signature, a
//!   continuation token, anything else shows as `<redacted>`);
//! - only the headers in [`SHOWN`] are kept, never `Authorization` (which is sent only
//!   to the API and token hosts, never to a redirect target: the caller decides);
//! - a body is read up to the caller's cap and the rest abandoned, so a server that
//!   ignores `Range` costs one cap of download, not the whole recording.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode, Url};

use super::report::Exchange;

/// The promise of `vccfs doctor`: this many requests at most against a tenant.
pub const MAX_REQUESTS: usize = 10;

/// Longest one request may take, headers and body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Headers worth showing.
const SHOWN: &[&str] = &[
    "accept-ranges",
    "content-length",
    "content-range",
    "content-type",
    "etag",
    "last-modified",
    "location",
    "www-authenticate",
];

/// Query parameters whose values are shown (the search window; nothing secret).
const SHOWN_QUERY: &[&str] = &["start", "end", "limit"];

/// One answer, body read up to a cap.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// More body was sent than the cap allowed (the rest was not read).
    pub truncated: bool,
    pub latency: Duration,
    /// The URL answered (for resolving a relative `Location`).
    pub url: Url,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why no answer came.
#[derive(Debug, Clone)]
pub enum NoAnswer {
    /// The host could not be reached, or the exchange broke (`host`, what happened).
    Transport { host: String, detail: String },
    /// The request budget is spent.
    Budget,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoAnswer::Transport { host, detail } => write!(f, "cannot reach {host}: {detail}"),
            NoAnswer::Budget => write!(f, "the doctor's {MAX_REQUESTS}-request budget is spent"),
        }
    }
}

/// Sends, times and logs.
pub struct Prober {
    http: reqwest::Client,
    pub log: Vec<Exchange>,
}

impl Prober {
    /// A client set up like [`crate::api::ApiClient`]'s.
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Result<Self, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vccfs/", env!("CARGO_PKG_VERSION"), " (doctor)"))
            .build()
            .map_err(|e| format!("cannot build HTTP client: {}", describe(&e)))?;
        Ok(Prober {
            http,
            log: Vec::new(),
        })
    }

    /// A request to start building.
    pub fn get(&self, url: Url) -> RequestBuilder {
        self.http.get(url)
    }

    pub fn post(&self, url: Url) -> RequestBuilder {
        self.http.post(url)
    }

    /// Requests left.
    pub fn left(&self) -> usize {
        MAX_REQUESTS.saturating_sub(self.log.len())
    }

    /// Send `req` for `step`, read at most `cap` body bytes, log it.
    pub async fn send(
        &mut self,
        step: &'static str,
        req: RequestBuilder,
        cap: usize,
    ) -> Result<Answer, NoAnswer> {
        if self.left() == 0 {
            return Err(NoAnswer::Budget);
        }
        let req = req.build().map_err(|e| NoAnswer::Transport {
            host: String::new(),
            detail: describe(&e),
        })?;
        let url = req.url().clone();
        let host = host_of(&url);
        let mut entry = Exchange {
            step,
            method: req.method().to_string(),
            url: redact_url(&url),
            status: None,
            latency_ms: 0,
            error: None,
            headers: BTreeMap::new(),
            rate_limit: BTreeMap::new(),
        };
        let started = Instant::now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let mut resp = self.http.execute(req).await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let mut body = BytesMut::new();
            let mut truncated = false;
            while let Some(chunk) = resp.chunk().await? {
                let room = cap.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    truncated = true;
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, headers, body.freeze(), truncated))
        })
        .await;
        let latency = started.elapsed();
        entry.latency_ms = latency.as_millis() as u64;
        let outcome = match result {
            Err(_) => Err(NoAnswer::Transport {
                host,
                detail: format!("no complete answer within {} s", REQUEST_TIMEOUT.as_secs()),
            }),
            Ok(Err(e)) => Err(NoAnswer::Transport {
                host,
                detail: describe(&e),
            }),
            Ok(Ok((status, headers, body, truncated))) => {
                entry.status = Some(status.as_u16());
                for (name, value) in &headers {
                    let n = name.as_str();
                    let v = value.to_str().unwrap_or("<not text>");
                    if is_rate_limit(n) {
                        entry.rate_limit.insert(n.to_string(), v.to_string());
                    }
                    if SHOWN.contains(&n) {
                        let v = if n == "location" {
                            url.join(v)
                                .map(|u| redact_url(&u))
                                .unwrap_or_else(|_| "<unparsable>".into())
                        } else {
                            v.to_string()
                        };
                        entry.headers.insert(n.to_string(), v);
                    }
                }
                Ok(Answer {
                    status,
                    headers,
                    body,
                    truncated,
                    latency,
                    url,
                })
            }
        };
        if let Err(e) = &outcome {
            entry.error = Some(e.to_string());
        }
        self.log.push(entry);
        outcome
    }
}

/// `X-RateLimit-*`, `RateLimit-*` (and `RateLimit`, `RateLimit-Policy`), `Retry-After`.
pub fn is_rate_limit(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("x-ratelimit") || n.starts_with("ratelimit") || n == "retry-after"
}

/// `host[:port]` of a URL, for messages.
pub fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.scheme().to_string(),
    }
}

/// The URL with its query values redacted, but those of `start`, `end` and `limit`;
/// user info and fragment dropped.
pub fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if SHOWN_QUERY.contains(&k.as_ref()) {
                    v.into_owned()
                } else {
                    "<redacted>".to_string()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.set_query(None);
        let mut text = shown.to_string();
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push('?');
        text.push_str(&query.join("&"));
        return text;
    }
    shown.to_string()
}

/// A reqwest error without its URL (a signed URL is a secret), with its causes.
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        "request failed".to_string()
    };
    crate::api::append_causes(&mut s, e);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_but_the_window() {
        let u = Url::parse(
            "https://u:p@store.example/obj/a?X-Amz-Signature=abc&expires=9&start=2026-01-01T00:00:00Z#f",
        )
        .expect("url");
        let r = redact_url(&u);
        assert!(
            !r.contains("abc") && !r.contains("u:p") && !r.contains('9'),
            "{r}"
        );
        assert!(r.contains("X-Amz-Signature=<redacted>"), "{r}");
        assert!(r.contains("start=2026-01-01T00:00:00Z"), "{r}");
        let plain = Url::parse("http://127.0.0.1:8/interaction-content/x").expect("url");
        assert_eq!(
            redact_url(&plain),
            "http://127.0.0.1:8/interaction-content/x"
        );
    }

    #[test]
    fn rate_limit_headers() {
        for h in [
            "X-RateLimit-Remaining",
            "ratelimit-reset",
            "RateLimit",
            "retry-after",
        ] {
            assert!(is_rate_limit(h), "{h}");
        }
        assert!(!is_rate_limit("content-range"));
    }
}
