//! The doctor's token and search steps: the token grant, the last day's search and its
//! paging, the 7-day cap, whether `end` is inclusive, and the lookup by guid.
//!
//! Invariants:
//! - the token is asked for exactly as the client asks (form body, scope
//!   `interaction-content:read`); a 400 `invalid_client` or a 401 is reported as wrong
//!   credentials naming the client id, never with the secret;
//! - every API request carries `Accept: …v3+json` and the bearer token; nothing is
//!   retried; an answer that is not the documented JSON is a failure of that step;
//! - times sent are whole seconds in UTC, except the `end` probe, which repeats a
//!   listed `start` exactly (that is the point of it).

use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::Url;
use time::OffsetDateTime;

use super::probe::{Answer, NoAnswer};
use super::{Doctor, Finding, Listed, Stop};
use crate::model::{ErrorBody, Interaction, SearchPage, ACCEPT_V3, SCOPE_READ};
use crate::util::format_rfc3339;

/// The header vccfs names a request's purpose in (the real API ignores it; the
/// emulator counts by it).
const PURPOSE: (&str, &str) = ("x-vccfs-purpose", "doctor");

/// Page size of the doctor's searches: small, so that paging is exercised on any
/// tenant with more than 10 interactions a day.
const PAGE: u32 = 10;

/// Longest body kept from a JSON answer.
const JSON_CAP: usize = 4 << 20;

/// A configured URL (already validated by `ApiConfig::new`).
pub(super) fn parse_url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|_| Url::parse("http://invalid.invalid/").expect("static URL"))
}

/// The `message` of an API error body, or a one-line excerpt of it.
pub(super) fn body_message(a: &Answer) -> String {
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(&a.body) {
        return one_line(&e.message);
    }
    let text = String::from_utf8_lossy(&a.body[..a.body.len().min(160)]).to_string();
    if text.trim().is_empty() {
        "empty body".into()
    } else {
        one_line(&text)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn secs(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

impl Doctor<'_> {
    /// `base/interactions[/segments...]` of the API.
    pub(super) fn api(&self, segments: &[&str]) -> Url {
        let mut url = parse_url(&self.cfg.api_url);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("interactions").extend(segments);
        }
        url
    }

    /// An authorised API GET.
    pub(super) fn api_get(&self, url: Url) -> reqwest::RequestBuilder {
        self.p
            .get(url)
            .header(ACCEPT, ACCEPT_V3)
            .header(AUTHORIZATION, format!("Bearer {}", self.token.as_str()))
            .header(PURPOSE.0, PURPOSE.1)
    }

    /// The failure an API answer other than the expected one means for `what`.
    pub(super) fn api_refused(&mut self, check: &'static str, what: &str, a: &Answer) {
        let status = a.status.as_u16();
        let msg = body_message(a);
        let id = &self.cfg.credentials.client_id;
        let (vccfs, reason) = match status {
            401 => (
                "vccfs cannot read anything with this token".to_string(),
                format!("the API refused the token granted to client id {id:?} (HTTP 401): check that --api-url and --auth-url are the same region"),
            ),
            403 => (
                "vccfs cannot list or read".to_string(),
                format!("the API forbids client id {id:?} ({what}: HTTP 403): give it the scope {SCOPE_READ} and content permissions in the VCC Admin Portal"),
            ),
            404 if check == "search" => (
                "vccfs cannot list".to_string(),
                format!("{} does not look like an Interaction Content API (searching it answered 404); check --api-url or --region", self.cfg.api_url),
            ),
            429 => (
                "vccfs backs off on 429 and keeps to --max-rpm".to_string(),
                format!("rate limited ({what}: HTTP 429, Retry-After {}): run vccfs doctor again later", a.header("retry-after").unwrap_or("not sent")),
            ),
            500..=599 => (
                "vccfs retries 5xx answers until --io-timeout".to_string(),
                format!("the API answered HTTP {status} to {what}: try again later, or ask Vonage support if it persists"),
            ),
            _ => (
                "vccfs cannot use this answer".to_string(),
                format!("{what}: HTTP {status}: {msg}"),
            ),
        };
        self.record(Finding::fail(
            check,
            format!(
                "{what}: HTTP {status} in {} ms: {msg}",
                a.latency.as_millis()
            ),
            vccfs,
            reason,
        ));
    }

    /// Step 1: a token.
    pub(super) async fn token(&mut self) -> Result<(), Stop> {
        let url = parse_url(&self.cfg.auth_url);
        let c = &self.cfg.credentials;
        let form = [
            ("grant_type", "client_credentials"),
            ("scope", SCOPE_READ),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
        ];
        let req = self.p.post(url).form(&form).header(PURPOSE.0, PURPOSE.1);
        let a = match self.p.send("token", req, 64 << 10).await {
            Ok(a) => a,
            Err(e) => {
                self.unreachable("token", "token endpoint", &e);
                return Err(Stop);
            }
        };
        let ms = a.latency.as_millis();
        let id = c.client_id.clone();
        let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
        let oauth = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let status = a.status.as_u16();
        if !a.status.is_success() {
            let error = oauth("error").to_string();
            let detail = match oauth("error_description") {
                "" => error.clone(),
                d => format!("{error}: {}", one_line(d)),
            };
            let (found, reason) = match status {
                400 | 401 if status == 401 || error == "invalid_client" => (
                    format!("HTTP {status} {detail} in {ms} ms"),
                    format!("the token endpoint refused client id {id:?}: wrong client id or secret (HTTP {status} {error})"),
                ),
                400 if error == "invalid_scope" => (
                    format!("HTTP 400 {detail} in {ms} ms"),
                    format!("the token endpoint refused scope {SCOPE_READ} for client id {id:?}: grant it in the VCC Admin Portal (API Admin)"),
                ),
                404 | 405 => (
                    format!("HTTP {status} in {ms} ms"),
                    format!("{} is not a token endpoint (HTTP {status}); check --auth-url or --region", self.cfg.auth_url),
                ),
                _ => (
                    format!("HTTP {status} {detail} in {ms} ms"),
                    format!("the token endpoint answered HTTP {status} ({detail})"),
                ),
            };
            self.record(Finding::fail(
                "token",
                found,
                "vccfs cannot work without a token",
                reason,
            ));
            return Err(Stop);
        }
        let token = oauth("access_token");
        if token.is_empty() {
            self.record(Finding::fail(
                "token",
                format!("HTTP {status} in {ms} ms, but no access_token in the answer"),
                "vccfs cannot work without a token",
                "the token endpoint's answer has no access_token (is --auth-url a token endpoint?)",
            ));
            return Err(Stop);
        }
        self.token.push_str(token);
        let kind = oauth("token_type").to_string();
        let expires = body.get("expires_in").and_then(|v| v.as_u64());
        let scope = oauth("scope").to_string();
        let found = format!(
            "HTTP {status} in {ms} ms: token_type {}, expires_in {}, scope {}",
            if kind.is_empty() { "not sent" } else { &kind },
            expires.map_or("not sent".into(), |e| format!("{e} s")),
            if scope.is_empty() {
                "not echoed"
            } else {
                &scope
            },
        );
        let f = if !kind.eq_ignore_ascii_case("bearer") {
            Finding::warn(
                "token",
                found,
                "vccfs sends it as a Bearer token all the same",
            )
        } else if !scope.is_empty() && !scope.split(' ').any(|s| s == SCOPE_READ) {
            Finding::warn(
                "token",
                found,
                format!("the granted scope lacks {SCOPE_READ}: expect 403 answers below"),
            )
        } else {
            match expires {
                Some(e) if e >= 60 => Finding::ok("token", found, "vccfs reuses the token and fetches a new one shortly before it expires"),
                _ => Finding::warn("token", found, "a short or missing lifetime: vccfs fetches a new token often (one more request each time)"),
            }
        };
        self.record(f);
        Ok(())
    }

    /// One search request; `Ok(None)` when it was refused or unreachable (recorded).
    async fn search_page(
        &mut self,
        check: &'static str,
        what: &str,
        start: OffsetDateTime,
        end: OffsetDateTime,
        limit: u32,
        continuation: Option<&str>,
    ) -> Result<Answer, Stop> {
        let mut url = self.api(&[]);
        url.query_pairs_mut()
            .append_pair("start", &format_rfc3339(start))
            .append_pair("end", &format_rfc3339(end))
            .append_pair("limit", &limit.to_string());
        if let Some(c) = continuation {
            url.query_pairs_mut().append_pair("continuationToken", c);
        }
        let req = self.api_get(url);
        match self.p.send(check, req, JSON_CAP).await {
            Ok(a) => Ok(a),
            Err(e) => {
                if matches!(e, NoAnswer::Transport { .. }) {
                    self.unreachable(check, what, &e);
                }
                Err(Stop)
            }
        }
    }

    fn parse_page(
        &mut self,
        check: &'static str,
        what: &str,
        a: &Answer,
    ) -> Result<SearchPage, Stop> {
        if !a.status.is_success() {
            self.api_refused(check, what, a);
            return Err(Stop);
        }
        serde_json::from_slice::<SearchPage>(&a.body).map_err(|e| {
            self.record(Finding::fail(
                check,
                format!("{what}: HTTP {} but not the documented JSON: {e}", a.status.as_u16()),
                "vccfs cannot list this tenant",
                format!("{what} answered something other than {{\"items\": [...], \"meta\": {{...}}}}: {e}"),
            ));
            Stop
        })
    }

    /// Step 2: the last day (a second page when there is one; the last 7 days when
    /// the day is empty). Returns what was listed.
    pub(super) async fn search(&mut self) -> Result<Listed, Stop> {
        let now = secs(OffsetDateTime::now_utc());
        let day = now - time::Duration::days(1);
        let a = self
            .search_page("search", "search of the last day", day, now, PAGE, None)
            .await?;
        let page = self.parse_page("search", "search of the last day", &a)?;
        let ms = a.latency.as_millis();
        let more = page.meta.next_continuation_token.clone();
        self.record(Finding::ok(
            "search",
            format!(
                "last day: {} interactions on the first page (limit {PAGE}), {} in {ms} ms",
                page.items.len(),
                if more.is_some() {
                    "more pages"
                } else {
                    "no more pages"
                }
            ),
            "vccfs lists each day with searches of up to 1000 a page, in windows of at most 7 days",
        ));
        let mut listed = page.items;
        match more {
            Some(token) => self.paging(day, now, &token, &mut listed).await,
            None => self.record(Finding::warn(
                "paging",
                format!("not checked: the last day has {} interactions, fewer than one page of {PAGE}", listed.len()),
                "vccfs follows meta.nextContinuationToken; if it misbehaves, listings of busy days will be incomplete",
            )),
        }
        if listed.is_empty() {
            let week = now - time::Duration::days(7);
            let what = "search of the last 7 days";
            let a = self
                .search_page("search", what, week, now, PAGE, None)
                .await?;
            let page = self.parse_page("search", what, &a)?;
            self.record(Finding::ok(
                "search-7d",
                format!(
                    "last 7 days: {} interactions on the first page (limit {PAGE}) in {} ms",
                    page.items.len(),
                    a.latency.as_millis()
                ),
                "the 7-day window is accepted: vccfs lists a week with one request a page",
            ));
            listed = page.items;
        }
        Ok(listed)
    }

    /// The second page of the day.
    async fn paging(
        &mut self,
        day: OffsetDateTime,
        now: OffsetDateTime,
        token: &str,
        listed: &mut Listed,
    ) {
        let what = "second page of the last day";
        let Ok(a) = self
            .search_page("paging", what, day, now, PAGE, Some(token))
            .await
        else {
            return;
        };
        if !a.status.is_success() {
            let (status, msg) = (a.status.as_u16(), body_message(&a));
            self.record(Finding::fail(
                "paging",
                format!("{what}: HTTP {status}: {msg}"),
                "vccfs would list only the first page of each busy day",
                format!("the continuation token of the first page was refused (HTTP {status}): listings would be incomplete"),
            ));
            return;
        }
        let Ok(page) = self.parse_page("paging", what, &a) else {
            return;
        };
        let repeated = page
            .items
            .iter()
            .filter(|i| listed.iter().any(|l| l.guid == i.guid))
            .count();
        let found = format!(
            "meta.nextContinuationToken works: page 2 has {} interactions, {repeated} repeated from page 1, {} ({} ms)",
            page.items.len(),
            if page.meta.next_continuation_token.is_some() { "more pages" } else { "last page" },
            a.latency.as_millis()
        );
        self.record(if page.items.is_empty() {
            Finding::warn(
                "paging",
                found,
                "an empty page with a token: vccfs stops at a null token or an empty page",
            )
        } else if repeated > 0 {
            Finding::warn(
                "paging",
                found,
                "pages overlap: vccfs drops the repeats by guid",
            )
        } else {
            Finding::ok(
                "paging",
                found,
                "vccfs pages through busy days with the continuation token",
            )
        });
        let fresh: Vec<Interaction> = page
            .items
            .into_iter()
            .filter(|i| !listed_has(listed, &i.guid))
            .collect();
        listed.extend(fresh);
    }

    /// Is an 8-day window refused (the documented 7-day cap)?
    pub(super) async fn window_cap(&mut self) {
        let now = secs(OffsetDateTime::now_utc());
        let what = "search of 8 days";
        let Ok(a) = self
            .search_page(
                "window-cap",
                what,
                now - time::Duration::days(8),
                now,
                1,
                None,
            )
            .await
        else {
            return;
        };
        let (status, ms) = (a.status.as_u16(), a.latency.as_millis());
        let f = match status {
            400 => Finding::ok(
                "window-cap",
                format!("an 8-day window is refused (HTTP 400 in {ms} ms: {})", body_message(&a)),
                "vccfs searches in windows of at most 7 days, as documented",
            ),
            200..=299 => Finding::ok(
                "window-cap",
                format!("an 8-day window is accepted (HTTP {status} in {ms} ms): the 7-day cap is not enforced"),
                "vccfs still searches in windows of at most 7 days",
            ),
            _ => Finding::warn(
                "window-cap",
                format!("an 8-day window answered HTTP {status} in {ms} ms: {}", body_message(&a)),
                "vccfs searches in windows of at most 7 days whatever this means",
            ),
        };
        self.record(f);
    }

    /// Is `end` inclusive? A 1-second window ending exactly at a listed start.
    pub(super) async fn end_inclusive(&mut self, probe: &Interaction) {
        let end = probe.start;
        let what = "search ending exactly at a listed start";
        let Ok(a) = self
            .search_page(
                "end",
                what,
                end - time::Duration::seconds(1),
                end,
                1000,
                None,
            )
            .await
        else {
            return;
        };
        if !a.status.is_success() {
            self.record(Finding::warn(
                "end",
                format!("unknown: {what} answered HTTP {}: {}", a.status.as_u16(), body_message(&a)),
                "vccfs searches half-open windows and drops repeats by guid, so either answer works",
            ));
            return;
        }
        let Ok(page) = serde_json::from_slice::<SearchPage>(&a.body) else {
            self.record(Finding::warn(
                "end",
                "unknown: the answer was not the documented JSON",
                "vccfs drops repeats by guid, so either answer works",
            ));
            return;
        };
        let listed = page.items.iter().any(|i| i.guid == probe.guid);
        let at = format_rfc3339(end);
        self.record(if listed {
            Finding::ok(
                "end",
                format!("end is inclusive: interaction {} starting at {at} is listed by a search ending at {at}", probe.guid),
                "adjacent windows share their boundary: vccfs drops the repeats by guid",
            )
        } else {
            Finding::ok(
                "end",
                format!("end is exclusive: interaction {} starting at {at} is not listed by a search ending at {at}", probe.guid),
                "vccfs's half-open windows neither miss nor repeat an interaction",
            )
        });
    }

    /// Step 3: `GET /interactions/{guid}`, compared with the listing.
    pub(super) async fn lookup(&mut self, listed: &Interaction) {
        let what = "lookup by guid";
        let req = self.api_get(self.api(&[&listed.guid]));
        let a = match self.p.send("lookup", req, JSON_CAP).await {
            Ok(a) => a,
            Err(e) => {
                if matches!(e, NoAnswer::Transport { .. }) {
                    self.unreachable("lookup", what, &e);
                }
                return;
            }
        };
        let ms = a.latency.as_millis();
        if !a.status.is_success() {
            self.record(Finding::warn(
                "lookup",
                format!("GET /interactions/{} of a listed interaction: HTTP {} in {ms} ms: {}", listed.guid, a.status.as_u16(), body_message(&a)),
                "opening a guid outside the listed window by name will fail; listed interactions are unaffected",
            ));
            return;
        }
        let Ok(got) = serde_json::from_slice::<Interaction>(&a.body) else {
            self.record(Finding::warn(
                "lookup",
                format!(
                    "GET /interactions/{}: HTTP {} in {ms} ms but not the documented JSON",
                    listed.guid,
                    a.status.as_u16()
                ),
                "opening a guid outside the listed window by name will fail",
            ));
            return;
        };
        let same = got.guid == listed.guid
            && got.content.len() == listed.content.len()
            && listed.content.iter().all(|c| {
                got.item(&c.content_key)
                    .is_some_and(|g| g.content_length == c.content_length)
            });
        let found = format!(
            "GET /interactions/{}: HTTP 200 in {ms} ms, {} content items{}",
            listed.guid,
            got.content.len(),
            if same {
                ", as listed"
            } else {
                ", different from the listing"
            }
        );
        self.record(if same {
            Finding::ok(
                "lookup",
                found,
                "vccfs opens any guid by name with one request",
            )
        } else {
            Finding::warn(
                "lookup",
                found,
                "lookups and listings disagree: vccfs shows the newest answer it has",
            )
        });
    }
}

fn listed_has(listed: &Listed, guid: &str) -> bool {
    listed.iter().any(|l| l.guid == guid)
}
