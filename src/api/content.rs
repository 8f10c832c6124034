//! Ranged content reads that return exactly the bytes asked for, from one version of
//! the content, or an error. Never shifted, short, or a mix of two versions.
//!
//! A read is one request whose body is received straight into buffers of one block
//! each, every buffer handed on the moment it is full ([`ApiClient::read_stream`]), so
//! a 16 MiB read delivers its first block as soon as that block has come. A retry
//! after a body broke mid-way asks only for what was not handed on yet.
//!
//! A redirect is followed by hand, at most one hop, without the token, and never to a
//! lower transport (`util::wire::redirect_allowed`: not from https to http, not to
//! plain http off loopback): such a redirect fails that read and is counted
//! (`refused_redirects`), and nothing is sent to its target.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE,
};
use reqwest::{Response, StatusCode, Url};

use super::client::{transport_error, ApiClient};
use super::retry::Failure;
use super::stats::RequestKind;
use super::token::AccessToken;
use super::ApiError;
use crate::memory::{BlockBuf, BlockPool};
use crate::version::{ContentVersion, Validator};

/// A signed storage URL is reused at most this long (or until it fails).
const REDIRECT_REUSE: Duration = Duration::from_secs(240);

/// The validator sent in `If-Range`: the one pinned by the first response. Before
/// that there is none to send: the listed `lastModified` is the API's clock, not
/// necessarily the validator of the host that serves the bytes (a storage host's
/// `Last-Modified` is when the object was stored), so it cannot pin anything.
fn if_range(obj: &ContentVersion) -> Option<String> {
    obj.pinned().map(|v| v.header_value().to_string())
}

/// What a size probe learned ([`ApiClient::probe`]).
#[derive(Debug, Clone)]
pub struct Probe {
    /// The content's size, from `Content-Range` (or the full body's length).
    pub size: u64,
    /// Its first bytes, as asked for (fewer if the content is shorter).
    pub head: Bytes,
    /// The validator the bytes came with.
    pub validator: Option<Validator>,
}

/// A ranged answer: the content's whole size (its bytes went to the ask's `emit`).
struct Ranged {
    size: u64,
}

/// One ranged read: bytes `offset..end` of `obj`, received in `chunk`-byte buffers
/// from `pool`; `what` names it in errors and logs.
#[derive(Clone, Copy)]
struct RangeAsk<'a> {
    what: &'a str,
    obj: &'a ContentVersion,
    offset: u64,
    end: u64,
    chunk: u64,
    pool: &'a BlockPool,
    /// The size is unknown (`obj.size` is not used): learn it from the answer.
    probe: bool,
    /// What the request is for (counted, and named to the server).
    kind: RequestKind,
    /// Where each buffer goes once full (the last, once the body is complete).
    emit: &'a (dyn Fn(Bytes) + Sync),
}

/// Where an attempt sends its request.
enum Target {
    Api(Url),
    Storage(Url),
}

impl ApiClient {
    /// Exactly the bytes `offset..offset+len` of `obj` (clamped to its size).
    pub async fn read_range(
        &self,
        obj: &ContentVersion,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, ApiError> {
        let heap = BlockPool::heap_only();
        let mut parts = self.read_chunks(obj, offset, len, u64::MAX, &heap).await?;
        Ok(parts.pop().unwrap_or_default())
    }

    /// Exactly the bytes `offset..offset+len` of `obj` (clamped to its size), in one
    /// request, received straight into buffers of `chunk` bytes from `pool` (the last
    /// may be shorter), so that cache blocks need no copy of their own.
    pub async fn read_chunks(
        &self,
        obj: &ContentVersion,
        offset: u64,
        len: u64,
        chunk: u64,
        pool: &BlockPool,
    ) -> Result<Vec<Bytes>, ApiError> {
        let parts = parking_lot::Mutex::new(Vec::new());
        let emit = |b: Bytes| parts.lock().push(b);
        self.read_stream(obj, offset, len, chunk, pool, RequestKind::Content, &emit)
            .await?;
        Ok(parts.into_inner())
    }

    /// As [`ApiClient::read_chunks`], each buffer handed to `emit` the moment it is
    /// full (in order; the last may be shorter), for a request of purpose `kind`.
    /// When an attempt breaks mid-body, the retry asks only for the bytes not handed
    /// on yet; `Ok` means all were.
    #[allow(clippy::too_many_arguments)]
    pub async fn read_stream(
        &self,
        obj: &ContentVersion,
        offset: u64,
        len: u64,
        chunk: u64,
        pool: &BlockPool,
        kind: RequestKind,
        emit: &(dyn Fn(Bytes) + Sync),
    ) -> Result<(), ApiError> {
        let end = offset.saturating_add(len).min(obj.size);
        if offset >= end {
            return Ok(());
        }
        let chunk = chunk.max(1);
        let what = format!(
            "GET interactions/{}/content/{} bytes={}-{}",
            obj.guid,
            obj.key,
            offset,
            end - 1
        );
        let api_url = self.url(&["interactions", &obj.guid, "content", &obj.key])?;
        let handed = AtomicU64::new(0);
        let counted = |b: Bytes| {
            handed.fetch_add(b.len() as u64, Ordering::Relaxed);
            emit(b);
        };
        self.retrying(&what, |token| {
            let api_url = api_url.clone();
            // Resume after what earlier attempts handed on (whole buffers only).
            let from = offset + handed.load(Ordering::Relaxed);
            let ask = RangeAsk {
                what: &what,
                obj,
                offset: from,
                end,
                chunk,
                pool,
                probe: false,
                kind,
                emit: &counted,
            };
            async move {
                if from >= end {
                    return Ok(Ranged { size: obj.size });
                }
                self.range_attempt(ask, api_url, token).await
            }
        })
        .await?;
        Ok(())
    }

    /// The size of content whose listing has no `contentLength`, from one ranged GET of
    /// its first `len` bytes (which the caller keeps).
    pub async fn probe(&self, guid: &str, key: &str, len: u64) -> Result<Probe, ApiError> {
        let len = len.max(1);
        let what = format!(
            "GET interactions/{guid}/content/{key} bytes=0-{} (size probe)",
            len - 1
        );
        let api_url = self.url(&["interactions", guid, "content", key])?;
        // Unpinned and of unknown size: only names the request.
        let obj = ContentVersion::new(self.config().tenant(), guid, key, u64::MAX, None);
        let heap = BlockPool::heap_only();
        // Each attempt starts over: only the last one's bytes count.
        let head = parking_lot::Mutex::new(Bytes::new());
        let emit = |b: Bytes| *head.lock() = b;
        let ask = RangeAsk {
            what: &what,
            obj: &obj,
            offset: 0,
            end: len,
            chunk: len,
            pool: &heap,
            probe: true,
            kind: RequestKind::Probe,
            emit: &emit,
        };
        let ranged = self
            .retrying(&what, |token| {
                let api_url = api_url.clone();
                async move { self.range_attempt(ask, api_url, token).await }
            })
            .await?;
        Ok(Probe {
            size: ranged.size,
            head: head.into_inner(),
            validator: obj.pinned().cloned(),
        })
    }

    async fn range_attempt(
        &self,
        ask: RangeAsk<'_>,
        api_url: Url,
        token: AccessToken,
    ) -> Result<Ranged, Failure> {
        let RangeAsk { what, obj, .. } = ask;
        let cache_key = (obj.guid.clone(), obj.key.clone());
        let mut target = match self.inner.redirects.lock().get(&cache_key) {
            Some((url, at)) if at.elapsed() < REDIRECT_REUSE => Target::Storage(url.clone()),
            _ => Target::Api(api_url),
        };
        // At most one redirect hop per attempt.
        for _hop in 0..2 {
            let resp = match &target {
                Target::Api(url) => {
                    let req = self.ranged(self.inner.http.get(url.clone()), ask);
                    self.send_api(what, ask.kind, &token, req).await?
                }
                Target::Storage(url) => {
                    // The storage host gets no Authorization header.
                    let req = self.ranged(self.inner.http.get(url.clone()), ask);
                    let sent = self.send_counted(what, ask.kind, req).await;
                    match sent.and_then(|r| storage_ok(what, r)) {
                        Ok(r) => r,
                        Err(f) => {
                            // An expired or broken signed link: go back to the API.
                            self.inner.redirects.lock().remove(&cache_key);
                            return Err(f);
                        }
                    }
                }
            };
            if resp.status().is_redirection() {
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let base = resp.url().clone();
                let next = location.and_then(|l| base.join(&l).ok()).ok_or_else(|| {
                    Failure::Fatal(ApiError::Protocol {
                        what: what.to_string(),
                        detail: format!("HTTP {} without a usable Location", resp.status()),
                    })
                })?;
                // Never followed to a lower transport: an error for this read, counted.
                if let Err(why) = crate::util::wire::redirect_allowed(&base, &next) {
                    self.inner.stats.count_refused_redirect();
                    tracing::warn!(%what, %why, "content redirect refused");
                    return Err(Failure::Fatal(ApiError::Protocol {
                        what: what.to_string(),
                        detail: why,
                    }));
                }
                self.inner
                    .redirects
                    .lock()
                    .insert(cache_key.clone(), (next.clone(), Instant::now()));
                target = Target::Storage(next);
                continue;
            }
            return self.take_range(ask, resp).await;
        }
        Err(Failure::Fatal(ApiError::Protocol {
            what: what.to_string(),
            detail: "redirected more than once".into(),
        }))
    }

    fn ranged(&self, req: reqwest::RequestBuilder, ask: RangeAsk<'_>) -> reqwest::RequestBuilder {
        let RangeAsk {
            obj, offset, end, ..
        } = ask;
        let mut req = req
            .header(RANGE, format!("bytes={}-{}", offset, end - 1))
            .header(reqwest::header::ACCEPT, crate::model::ACCEPT_V3);
        if let Some(v) = if_range(obj) {
            req = req.header(IF_RANGE, v);
        }
        req
    }

    /// Validate a 200/206 answer and extract exactly `offset..end` (clamped to the
    /// size learned, when probing).
    async fn take_range(&self, ask: RangeAsk<'_>, resp: Response) -> Result<Ranged, Failure> {
        let RangeAsk {
            what,
            obj,
            offset,
            mut end,
            chunk,
            pool,
            probe,
            emit,
            ..
        } = ask;
        let listed = (!probe).then_some(obj.size);
        let changed = |detail: String| {
            Failure::Fatal(ApiError::Changed {
                what: what.to_string(),
                detail,
            })
        };
        let protocol = |detail: String| {
            Failure::retry(ApiError::Protocol {
                what: what.to_string(),
                detail,
            })
        };
        let status = resp.status();
        match status {
            StatusCode::PRECONDITION_FAILED => return Err(changed("If-Match failed".into())),
            StatusCode::RANGE_NOT_SATISFIABLE if probe => {
                // Only an empty content refuses bytes=0-…: `bytes */0`.
                let cr = header_str(resp.headers(), CONTENT_RANGE).unwrap_or_default();
                let size = cr
                    .trim()
                    .strip_prefix("bytes */")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .ok_or_else(|| protocol(format!("416 with Content-Range {cr:?}")))?;
                return Ok(Ranged { size });
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                return Err(changed(format!(
                    "range refused (416, {}) though the listed size is {}",
                    header_str(resp.headers(), CONTENT_RANGE).unwrap_or("no Content-Range"),
                    obj.size
                )))
            }
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => {}
            other => {
                return Err(protocol(format!(
                    "unexpected HTTP {other} for a range request"
                )))
            }
        }
        self.check_version(obj, resp.headers()).map_err(changed)?;
        let size;
        let skip = if status == StatusCode::PARTIAL_CONTENT {
            let cr = header_str(resp.headers(), CONTENT_RANGE)
                .ok_or_else(|| protocol("206 without Content-Range".into()))?;
            let (a, b, total) = parse_content_range(cr)
                .ok_or_else(|| protocol(format!("malformed Content-Range {cr:?}")))?;
            size = match (listed, total) {
                (Some(l), Some(t)) if t != l => {
                    return Err(changed(format!("size is now {t}, was {l}")))
                }
                (Some(l), _) => l,
                (None, Some(t)) => t,
                (None, None) => return Err(protocol(format!("no size in Content-Range {cr:?}"))),
            };
            end = end.min(size);
            if a != offset || b.checked_add(1) != Some(end) {
                return Err(protocol(format!(
                    "asked for bytes {}-{}, got Content-Range {cr:?}",
                    offset,
                    end - 1
                )));
            }
            0
        } else {
            // The server ignored Range (or If-Range did not match and the version check
            // above passed): the full body; keep only our slice.
            size = match (listed, header_u64(resp.headers(), CONTENT_LENGTH)) {
                (Some(l), Some(len)) if len != l => {
                    return Err(changed(format!(
                        "full body is {len} bytes, listed size {l}"
                    )))
                }
                (Some(l), _) => l,
                (None, Some(len)) => len,
                (None, None) => return Err(protocol("a full body of unknown length".into())),
            };
            end = end.min(size);
            offset
        };
        let want = end.saturating_sub(offset);
        read_slice(
            what,
            resp,
            skip,
            want,
            ChunkedBuf::new(want, chunk, pool, emit),
        )
        .await?;
        self.inner.stats.count_bytes(want);
        tracing::debug!(%what, status = status.as_u16(), bytes = want, "range received");
        Ok(Ranged { size })
    }

    /// Compare the response's validator — a strong ETag, else `Last-Modified`, of
    /// whichever host served it — with the version's pin; pin on first sight. A
    /// validator that differs from the listing's `lastModified` is not a change; one
    /// that differs from the pin is.
    fn check_version(&self, obj: &ContentVersion, headers: &HeaderMap) -> Result<(), String> {
        let seen = header_str(headers, ETAG)
            .filter(|e| !e.starts_with("W/"))
            .map(|e| Validator::ETag(e.trim().to_string()))
            .or_else(|| {
                header_str(headers, LAST_MODIFIED)
                    .map(|d| Validator::LastModified(d.trim().to_string()))
            });
        match seen {
            Some(v) if !obj.pin(&v) => {
                let pinned = obj
                    .pinned()
                    .map(Validator::header_value)
                    .unwrap_or_default();
                Err(format!(
                    "validator is now {}, was {pinned}",
                    v.header_value()
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Storage hosts answer with plain statuses; anything but 200/206 means the signed link
/// is no good any more: retry through the API.
fn storage_ok(what: &str, resp: Response) -> Result<Response, Failure> {
    let status = resp.status();
    if status.is_success()
        || status == StatusCode::RANGE_NOT_SATISFIABLE
        || status == StatusCode::PRECONDITION_FAILED
    {
        Ok(resp)
    } else {
        Err(Failure::Retry {
            err: ApiError::Transport {
                what: what.to_string(),
                detail: format!("storage host answered HTTP {status}"),
            },
            wait: Some(Duration::ZERO),
        })
    }
}

/// Read the body, drop the first `skip` bytes, put the next `want` into `parts`; a body
/// that ends early or runs long is a (retryable) protocol failure.
async fn read_slice(
    what: &str,
    mut resp: Response,
    skip: u64,
    want: u64,
    mut parts: ChunkedBuf<'_>,
) -> Result<(), Failure> {
    let is_partial = resp.status() == StatusCode::PARTIAL_CONTENT;
    let mut to_skip = skip;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => return Err(Failure::retry(transport_error(what, e))),
        };
        let mut c = &chunk[..];
        if to_skip > 0 {
            let n = usize::try_from(to_skip).map_or(c.len(), |s| s.min(c.len()));
            c = &c[n..];
            to_skip -= n as u64;
        }
        let room = (want - parts.filled) as usize;
        if c.len() > room {
            if is_partial {
                return Err(Failure::retry(ApiError::Protocol {
                    what: what.to_string(),
                    detail: format!("body longer than the {want} bytes announced"),
                }));
            }
            parts.extend(&c[..room]);
        } else {
            parts.extend(c);
        }
        if !is_partial && parts.filled == want {
            // Got our slice of a full body: stop downloading (the connection is dropped).
            break;
        }
    }
    if parts.filled < want {
        return Err(Failure::retry(ApiError::Protocol {
            what: what.to_string(),
            detail: format!("body ended after {} of {want} bytes", parts.filled),
        }));
    }
    parts.finish();
    Ok(())
}

/// `want` bytes received into consecutive buffers of `chunk` bytes (the last may be
/// shorter) from `pool`, each handed to `emit` once full (the last by `finish`). A
/// body that breaks mid-way keeps what was handed on, and drops the partial buffer.
struct ChunkedBuf<'a> {
    /// The buffers still to fill, the first being filled.
    bufs: std::collections::VecDeque<BlockBuf>,
    filled: u64,
    emit: &'a (dyn Fn(Bytes) + Sync),
}

impl<'a> ChunkedBuf<'a> {
    fn new(want: u64, chunk: u64, pool: &BlockPool, emit: &'a (dyn Fn(Bytes) + Sync)) -> Self {
        let chunk = chunk.max(1);
        let mut bufs = pool.buffers((want / chunk) as usize, chunk as usize);
        if want % chunk > 0 {
            bufs.push(pool.buffer((want % chunk) as usize));
        }
        ChunkedBuf {
            bufs: bufs.into(),
            filled: 0,
            emit,
        }
    }

    /// Append; the caller never appends past `want`.
    fn extend(&mut self, mut data: &[u8]) {
        while let Some(buf) = self.bufs.front_mut() {
            let n = buf.extend_from_slice(data);
            self.filled += n as u64;
            data = &data[n..];
            if buf.len() == buf.capacity() {
                if let Some(full) = self.bufs.pop_front() {
                    (self.emit)(full.freeze());
                }
            }
            if data.is_empty() {
                break;
            }
        }
    }

    /// The body is complete: hand on a last buffer not yet full (none, normally).
    fn finish(mut self) {
        while let Some(b) = self.bufs.pop_front() {
            if !b.is_empty() {
                (self.emit)(b.freeze());
            }
        }
    }
}

fn header_str(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<u64> {
    header_str(h, name).and_then(|v| v.trim().parse().ok())
}

/// `bytes a-b/total` (total may be `*`) → (a, b, total).
pub(crate) fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (a <= b && total.is_none_or(|t| b < t)).then_some((a, b, total))
}

#[cfg(test)]
#[path = "content_tests.rs"]
mod tests;
