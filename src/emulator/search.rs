//! `GET /interaction-content/interactions` (api.md §3): query validation, filters and
//! paging (v3 continuation tokens, v2 page numbers).
//!
//! Choices where the docs are silent: `limit` defaults to 1000 (the maximum); a window
//! of exactly 7 days is allowed; `end` is exclusive unless `--end-inclusive`; `direction`
//! is matched case-insensitively and must be `inbound` or `outbound`; an empty
//! `connectFrom`/`connectTo` is refused (documented minimum length 1), an empty
//! `handlingAgentId` is ignored; results are ordered by `start`, then guid.
//!
//! A continuation token is base64url of `<query fingerprint>.<start>.<guid>` of the last
//! item returned: it stays valid across mutations and only for the query it came from.
//! A page is built from the tenant's ordered walk starting at that position, so only the
//! interactions it touches are built; an `end` in the future stops at those that have
//! started.

use base64::Engine;
use serde::Serialize;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use super::error::ApiError;
use super::guard::ApiVersion;
use super::record::{Fnv, Record};
use super::tenant::{ScanFrom, Tenant};
use crate::model::{Interaction, SearchMeta, SearchPage, MAX_PAGE_LIMIT, MAX_SEARCH_WINDOW};

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SearchQuery {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    pub limit: usize,
    /// Lowercase `inbound` / `outbound`.
    pub direction: Option<String>,
    pub handling_agent_id: Option<String>,
    pub connect_from: Option<String>,
    pub connect_to: Option<String>,
    pub continuation_token: Option<String>,
    pub page: usize,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

/// Parses an ISO 8601 date-time: RFC 3339 (`Z` or offset, optional fraction), a
/// date-time without offset (UTC), or a bare date (midnight UTC). A `+` turned into a
/// space by form decoding is put back.
pub(crate) fn parse_time(raw: &str) -> Option<OffsetDateTime> {
    let s = raw.trim();
    let fixed;
    let s = if s.len() > 19 && s.is_char_boundary(19) && s[19..].contains(' ') {
        fixed = format!("{}{}", &s[..19], s[19..].replace(' ', "+"));
        fixed.as_str()
    } else {
        s
    };
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(s, &Iso8601::DEFAULT))
        .ok()
        .or_else(|| {
            PrimitiveDateTime::parse(s, &Iso8601::DEFAULT)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            Date::parse(s, &fmt).ok().map(|d| d.midnight().assume_utc())
        })
}

/// Validates the query parameters (the last of repeated parameters wins).
pub(crate) fn parse(params: &[(String, String)]) -> Result<SearchQuery, ApiError> {
    let get = |name: &str| {
        params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let time_param = |name: &str| -> Result<OffsetDateTime, ApiError> {
        let v = get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| bad(format!("The {name} parameter is required")))?;
        parse_time(v).ok_or_else(|| {
            bad(format!(
                "The {name} parameter '{v}' is not a valid ISO 8601 date and time, e.g. 2021-01-01T00:00:00Z"
            ))
        })
    };
    let start = time_param("start")?;
    let end = time_param("end")?;
    if end <= start {
        return Err(bad("The end date must be after the start date"));
    }
    if end - start > MAX_SEARCH_WINDOW {
        return Err(bad(
            "The maximum date range between start and end dates for an interaction search is 7 days",
        ));
    }
    let limit = match get("limit") {
        None => MAX_PAGE_LIMIT as usize,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n as usize,
            _ => {
                return Err(bad(format!(
                    "The limit parameter must be an integer between 1 and {MAX_PAGE_LIMIT}"
                )))
            }
        },
    };
    let page = match get("page") {
        None => 1,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(bad("The page parameter must be an integer of at least 1")),
        },
    };
    let direction = match get("direction").map(str::trim).filter(|v| !v.is_empty()) {
        None => None,
        Some(d) if d.eq_ignore_ascii_case("inbound") || d.eq_ignore_ascii_case("outbound") => {
            Some(d.to_ascii_lowercase())
        }
        Some(_) => {
            return Err(bad(
                "The direction parameter must be one of: inbound, outbound",
            ))
        }
    };
    let prefix = |name: &str| -> Result<Option<String>, ApiError> {
        match get(name) {
            None => Ok(None),
            Some(v) if (1..=50).contains(&v.chars().count()) => Ok(Some(v.to_string())),
            Some(_) => Err(bad(format!(
                "The {name} parameter must be between 1 and 50 characters long"
            ))),
        }
    };
    Ok(SearchQuery {
        start,
        end,
        limit,
        direction,
        handling_agent_id: get("handlingAgentId")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        connect_from: prefix("connectFrom")?,
        connect_to: prefix("connectTo")?,
        continuation_token: get("continuationToken")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        page,
    })
}

impl SearchQuery {
    /// Identifies the result set (not the page size): tokens only work for it.
    fn fingerprint(&self) -> u64 {
        let mut h = Fnv::new();
        h.write(&self.start.unix_timestamp_nanos().to_le_bytes());
        h.write(&self.end.unix_timestamp_nanos().to_le_bytes());
        for f in [
            &self.direction,
            &self.handling_agent_id,
            &self.connect_from,
            &self.connect_to,
        ] {
            h.write(&[0xff]);
            h.write(f.as_deref().unwrap_or("").as_bytes());
        }
        h.finish()
    }

    fn matches(&self, r: &Record, end_inclusive: bool) -> bool {
        let before_end = if end_inclusive {
            r.start <= self.end
        } else {
            r.start < self.end
        };
        r.start >= self.start
            && before_end
            && self.direction.as_ref().is_none_or(|d| {
                r.direction
                    .as_deref()
                    .is_some_and(|x| x.eq_ignore_ascii_case(d))
            })
            && self
                .handling_agent_id
                .as_ref()
                .is_none_or(|a| r.agents.iter().any(|x| x == a))
            && self.connect_from.as_ref().is_none_or(|p| {
                r.connect_from
                    .as_deref()
                    .is_some_and(|x| x.starts_with(p.as_str()))
            })
            && self.connect_to.as_ref().is_none_or(|p| {
                r.connect_to
                    .as_deref()
                    .is_some_and(|x| x.starts_with(p.as_str()))
            })
    }

    fn encode_token(&self, (start, guid): &(OffsetDateTime, String)) -> String {
        let raw = format!(
            "{:016x}.{}.{}",
            self.fingerprint(),
            start.unix_timestamp(),
            guid
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// The `(start, guid)` position a token continues after.
    fn decode_token(&self, token: &str) -> Result<(OffsetDateTime, String), ApiError> {
        let invalid = || bad("The continuationToken is invalid or does not belong to this query");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let mut parts = raw.splitn(3, '.');
        let (Some(fp), Some(ts), Some(guid)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        if u64::from_str_radix(fp, 16).ok() != Some(self.fingerprint()) {
            return Err(invalid());
        }
        let ts = ts
            .parse::<i64>()
            .ok()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .ok_or_else(invalid)?;
        Ok((ts, guid.to_string()))
    }
}

/// A v2 page (`meta{page,count,pageCount,totalCount}`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct V2Meta {
    page: usize,
    count: usize,
    page_count: usize,
    total_count: usize,
}

#[derive(Serialize)]
pub(crate) struct V2Page {
    items: Vec<Interaction>,
    meta: V2Meta,
}

/// A search response body (serialized as is: fields keep the documented order).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum SearchBody {
    V3(SearchPage),
    V2(V2Page),
}

impl SearchBody {
    /// The interactions of the page, to adjust before serializing.
    pub(crate) fn interactions_mut(&mut self) -> &mut [Interaction] {
        match self {
            SearchBody::V3(p) => &mut p.items,
            SearchBody::V2(p) => &mut p.items,
        }
    }
}

/// Runs a search; returns the response body.
pub(crate) fn run(
    tenant: &Tenant,
    q: &SearchQuery,
    version: ApiVersion,
    end_inclusive: bool,
) -> Result<SearchBody, ApiError> {
    match version {
        ApiVersion::V3 => {
            let after = match &q.continuation_token {
                None => None,
                Some(t) => Some(q.decode_token(t)?),
            };
            let from = match &after {
                None => ScanFrom::Start(q.start),
                Some((ts, guid)) => ScanFrom::After(*ts, guid),
            };
            let mut hits = tenant
                .scan(from, q.end)
                .filter(|r| q.matches(r, end_inclusive));
            let mut items = Vec::new();
            let mut last = None;
            for r in hits.by_ref().take(q.limit) {
                items.push(r.to_model());
                last = Some((r.start, r.guid));
            }
            let more = hits.next().is_some();
            let next = match last {
                Some(last) if more => Some(q.encode_token(&last)),
                _ => None,
            };
            Ok(SearchBody::V3(SearchPage {
                items,
                meta: SearchMeta {
                    next_continuation_token: next,
                    extra: Default::default(),
                },
            }))
        }
        ApiVersion::V2 => {
            let skip = (q.page - 1).saturating_mul(q.limit);
            let mut total = 0;
            let mut items = Vec::new();
            for r in tenant
                .scan(ScanFrom::Start(q.start), q.end)
                .filter(|r| q.matches(r, end_inclusive))
            {
                if total >= skip && items.len() < q.limit {
                    items.push(r.to_model());
                }
                total += 1;
            }
            Ok(SearchBody::V2(V2Page {
                meta: V2Meta {
                    page: q.page,
                    count: items.len(),
                    page_count: total.div_ceil(q.limit),
                    total_count: total,
                },
                items,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_iso_8601_forms() {
        let z = parse_time("2021-01-01T00:00:00Z").expect("z");
        assert_eq!(parse_time("2021-01-01T01:00:00+01:00"), Some(z));
        assert_eq!(parse_time("2021-01-01T01:00:00 01:00"), Some(z));
        assert_eq!(parse_time("2021-01-01T00:00:00.000Z"), Some(z));
        assert_eq!(parse_time("2021-01-01T00:00:00"), Some(z));
        assert_eq!(parse_time("2021-01-01"), Some(z));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2021-13-01T00:00:00Z"), None);
    }

    #[test]
    fn validates_window_and_limit() {
        let ok = parse(&params(&[
            ("start", "2021-01-01T00:00:00Z"),
            ("end", "2021-01-08T00:00:00Z"),
        ]))
        .expect("7 days is allowed");
        assert_eq!(ok.limit, 1000);
        for bad_params in [
            vec![("end", "2021-01-02T00:00:00Z")],
            vec![
                ("start", "2021-01-01T00:00:00Z"),
                ("end", "2021-01-08T00:00:01Z"),
            ],
            vec![
                ("start", "2021-01-02T00:00:00Z"),
                ("end", "2021-01-01T00:00:00Z"),
            ],
            vec![("start", "x"), ("end", "2021-01-01T00:00:00Z")],
            vec![
                ("start", "2021-01-01T00:00:00Z"),
                ("end", "2021-01-02T00:00:00Z"),
                ("limit", "0"),
            ],
            vec![
                ("start", "2021-01-01T00:00:00Z"),
                ("end", "2021-01-02T00:00:00Z"),
                ("limit", "1001"),
            ],
            vec![
                ("start", "2021-01-01T00:00:00Z"),
                ("end", "2021-01-02T00:00:00Z"),
                ("direction", "sideways"),
            ],
        ] {
            assert!(parse(&params(&bad_params)).is_err(), "{bad_params:?}");
        }
    }

    #[test]
    fn token_is_bound_to_its_query() {
        let q = parse(&params(&[
            ("start", "2021-01-01T00:00:00Z"),
            ("end", "2021-01-02T00:00:00Z"),
        ]))
        .expect("q");
        let mut other = q.clone();
        other.direction = Some("inbound".into());
        let fake = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{:016x}.1609459200.abc", q.fingerprint()));
        assert!(q.decode_token(&fake).is_ok());
        assert!(other.decode_token(&fake).is_err());
        assert!(q.decode_token("garbage!").is_err());
    }
}
