//! Scale (CI-sized: 50,000 interactions in 7 days, about 7,000 a day, 8 pages each):
//! the mount is live before any day is listed, days are listed on demand exactly as the
//! API lists them, an unknown guid costs one lookup, and an idle mount's searches stay
//! within the refresh policy.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{fuse_available, Emulator, Mount};

fn tenant() -> Emulator {
    Emulator::start(&["--interactions", "50000", "--days", "7", "--seed", "13"])
}

/// Now, and the window of the last 7 days up to a minute from now.
fn last_week() -> (
    time::OffsetDateTime,
    time::OffsetDateTime,
    time::OffsetDateTime,
) {
    let now = time::OffsetDateTime::now_utc();
    (
        now,
        now - time::Duration::days(7),
        now + time::Duration::minutes(1),
    )
}

fn guids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["guid"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn start_of(i: &Value) -> time::OffsetDateTime {
    let s = i["start"].as_str().unwrap_or_default();
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("an RFC 3339 start")
}

#[test]
fn live_before_any_day_is_listed_then_days_on_demand_exactly_as_the_api_lists_them() {
    if !fuse_available() {
        return;
    }
    let emu = tenant();
    let (now, from, to) = last_week();
    // A budget, so the background lister takes its time (30 pages a minute, a day
    // of 8 pages at a time, newest first).
    let m = Mount::start_window(&emu, from, to, &["--max-rpm", "60"]);
    let s = m.status();
    // At most the newest day (just after midnight only minutes of calls: one page)
    // may be listed by the time we look; the others are not.
    assert!(
        s["days_listed"].as_u64().unwrap_or(99) <= 1,
        "the window was listed before the mount went live: {s}"
    );
    assert!(s["days_unlisted"].as_u64().unwrap_or(0) >= 6, "{s}");
    assert!(s["days_in_window"].as_u64().unwrap_or(0) >= 7, "{s}");
    assert!(
        emu.stat("search_requests") <= 3,
        "mounting searched the window: {}",
        emu.stats()
    );

    // Every day of the window is there to look into.
    let days: BTreeSet<String> = std::fs::read_dir(m.path.join("by-date"))
        .expect("ls by-date")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let day = (now - time::Duration::days(3)).date();
    assert!(days.contains(&day.to_string()), "{days:?}");

    // One day, on demand: exactly what the API lists for it, in its order.
    let token = emu.token();
    let midnight = day.midnight().assume_utc();
    let truth = emu.interactions(&token, midnight, midnight + time::Duration::DAY);
    assert!(truth.len() > 5000, "{} interactions that day", truth.len());
    let started = Instant::now();
    let mut shown: Vec<String> = std::fs::read_dir(m.path.join("by-date").join(day.to_string()))
        .expect("ls by-date/<day>")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    eprintln!(
        "SCALE-REPORT | one day on demand | {} interactions | {:.2} s",
        shown.len(),
        started.elapsed().as_secs_f64()
    );
    let mut want = guids(&truth);
    shown.sort();
    want.sort();
    assert_eq!(shown.len(), want.len(), "the day lists what the API lists");
    assert!(shown == want, "the day lists exactly the API's guids");

    // A guid of a day not listed yet: one GET /interactions/{guid}.
    let other = (now - time::Duration::days(6))
        .date()
        .midnight()
        .assume_utc();
    let far = emu.interactions(&token, other, other + time::Duration::hours(1));
    let guid = guids(&far).into_iter().next().expect("a guid six days ago");
    let lookups = emu.stat("interaction_requests");
    let meta = std::fs::metadata(m.interactions_dir().join(&guid)).expect("stat the guid");
    assert!(meta.is_dir());
    assert_eq!(
        emu.stat("interaction_requests"),
        lookups + 1,
        "{}",
        emu.stats()
    );
    assert!(far.iter().any(|i| start_of(i) >= other));
}

#[test]
fn an_idle_mount_searches_only_the_recent_tail() {
    if !fuse_available() {
        return;
    }
    let emu = tenant();
    let (_, from, to) = last_week();
    let m = Mount::start_window(&emu, from, to, &["--refresh", "2"]);
    // The background lister gets through the whole window.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = m.status();
        if s["days_unlisted"] == 0 && s["days_listed"].as_u64().unwrap_or(0) >= 7 {
            assert!(
                s["interactions_listed"].as_u64().unwrap_or(0) > 49_000,
                "{s}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the window was never listed: {s}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    emu.reset_stats();
    let idle = Duration::from_secs(12);
    std::thread::sleep(idle);
    let searches = emu.stat("search_requests");
    // The policy: every refresh re-lists since the last one (one page); the whole last
    // 2 hours (one page of up to 1000, or two at the busiest hours of the synthetic
    // day: about 300 an hour on average here) every 15 minutes, or at every refresh
    // when they fit in one page; no day is due again within a minute of its listing.
    let now = time::OffsetDateTime::now_utc();
    let tail = emu
        .interactions(&emu.token(), now - time::Duration::hours(2), now)
        .len() as u64;
    let pages = tail.div_ceil(1000).max(1);
    let refreshes = idle.as_secs() / 2;
    eprintln!(
        "SCALE-REPORT | idle {} s, --refresh 2, 2-hour tail {tail} ({pages} pages) | {searches} searches",
        idle.as_secs()
    );
    assert!(
        searches >= refreshes - 2,
        "the tail is re-listed: {searches}"
    );
    // At most one reach of the whole 2 hours in 12 s when they take more than a page.
    let most = if pages == 1 {
        refreshes + 1
    } else {
        refreshes + 1 + pages
    };
    assert!(searches <= most, "{searches} searches in {idle:?}");
    assert_eq!(emu.stat("interaction_requests"), 0);
}
