//! The doctor's content step (one ranged GET, a redirect followed by hand) and the
//! findings over every answer (rate-limit headers, latencies).
//!
//! Invariants:
//! - the content GET asks `Range: bytes=0-1023` of the smallest listed item bigger
//!   than 1 KiB (a 206 then proves ranges; a 200 proves their absence), else of the
//!   smallest item; at most [`CAP`] bytes of body are read, whatever comes;
//! - a redirect is followed once, by hand, with `Range` and `Accept` but never
//!   `Authorization` (the storage host is someone else); its URL is shown with its
//!   query redacted;
//! - the size check compares the listing's `contentLength` with the total the answer
//!   states (`Content-Range`'s, or a 200's `Content-Length`), the validators check
//!   describes the host that served the bytes, as vccfs pins that host's validators.

use std::collections::BTreeMap;

use reqwest::header::{ACCEPT, RANGE};
use reqwest::StatusCode;

use super::probe::{host_of, redact_url, Answer, NoAnswer};
use super::report::Exchange;
use super::{Doctor, Finding, Listed};
use crate::model::{ContentItem, Interaction, ACCEPT_V3};

/// Most body bytes read from the content answer.
const CAP: usize = 64 << 10;

/// The range asked for.
const ASKED: &str = "bytes=0-1023";

/// The interaction and content key to read: the smallest item bigger than 1 KiB, else
/// the smallest, else one without a `contentLength`.
pub(super) fn choose(listed: &Listed) -> Option<(&Interaction, String)> {
    let rank = |c: &ContentItem| match c.content_length {
        Some(n) if n > 1024 => (0, n),
        Some(n) => (1, n),
        None => (2, 0),
    };
    listed
        .iter()
        .flat_map(|i| i.content.iter().map(move |c| (i, c)))
        .min_by_key(|(_, c)| rank(c))
        .map(|(i, c)| (i, c.content_key.clone()))
}

/// `bytes a-b/total` → (a, b, total or `None` for `*`).
fn content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

impl Doctor<'_> {
    /// Step 4: one ranged content GET (and its redirect).
    pub(super) async fn content(&mut self, i: &Interaction, key: &str) {
        let Some(item) = i.item(key).cloned() else {
            return;
        };
        let name = format!("{}/{key}", i.guid);
        let url = self.api(&[&i.guid, "content", key]);
        let req = self.api_get(url).header(RANGE, ASKED);
        let a = match self.p.send("content", req, CAP).await {
            Ok(a) => a,
            Err(e) => return self.no_answer("content", "content GET", &e),
        };
        let (answer, storage) = if a.status.is_redirection() {
            match self.follow(&a).await {
                Some(s) => (s, true),
                None => return,
            }
        } else {
            self.record(Finding::ok(
                "redirect",
                format!(
                    "content of {name} is served by the API host itself (HTTP {})",
                    a.status.as_u16()
                ),
                "vccfs reads it there with the bearer token",
            ));
            (a, false)
        };
        let host = if storage { "storage host" } else { "API" };
        let status = answer.status;
        if status != StatusCode::OK && status != StatusCode::PARTIAL_CONTENT {
            if storage {
                self.record(Finding::fail(
                    "content",
                    format!(
                        "the storage host answered HTTP {}: {}",
                        status.as_u16(),
                        super::checks::body_message(&answer)
                    ),
                    "vccfs goes back to the API for a new link and retries, then fails the read",
                    format!(
                        "the storage host refused the signed URL the API redirected to (HTTP {})",
                        status.as_u16()
                    ),
                ));
            } else {
                self.api_refused("content", "content GET", &answer);
            }
            return;
        }
        let total = self.ranges(&answer, host);
        self.accept_ranges(&answer, host);
        self.validators(&answer, host);
        if storage {
            self.storage_validators(&answer, &item);
        }
        self.size(&item, total, &name);
    }

    fn no_answer(&mut self, check: &'static str, what: &str, e: &NoAnswer) {
        if matches!(e, NoAnswer::Transport { .. }) {
            self.unreachable(check, what, e);
        }
    }

    /// Follow a redirect by hand, without the token; `None` when that failed (recorded).
    async fn follow(&mut self, a: &Answer) -> Option<Answer> {
        let status = a.status.as_u16();
        let Some(next) = a.header("location").and_then(|l| a.url.join(l).ok()) else {
            self.record(Finding::fail(
                "redirect",
                format!("content answered HTTP {status} without a usable Location"),
                "vccfs cannot follow it",
                format!("content GETs answer HTTP {status} without a usable Location"),
            ));
            return None;
        };
        if !matches!(next.scheme(), "http" | "https") {
            self.record(Finding::fail(
                "redirect",
                format!("content answered HTTP {status} to a {} URL", next.scheme()),
                "vccfs follows only http(s) redirects",
                "content GETs redirect to a non-HTTP URL",
            ));
            return None;
        }
        let api_host = host_of(&a.url);
        let to = host_of(&next);
        let other = if to == api_host {
            "the API host itself"
        } else {
            "another host"
        };
        self.record(Finding::ok(
            "redirect",
            format!(
                "content answered HTTP {status} in {} ms to {other}: {}",
                a.latency.as_millis(),
                redact_url(&next)
            ),
            "vccfs follows it without the bearer token and reuses the link for up to 4 minutes",
        ));
        let req = self
            .p
            .get(next)
            .header(RANGE, ASKED)
            .header(ACCEPT, ACCEPT_V3);
        let s = match self.p.send("storage", req, CAP).await {
            Ok(s) => s,
            Err(e) => {
                self.no_answer("storage", "storage host", &e);
                return None;
            }
        };
        if s.status.is_redirection() {
            self.record(Finding::fail(
                "redirect",
                format!(
                    "the storage host redirected again (HTTP {})",
                    s.status.as_u16()
                ),
                "vccfs follows one redirect only",
                "content is redirected more than once; vccfs follows one hop",
            ));
            return None;
        }
        Some(s)
    }

    /// 206 or 200 for `bytes=0-1023`; returns the content's total size if stated.
    fn ranges(&mut self, a: &Answer, host: &str) -> Option<u64> {
        let ms = a.latency.as_millis();
        let got = a.body.len() as u64;
        if a.status == StatusCode::OK {
            let total = a
                .header("content-length")
                .and_then(|v| v.trim().parse().ok())
                .or((!a.truncated).then_some(got));
            let f = match total {
                Some(t) if t <= 1024 => Finding::warn(
                    "ranges",
                    format!("{host}: HTTP 200 with the whole file ({t} bytes, no more than the range asked) in {ms} ms: Range support not shown"),
                    "if ranges are not supported, vccfs reads whole files (slower for large recordings)",
                ),
                _ => Finding::warn(
                    "ranges",
                    format!("no Range support: {host} answered {ASKED} with HTTP 200 and the whole file ({}) in {ms} ms", total.map_or("size not stated".into(), |t| format!("{t} bytes"))),
                    "vccfs reads whole files (slower for large recordings)",
                ),
            };
            self.record(f);
            return total;
        }
        let Some(cr) = a.header("content-range").map(str::to_string) else {
            self.record(Finding::fail(
                "ranges",
                format!("{host}: HTTP 206 without Content-Range in {ms} ms"),
                "vccfs refuses such answers, retries, then fails the read",
                "content ranges are answered with 206 but no Content-Range",
            ));
            return None;
        };
        let parsed = content_range(&cr);
        let total = parsed.and_then(|(_, _, t)| t);
        let exact = match parsed {
            Some((0, b, Some(t))) if t > 0 => b == 1023.min(t - 1) && got == b + 1 && !a.truncated,
            Some((0, b, None)) => b == 1023 && got == 1024 && !a.truncated,
            _ => false,
        };
        self.record(if exact {
            Finding::ok(
                "ranges",
                format!("{host}: HTTP 206 with Content-Range {cr} and {got} bytes in {ms} ms"),
                "vccfs reads only the blocks you read; a seek costs one ranged request",
            )
        } else {
            Finding::fail(
                "ranges",
                format!("{host}: HTTP 206 with Content-Range {cr} and {got}{} body bytes for {ASKED}", if a.truncated { "+" } else { "" }),
                "vccfs refuses answers that are not exactly the bytes asked, retries, then fails the read",
                format!("content ranges are answered wrongly (Content-Range {cr} for {ASKED})"),
            )
        });
        total
    }

    fn accept_ranges(&mut self, a: &Answer, host: &str) {
        let partial = a.status == StatusCode::PARTIAL_CONTENT;
        self.record(match a.header("accept-ranges").map(str::trim) {
            Some(v) if v.eq_ignore_ascii_case("bytes") => Finding::ok(
                "accept-ranges",
                format!("{host}: Accept-Ranges: bytes"),
                "as expected: vccfs asks for ranges of one block and more",
            ),
            Some(v) if partial => Finding::ok(
                "accept-ranges",
                format!("{host}: Accept-Ranges: {v}, yet ranges work"),
                "vccfs goes by the 206 answers, not by this header",
            ),
            None if partial => Finding::ok(
                "accept-ranges",
                format!("{host}: no Accept-Ranges header, yet ranges work"),
                "vccfs goes by the 206 answers, not by this header",
            ),
            v => Finding::warn(
                "accept-ranges",
                format!("{host}: Accept-Ranges: {}", v.unwrap_or("not sent")),
                "no sign of Range support: vccfs reads whole files (slower for large recordings)",
            ),
        });
    }

    fn validators(&mut self, a: &Answer, host: &str) {
        let etag = a.header("etag").map(str::trim);
        let lm = a.header("last-modified").map(str::trim);
        let strong = etag.filter(|e| !e.starts_with("W/"));
        let shown = |e: Option<&str>, l: Option<&str>| {
            format!(
                "ETag {}, Last-Modified {}",
                e.unwrap_or("not sent"),
                l.unwrap_or("not sent")
            )
        };
        self.record(match (strong, lm) {
            (Some(_), _) => Finding::ok(
                "validators",
                format!("{host}: {} (strong ETag)", shown(etag, lm)),
                "vccfs pins the ETag per file version: a file that changes mid-read fails that read instead of mixing two versions",
            ),
            (None, Some(_)) => Finding::ok(
                "validators",
                format!("{host}: {} (no strong ETag)", shown(etag, lm)),
                "vccfs pins Last-Modified per file version (a change within one second goes unseen)",
            ),
            (None, None) => Finding::warn(
                "validators",
                format!("{host}: {}", shown(etag, lm)),
                "vccfs cannot tell two versions of a file apart mid-read; it relies on sizes and the listing's lastModified",
            ),
        });
    }

    /// Does the storage host describe the stored object (its own validators) or
    /// repeat the API's (`Last-Modified` = the listed `lastModified`)?
    fn storage_validators(&mut self, a: &Answer, item: &ContentItem) {
        let lm = a.header("last-modified").map(str::trim);
        let etag = a.header("etag").map(str::trim);
        let lm_time = lm.and_then(|l| httpdate::parse_http_date(l).ok());
        let listed = item.last_modified.map(|t| t.unix_timestamp());
        let stored = lm_time
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        let listed_text = item
            .last_modified
            .map(crate::util::format_rfc3339)
            .unwrap_or_else(|| "not listed".into());
        self.record(match (stored, listed, etag) {
            (Some(s), Some(l), _) if s != l => Finding::ok(
                "storage-validators",
                format!("storage host sends its own validators: Last-Modified {} vs listed lastModified {listed_text}, ETag {}", lm.unwrap_or_default(), etag.unwrap_or("not sent")),
                "vccfs pins them per version (and never takes the listing's lastModified for the storage host's)",
            ),
            (Some(_), Some(_), _) => Finding::ok(
                "storage-validators",
                format!("storage host repeats the API's validators: Last-Modified = listed lastModified {listed_text}"),
                "vccfs pins them per version",
            ),
            (None, _, None) => Finding::warn(
                "storage-validators",
                "storage host sends no ETag and no Last-Modified",
                "vccfs cannot tell two versions apart mid-read",
            ),
            _ => Finding::ok(
                "storage-validators",
                format!("storage host sends ETag {}, Last-Modified {}", etag.unwrap_or("not sent"), lm.unwrap_or("not sent")),
                "vccfs pins them per version",
            ),
        });
    }

    fn size(&mut self, item: &ContentItem, total: Option<u64>, name: &str) {
        self.record(match (item.content_length, total) {
            (Some(l), Some(t)) if l == t => Finding::ok(
                "content-length",
                format!("contentLength {l} of {name} = the size served"),
                "sizes come from listings: no request per file to learn them",
            ),
            (Some(l), Some(t)) => Finding::fail(
                "content-length",
                format!("contentLength {l} of {name}, but the size served is {t}"),
                "vccfs takes such a file for changed and fails its reads until a re-list agrees",
                format!("the listed contentLength differs from the size served ({l} vs {t} bytes for {name}): reads of such files fail"),
            ),
            (None, _) => Finding::warn(
                "content-length",
                format!("no contentLength for {name} in the listing"),
                "sizes are probed with one request per file",
            ),
            (Some(l), None) => Finding::warn(
                "content-length",
                format!("contentLength {l} of {name}; the answer states no total size"),
                "vccfs trusts the listing's size",
            ),
        });
    }
}

/// Rate-limit headers seen on any answer, and any 429.
pub(super) fn rate_limits(log: &[Exchange]) -> Vec<Finding> {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    for e in log {
        for (k, v) in &e.rate_limit {
            seen.insert(k.as_str(), format!("{v} (on {})", e.step));
        }
    }
    let limited: Vec<&str> = log
        .iter()
        .filter(|e| e.status == Some(429))
        .map(|e| e.step)
        .collect();
    let mut out = Vec::new();
    out.push(if seen.is_empty() {
        Finding::ok(
            "rate-limit",
            "no rate-limit headers (X-RateLimit-*, RateLimit-*, Retry-After) on any answer",
            "vccfs keeps to --max-rpm (default 150 a minute; the API allows about 160) and backs off exponentially on 429",
        )
    } else {
        let list: Vec<String> = seen.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        Finding::ok(
            "rate-limit",
            format!("rate-limit headers: {}", list.join(", ")),
            "vccfs honours Retry-After and keeps to --max-rpm (default 150 a minute)",
        )
    });
    if !limited.is_empty() {
        out.push(Finding::warn(
            "rate-limited",
            format!("HTTP 429 on: {}", limited.join(", ")),
            "another client may be spending the tenant's budget: vccfs waits as told; lower --max-rpm or share it with --redis",
        ));
    }
    out
}

/// Each request's latency, and whether any is slow.
pub(super) fn latencies(log: &[Exchange]) -> Finding {
    let list: Vec<String> = log
        .iter()
        .map(|e| format!("{} {} ms", e.step, e.latency_ms))
        .collect();
    let max = log.iter().map(|e| e.latency_ms).max().unwrap_or(0);
    let found = if list.is_empty() {
        "no request was answered".to_string()
    } else {
        list.join(", ")
    };
    if max > 5000 {
        Finding::warn(
            "latency",
            found,
            "slow answers: vccfs abandons a stalled answer after a quarter of --io-timeout and retries; raise --io-timeout on slow links",
        )
    } else {
        Finding::ok("latency", found, "vccfs reads ahead to hide it")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(
            content_range("bytes 0-1023/5000"),
            Some((0, 1023, Some(5000)))
        );
        assert_eq!(content_range("bytes 0-9/*"), Some((0, 9, None)));
        assert_eq!(content_range("items 0-9/10"), None);
    }

    #[test]
    fn the_smallest_item_over_one_kib_is_chosen() {
        let listed: Listed = serde_json::from_value(serde_json::json!([
            {"guid": "a", "start": "2026-01-01T00:00:00Z", "content": [
                {"contentKey": "big", "type": "callRecording", "contentLength": 90000},
                {"contentKey": "tiny", "type": "transcript", "contentLength": 100}]},
            {"guid": "b", "start": "2026-01-01T00:00:01Z", "content": [
                {"contentKey": "mid", "type": "transcript", "contentLength": 5000},
                {"contentKey": "unknown", "type": "transcript"}]}
        ]))
        .expect("listing");
        let (i, key) = choose(&listed).expect("chosen");
        assert_eq!((i.guid.as_str(), key.as_str()), ("b", "mid"));
        assert!(choose(&Vec::new()).is_none());
    }
}
