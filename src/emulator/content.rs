//! Serving one content item (API content route and storage host): conditional requests
//! (`If-Match`, `If-Unmodified-Since`, `If-None-Match`, `If-Modified-Since`,
//! `If-Range`), RFC 9110 single byte ranges, and the body streamed in chunks computed
//! on the fly, with the body faults (reset, short body, stall), range faults (ignored,
//! shifted) and `--bandwidth` throttling.
//!
//! Range rules: `bytes=a-b`, `bytes=a-` and `bytes=-n` give 206 (`b` clamped to the
//! end); a first byte at or past the end, or `-0`, gives 416 with
//! `Content-Range: bytes */size`; multiple ranges, other units and malformed values are
//! ignored (200 with the full body), as RFC 9110 allows.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use rand::Rng;

use super::auth::json_utf8;
use super::faults::{Cut, Faults, RangeFault};
use super::record::ItemView;
use super::server::ConnCtx;
use super::source::SourceReader;
use super::stats::Stats;
use super::App;
use crate::model::ErrorBody;

/// Largest chunk of body computed at once.
const CHUNK: u64 = 64 * 1024;
/// Pause between the last bytes sent and an injected reset.
const RESET_GRACE: Duration = Duration::from_millis(25);

/// What a `Range` header asks for, resolved against the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// No (usable) range: the whole body.
    Full,
    /// Bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Resolves a `Range` header value against `size`.
pub(crate) fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeSpec::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeSpec::Full;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match num(b) {
            None => RangeSpec::Full,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        },
        // bytes=a-
        (false, true) => match num(a) {
            None => RangeSpec::Full,
            Some(s) if s >= size => RangeSpec::Unsatisfiable,
            Some(s) => RangeSpec::Partial {
                start: s,
                end: size - 1,
            },
        },
        // bytes=a-b
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => {
                if s >= size {
                    RangeSpec::Unsatisfiable
                } else {
                    RangeSpec::Partial {
                        start: s,
                        end: e.min(size - 1),
                    }
                }
            }
            _ => RangeSpec::Full,
        },
        (true, true) => RangeSpec::Full,
    }
}

/// True if the entity-tag list `list` (`*` or `"a", W/"b"`) matches `etag`; weak tags
/// only match with weak comparison.
fn etag_list_matches(list: &str, etag: &str, weak_ok: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',')
        .map(str::trim)
        .any(|t| match t.strip_prefix("W/") {
            Some(weak) => weak_ok && weak == etag,
            None => t == etag,
        })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn http_date(secs: i64) -> Option<SystemTime> {
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Validators of the current version, as one server (API or storage host) sends them;
/// every conditional request and `If-Range` is checked against these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Validators {
    /// Strong entity tag, quoted.
    pub etag: String,
    /// Unix seconds.
    pub last_modified: i64,
}

impl Validators {
    /// The API's: the item's ETag and `lastModified`.
    pub fn api(view: &ItemView) -> Self {
        Self {
            etag: view.etag(),
            last_modified: view.state.last_modified.unix_timestamp(),
        }
    }

    fn apply(&self, h: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        if let Some(t) = http_date(self.last_modified) {
            if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(t)) {
                h.insert(header::LAST_MODIFIED, v);
            }
        }
    }

    /// `If-Range`: the range applies only if the validator names the current version.
    fn if_range_holds(&self, headers: &HeaderMap) -> bool {
        let Some(v) = header_str(headers, &header::IF_RANGE) else {
            return true;
        };
        let v = v.trim();
        if v.starts_with('"') || v.starts_with("W/") {
            v == self.etag
        } else {
            httpdate::parse_http_date(v).is_ok_and(|d| unix_secs(d) == self.last_modified)
        }
    }

    /// The status a precondition forces (412 or 304), if any.
    fn precondition(&self, headers: &HeaderMap) -> Option<StatusCode> {
        if let Some(v) = header_str(headers, &header::IF_MATCH) {
            if !etag_list_matches(v, &self.etag, false) {
                return Some(StatusCode::PRECONDITION_FAILED);
            }
        } else if let Some(v) = header_str(headers, &header::IF_UNMODIFIED_SINCE) {
            if let Ok(d) = httpdate::parse_http_date(v) {
                if self.last_modified > unix_secs(d) {
                    return Some(StatusCode::PRECONDITION_FAILED);
                }
            }
        }
        if let Some(v) = header_str(headers, &header::IF_NONE_MATCH) {
            if etag_list_matches(v, &self.etag, true) {
                return Some(StatusCode::NOT_MODIFIED);
            }
        } else if let Some(v) = header_str(headers, &header::IF_MODIFIED_SINCE) {
            if let Ok(d) = httpdate::parse_http_date(v) {
                if self.last_modified <= unix_secs(d) {
                    return Some(StatusCode::NOT_MODIFIED);
                }
            }
        }
        None
    }
}

fn message(status: StatusCode, msg: &str) -> Response {
    json_utf8(
        status,
        &ErrorBody {
            message: msg.to_string(),
        },
    )
}

/// A range moved by a few bytes: the lie of `wrong_range_rate`. `None` if the content
/// is too small to shift anything.
fn shifted(start: u64, end: u64, size: u64) -> Option<(u64, u64)> {
    if size < 2 {
        return None;
    }
    let span = end - start + 1;
    let delta = rand::rng().random_range(1..=span.clamp(1, 4096));
    let room = size - 1 - start;
    if room > 0 {
        let d = delta.min(room);
        Some((start + d, (end + d).min(size - 1)))
    } else {
        // The range starts at the last byte: shift backwards.
        let d = delta.min(start);
        (d > 0).then(|| (start - d, end - d))
    }
}

/// Serves `view` (already resolved and authorised) for `method` with the request's
/// `headers`, under `validators` (sent, and what the conditionals are checked against).
pub(crate) fn serve(
    app: &Arc<App>,
    view: ItemView,
    validators: Validators,
    method: &Method,
    headers: &HeaderMap,
    conn: Option<Arc<ConnCtx>>,
) -> Response {
    let size = view.len();
    if let Some(status) = validators.precondition(headers) {
        let mut resp = if status == StatusCode::NOT_MODIFIED {
            status.into_response()
        } else {
            message(status, "Precondition failed: the content has changed")
        };
        validators.apply(resp.headers_mut());
        return resp;
    }
    let cfg = app.faults.get();
    let mut spec = match header_str(headers, &header::RANGE) {
        Some(r) if validators.if_range_holds(headers) => parse_range(r, size),
        _ => RangeSpec::Full,
    };
    // Bytes sent beyond the announced range (the `long_body_rate` lie).
    let mut overrun = 0;
    if let (RangeSpec::Partial { start, end }, false) = (spec, method == Method::HEAD) {
        match Faults::range_fault(&cfg) {
            RangeFault::None => {}
            RangeFault::Ignore => {
                Stats::inc(&app.stats.c.ignored_ranges);
                spec = RangeSpec::Full;
            }
            RangeFault::Wrong => {
                if let Some((s, e)) = shifted(start, end, size) {
                    Stats::inc(&app.stats.c.wrong_ranges);
                    spec = RangeSpec::Partial { start: s, end: e };
                }
            }
            RangeFault::Long => {
                overrun = (size - 1 - end).min(rand::rng().random_range(1..=4096));
                if overrun > 0 {
                    Stats::inc(&app.stats.c.long_bodies);
                }
            }
        }
    }
    let (status, start, len) = match spec {
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeSpec::Unsatisfiable => {
            let mut resp = message(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is not satisfiable",
            );
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            validators.apply(h);
            return resp;
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let reader = match view.state.source.open() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(guid = %view.guid, key = %view.key, error = %e, "cannot open content");
                return message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The content cannot be read",
                );
            }
        };
        body_stream(BodyStream {
            reader,
            pos: start,
            end: start + len + overrun,
            cut: Faults::body_cut(&cfg, start, len),
            bandwidth: cfg.bandwidth,
            started: None,
            sent: 0,
            app: app.clone(),
            conn,
            done: false,
        })
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let ct = HeaderValue::from_str(&view.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    if overrun == 0 {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        let cr = format!("bytes {}-{}/{size}", start, start + len - 1);
        if let Ok(v) = HeaderValue::from_str(&cr) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    validators.apply(h);
    resp
}

/// State of one streamed body.
struct BodyStream {
    reader: SourceReader,
    pos: u64,
    /// Exclusive.
    end: u64,
    cut: Option<Cut>,
    bandwidth: u64,
    started: Option<Instant>,
    sent: u64,
    app: Arc<App>,
    conn: Option<Arc<ConnCtx>>,
    done: bool,
}

impl BodyStream {
    fn cut_at(&self) -> Option<u64> {
        self.cut.map(|c| match c {
            Cut::Reset { at } | Cut::Short { at } | Cut::Stall { at, .. } => at,
        })
    }

    /// The next chunk; `None` at the end (or at a short-body cut).
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if self.done || self.pos >= self.end {
            return None;
        }
        let c = &self.app.stats.c;
        match self.cut {
            Some(Cut::Reset { at }) if at == self.pos => {
                self.done = true;
                // Let hyper flush what was sent so far: the client sees the head and
                // part of the body, then the reset.
                tokio::time::sleep(RESET_GRACE).await;
                Stats::inc(&c.resets);
                if let Some(conn) = &self.conn {
                    conn.arm_reset();
                }
                tracing::debug!(at, "injected connection reset");
                return Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "injected connection reset",
                )));
            }
            Some(Cut::Short { at }) if at == self.pos => {
                self.done = true;
                // As for a reset: let hyper flush the head and what was sent before the
                // connection closes, so the client sees a short body, not no response.
                tokio::time::sleep(RESET_GRACE).await;
                Stats::inc(&c.short_bodies);
                tracing::debug!(at, "injected short body");
                return None;
            }
            Some(Cut::Stall { at, ms }) if at == self.pos => {
                self.cut = None;
                Stats::inc(&c.stalls);
                tracing::debug!(at, ms, "injected stall");
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            _ => {}
        }
        let mut n = CHUNK.min(self.end - self.pos);
        if self.bandwidth > 0 {
            n = n.min((self.bandwidth / 10).clamp(1024, CHUNK));
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = started + Duration::from_secs_f64(self.sent as f64 / self.bandwidth as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        if let Some(at) = self.cut_at().filter(|&at| at > self.pos) {
            n = n.min(at - self.pos);
        }
        let n = usize::try_from(n).unwrap_or(CHUNK as usize);
        match self.reader.read(self.pos, n).await {
            Ok(bytes) => {
                self.pos += n as u64;
                self.sent += n as u64;
                Stats::add(&c.bytes_sent, n as u64);
                Some(Ok(bytes))
            }
            Err(e) => {
                self.done = true;
                tracing::warn!(error = %e, "content read failed mid-body");
                Some(Err(e))
            }
        }
    }
}

fn body_stream(state: BodyStream) -> Body {
    Body::from_stream(futures::stream::unfold(state, |mut st| async move {
        let item = st.next_chunk().await?;
        Some((item, st))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        let p = |s, e| Partial { start: s, end: e };
        assert_eq!(parse_range("bytes=0-9", 100), p(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), p(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), p(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), p(0, 99));
        assert_eq!(parse_range("bytes=50-5000", 100), p(50, 99));
        assert_eq!(parse_range(" Bytes = 1 - 2 ", 100), p(1, 2));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "0-1",
            "bytes=+1-2",
        ] {
            assert_eq!(parse_range(ignored, 100), Full, "{ignored}");
        }
    }

    #[test]
    fn etag_lists() {
        assert!(etag_list_matches("*", "\"a\"", false));
        assert!(etag_list_matches("\"b\", \"a\"", "\"a\"", false));
        assert!(!etag_list_matches("W/\"a\"", "\"a\"", false));
        assert!(etag_list_matches("W/\"a\"", "\"a\"", true));
        assert!(!etag_list_matches("\"b\"", "\"a\"", true));
    }

    #[test]
    fn shifted_ranges_stay_inside() {
        for _ in 0..200 {
            let (s, e) = shifted(0, 9, 20).expect("shift");
            assert!(s > 0 && e < 20 && s <= e);
            let (s, e) = shifted(19, 19, 20).expect("shift back");
            assert!(s < 19 && s == e);
        }
        assert_eq!(shifted(0, 0, 1), None);
    }
}
