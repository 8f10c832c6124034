//! The catalog's memory budget (`--catalog-memory`), CI-sized: a 7-day window of about
//! 5,000 interactions held to about two days in memory. Every day lists exactly what
//! the API lists, `/interactions` streams the whole window, reads are exact, the
//! catalog's bytes stay within the budget, and no day is searched again because it
//! left memory (searches counted at the emulator). Mounted again, the saved days open
//! from their indexes, on disk only, list exactly, and are not searched again until
//! they are stale by the age policy (a read still re-lists its day first).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{fuse_available, Emulator, Mount};

fn names(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("ls {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect()
}

/// Read the first content file of `guid` through the mount and compare it with the
/// API's bytes; returns the interaction's directory.
fn read_a_file_exactly(emu: &Emulator, m: &Mount, guid: &str) -> std::path::PathBuf {
    let dir = m.interactions_dir().join(guid);
    let key = names(&dir)
        .into_iter()
        .find(|k| k != ".interaction.json")
        .expect("a content file");
    let bytes = std::fs::read(dir.join(&key)).expect("read");
    assert!(
        bytes == emu.content(&emu.token(), guid, &key),
        "{guid}/{key} differs"
    );
    dir
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn n(s: &Value, key: &str) -> u64 {
    s[key]
        .as_u64()
        .unwrap_or_else(|| panic!("status has no {key}: {s}"))
}

#[test]
fn two_days_in_memory_of_seven_every_day_exact_and_none_searched_again() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "5000", "--days", "7", "--seed", "29"]);
    // Seven whole days, up to today's midnight: every day can be listed whole.
    let midnight = time::OffsetDateTime::now_utc()
        .date()
        .midnight()
        .assume_utc();
    let (from, to) = (midnight - time::Duration::days(7), midnight);
    let token = emu.token();
    let days: Vec<time::Date> = (0..7)
        .map(|d| (from + time::Duration::days(d)).date())
        .collect();
    let truth: Vec<BTreeSet<String>> = days
        .iter()
        .map(|d| {
            let a = d.midnight().assume_utc();
            emu.interactions(&token, a, a + time::Duration::DAY)
                .iter()
                .map(|i| i["guid"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect();
    let total: usize = truth.iter().map(BTreeSet::len).sum();
    assert!(total > 3000, "{total} interactions in the window");
    // About 520 bytes an interaction in memory (`catalog::resident`): two days and a
    // bit of the busiest.
    let busiest = truth.iter().map(BTreeSet::len).max().unwrap_or(0) as u64;
    let budget = busiest * 520 * 5 / 2;
    let budget_flag = budget.to_string();
    let cache = tempfile::tempdir().expect("a cache dir");
    let cache_flag = cache.path().display().to_string();
    let m = Mount::start_window(
        &emu,
        from,
        to,
        &[
            "--catalog-memory",
            &budget_flag,
            "--refresh",
            "0",
            "--cache-dir",
            &cache_flag,
        ],
    );
    // The background lister lists the window (each day once).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = m.status();
        if n(&s, "days_unlisted") == 0 && n(&s, "days_listed") >= 7 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the window was never listed: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = m.status();
    assert_eq!(n(&s, "interactions_listed"), total as u64, "{s}");
    assert_eq!(n(&s, "catalog_memory_budget_bytes"), budget, "{s}");
    assert!(n(&s, "catalog_memory_bytes") <= budget, "{s}");
    assert!(n(&s, "catalog_days_in_memory") <= 3, "{s}");
    assert!(n(&s, "catalog_days_on_disk_only") >= 4, "{s}");
    let rss_listed = rss_kib(m.pid());

    emu.reset_stats();
    let mut peak_days = 0;
    for walk in 0..2 {
        for (day, want) in days.iter().zip(&truth) {
            let shown = names(&m.path.join("by-date").join(day.to_string()));
            assert!(
                shown == *want,
                "walk {walk}: by-date/{day} is not what the API lists"
            );
            let s = m.status();
            peak_days = peak_days.max(n(&s, "catalog_days_in_memory"));
            assert!(n(&s, "catalog_memory_bytes") <= budget, "{s}");
        }
        // `ls -f interactions`: the whole window, streamed day by day.
        let all = names(&m.interactions_dir());
        let want: BTreeSet<String> = truth.iter().flatten().cloned().collect();
        assert!(all == want, "walk {walk}: /interactions is not the window");
        let s = m.status();
        assert!(n(&s, "catalog_memory_bytes") <= budget, "{s}");
    }
    // Reads, exact, of a sample across the days (their days left memory meanwhile).
    for want in &truth {
        let guid = want.iter().next().expect("a guid");
        let dir = read_a_file_exactly(&emu, &m, guid);
        let meta: Value =
            serde_json::from_slice(&std::fs::read(dir.join(".interaction.json")).expect("meta"))
                .expect("json");
        assert_eq!(meta["guid"].as_str(), Some(guid.as_str()));
    }
    assert_eq!(
        emu.stat("search_requests"),
        0,
        "a day was searched again: {}",
        emu.stats()
    );
    assert_eq!(emu.stat("interaction_requests"), 0, "{}", emu.stats());
    let s = m.status();
    eprintln!(
        "CATALOG-MEMORY | {total} interactions, budget {budget} B | in memory {} B, {} days \
         (peak {peak_days}), {} on disk only | {} evictions, {} reloads, {} relists | \
         RSS {rss_listed} KiB listed, {} KiB after two walks",
        n(&s, "catalog_memory_bytes"),
        n(&s, "catalog_days_in_memory"),
        n(&s, "catalog_days_on_disk_only"),
        n(&s, "catalog_day_evictions"),
        n(&s, "catalog_day_reloads"),
        n(&s, "catalog_day_relists"),
        rss_kib(m.pid()),
    );
    assert!(peak_days <= 3, "{peak_days} days in memory at once");
    assert!(n(&s, "catalog_day_reloads") >= 10, "{s}");
    assert_eq!(n(&s, "catalog_day_relists"), 0, "{s}");
    m.stop();

    // Mounted again on the same cache, with room for the whole window and the tail
    // refreshed as usual: the saved days open from their indexes, on disk only, and
    // list exactly. Listed whole a moment ago, none is stale by the age policy, so the
    // background searches none of them again (before, a remount re-listed every saved
    // day at half of --max-rpm: 7 searches within seconds here, about 2,000 for 60 days
    // of 33k calls). Reading a file still re-lists its day first (one search), so a
    // version changed between the mounts is read new.
    emu.reset_stats();
    let m = Mount::start_window(
        &emu,
        from,
        to,
        &["--refresh", "60", "--cache-dir", &cache_flag],
    );
    let s = m.status();
    assert_eq!(n(&s, "interactions_listed"), total as u64, "{s}");
    assert!(
        n(&s, "catalog_days_on_disk_only") >= 6,
        "not opened from the indexes: {s}"
    );
    assert!(n(&s, "catalog_days_in_memory") <= 1, "{s}");
    for (day, want) in days.iter().zip(&truth) {
        let shown = names(&m.path.join("by-date").join(day.to_string()));
        assert!(
            shown == *want,
            "remounted: by-date/{day} is not what the API lists"
        );
    }
    let all = names(&m.interactions_dir());
    let want: BTreeSet<String> = truth.iter().flatten().cloned().collect();
    assert!(all == want, "remounted: /interactions is not the window");
    std::thread::sleep(Duration::from_secs(6));
    // At most one: the tail, if this runs in the first two hours after midnight.
    let searches = emu.stat("search_requests");
    assert!(
        searches <= 1,
        "saved days searched again after a remount: {}",
        emu.stats()
    );
    read_a_file_exactly(&emu, &m, truth[3].iter().next().expect("a guid"));
    assert_eq!(
        emu.stat("search_requests"),
        searches + 1,
        "the read re-lists its day first: {}",
        emu.stats()
    );
    m.stop();
}
