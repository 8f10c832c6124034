//! Small parsers shared by the CLI and the client: sizes, times, HTTP dates; and the
//! two checks every layer shares: secret files ([`private_file`]) and which URLs may
//! travel in clear ([`wire`]).

mod private_file;
pub mod wire;

pub use private_file::{read_private_file, PrivateFileError};

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Now, to the second (what file times and the window are measured in).
pub fn now_secs() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// `1.5 GiB`-style sizes, for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
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

/// Parse a byte size: `4096`, `64K`, `8MiB`, `1.5G`, `256MB` (binary multiples throughout).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| {
        format!("invalid size {s:?}: expected a number with an optional unit like 64K, 256M, 1G")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "invalid size {s:?}: unknown unit {other:?} (use K, M, G or T)"
            ))
        }
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("invalid size {s:?}: out of range"));
    }
    Ok(bytes as u64)
}

/// Parse a length of time like `30d`, `12h`, `90m`, `2w`, `45s` (the relative forms
/// of [`parse_time_spec`]).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let bad = || format!("invalid duration {s:?}: use a number and a unit, like 30d, 12h, 90m, 2w");
    if t.len() < 2 || !t.is_ascii() {
        return Err(bad());
    }
    let (num, unit) = t.split_at(t.len() - 1);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "w" => 7 * 86_400,
        "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    if n > 36_500 * 86_400 / secs {
        return Err(format!("invalid duration {s:?}: more than 100 years"));
    }
    Ok(std::time::Duration::from_secs(n * secs))
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
    if t.len() >= 2 && t.is_ascii() {
        let (num, unit) = t.split_at(t.len() - 1);
        if let Ok(n) = num.parse::<i64>() {
            let d = match unit {
                "w" => Some(Duration::weeks(n)),
                "d" => Some(Duration::days(n)),
                "h" => Some(Duration::hours(n)),
                "m" => Some(Duration::minutes(n)),
                "s" => Some(Duration::seconds(n)),
                _ => None,
            };
            if let Some(d) = d {
                if (0..=36_500 * 86_400).contains(&n) {
                    return now
                        .checked_sub(d)
                        .ok_or_else(|| format!("invalid time {s:?}: out of range"));
                }
            }
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
