//! Small parsers shared by the CLI and the client: sizes, times, HTTP dates; and the
//! two checks every layer shares: secret files ([`private_file`]) and which URLs may
//! travel in clear ([`wire`]).

mod private_file;
pub mod wire;

pub use private_file::{read_private_file, PrivateFileError};

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Now, to the second (what file times and the window are measured in).
pub fn now_secs() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// `1.5 GiB`-style sizes, for people (binary units, by `bytesize`).
pub fn human_bytes(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

/// Format an instant as an RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn format_http_date(t: OffsetDateTime) -> String {
    httpdate::fmt_http_date(t.into())
}

/// Parse an RFC 9110 HTTP date (IMF-fixdate, or the obsolete RFC 850 and asctime forms).
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    httpdate::parse_http_date(s.trim())
        .ok()
        .map(OffsetDateTime::from)
}

/// Format an instant as the API does: RFC 3339 in UTC (`2020-02-16T14:11:56Z`).
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Parse a byte size: `4096`, `64K`, `8MiB`, `1.5G`, `256MB` (binary multiples
/// throughout, by `parse-size`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = parse_size::Config::new()
        .with_binary()
        .parse_size(s.trim())
        .map_err(|e| {
            format!("invalid size {s:?}: {e} (a number with an optional unit like 64K, 256M, 1G)")
        })?;
    if bytes > u64::MAX / 2 {
        return Err(format!("invalid size {s:?}: out of range"));
    }
    Ok(bytes)
}

/// The longest length of time accepted anywhere (`--from 100y` is nonsense).
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(36_500 * 86_400);

/// Parse a length of time like `30d`, `12h`, `90m`, `2w`, `45s` (and the other forms
/// `humantime` reads, like `1h30m`), at most 100 years.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    if s.contains('.') {
        return Err(format!(
            "invalid duration {s:?}: whole numbers only, like 36h"
        ));
    }
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("invalid duration {s:?}: {e} (use a number and a unit, like 30d, 12h, 90m, 2w)")
    })?;
    if d > MAX_DURATION {
        return Err(format!("invalid duration {s:?}: more than 100 years"));
    }
    Ok(d)
}

/// Parse a point in time for `--from`/`--to`: RFC 3339 (`2026-11-01T08:00:00Z`), a date
/// (`2026-11-01`, midnight UTC), `now`, `today`, or a relative past like `30d`, `12h`,
/// `90m`, `2w` (that long before `now`).
pub fn parse_time_spec(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if t.eq_ignore_ascii_case("today") {
        return Ok(now.replace_time(Time::MIDNIGHT));
    }
    if let Ok(v) = OffsetDateTime::parse(t, &Rfc3339) {
        return Ok(v);
    }
    if let Ok(d) = Date::parse(t, format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc());
    }
    if let Ok(p) = PrimitiveDateTime::parse(
        t,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ) {
        return Ok(p.assume_utc());
    }
    if let Ok(p) = PrimitiveDateTime::parse(
        t,
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ) {
        return Ok(p.assume_utc());
    }
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(d) = parse_duration(t) {
            let d = time::Duration::try_from(d)
                .map_err(|_| format!("invalid time {s:?}: out of range"))?;
            return now
                .checked_sub(d)
                .ok_or_else(|| format!("invalid time {s:?}: out of range"));
        }
    }
    Err(format!(
        "invalid time {s:?}: use an ISO 8601 date or time (2026-11-01, 2026-11-01T08:00:00Z), 'now', or a relative form like 30d, 12h, 2w"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn durations_parse_like_relative_times() {
        let d = |s| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(d("30d"), Ok(30 * 86_400));
        assert_eq!(d("2w"), Ok(14 * 86_400));
        assert_eq!(d(" 12h "), Ok(12 * 3600));
        assert_eq!(d("90m"), Ok(5400));
        assert_eq!(d("45s"), Ok(45));
        for bad in ["", "d", "30", "30x", "-1d", "1.5d", "99999999999w"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
    use time::macros::datetime;

    #[test]
    fn http_dates_round_trip() {
        let t = datetime!(1994-11-06 08:49:37 UTC);
        assert_eq!(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("256mb"), Ok(256 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-5").is_err());
    }

    #[test]
    fn time_specs() {
        let now = datetime!(2026-11-25 12:30:00 UTC);
        assert_eq!(
            parse_time_spec("30d", now),
            Ok(datetime!(2026-10-26 12:30:00 UTC))
        );
        assert_eq!(
            parse_time_spec("2w", now),
            Ok(datetime!(2026-11-11 12:30:00 UTC))
        );
        assert_eq!(
            parse_time_spec("2026-11-01", now),
            Ok(datetime!(2026-11-01 0:00 UTC))
        );
        assert_eq!(
            parse_time_spec("2026-11-01T08:00:00+01:00", now),
            Ok(datetime!(2026-11-01 07:00:00 UTC))
        );
        assert_eq!(
            parse_time_spec("2026-11-01T08:00", now),
            Ok(datetime!(2026-11-01 08:00 UTC))
        );
        assert_eq!(parse_time_spec("now", now), Ok(now));
        assert!(parse_time_spec("2026-13-01", now).is_err());
        assert!(parse_time_spec("yesterdayish", now).is_err());
        assert!(parse_time_spec("-3d", now).is_err());
    }

    #[test]
    fn rfc3339_is_api_shape() {
        assert_eq!(
            format_rfc3339(datetime!(2020-02-16 14:11:56 UTC)),
            "2020-02-16T14:11:56Z"
        );
    }
}
