//! Every request at its floor (issue 13): `ffprobe` then a full `ffmpeg` decode on a
//! real mount cost one content request for a file of at most 16 MiB, and at most
//! size/8 MiB + 2 for a larger one — counted by the emulator, by purpose too.

use serde_json::Value;

use crate::common::{fuse_available, sh, which, Emulator, Mount};

const MIB: u64 = 1 << 20;
/// Files up to this size are fetched whole.
const WHOLE: u64 = 16 * MIB;

/// Are ffprobe and ffmpeg here (required in CI)?
fn media_tools() -> bool {
    if which("ffprobe") && which("ffmpeg") {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "ffmpeg is required in CI");
    eprintln!("SKIP: ffprobe/ffmpeg not installed");
    false
}

/// `(guid, key, size)` of the largest item of one of `kinds` within `sizes`.
fn pick(
    items: &[Value],
    kinds: &[&str],
    sizes: std::ops::RangeInclusive<u64>,
) -> (String, String, u64) {
    items
        .iter()
        .flat_map(|i| {
            let guid = i["guid"].as_str().unwrap_or_default().to_string();
            i["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| (guid.clone(), c))
        })
        .filter(|(_, c)| kinds.iter().any(|k| c["type"] == *k))
        .map(|(g, c)| {
            let key = c["contentKey"].as_str().unwrap_or_default().to_string();
            (g, key, c["contentLength"].as_u64().unwrap_or(0))
        })
        .filter(|(_, _, n)| sizes.contains(n))
        .max_by_key(|(_, _, n)| *n)
        .unwrap_or_else(|| panic!("no {kinds:?} of {sizes:?} bytes"))
}

/// `ffprobe` then `ffmpeg -i <file> -f null -` on a fresh mount of `emu`: the
/// emulator's stats after them (counted from the first probe on).
fn probe_and_decode(emu: &Emulator, guid: &str, key: &str) -> Value {
    let m = Mount::start(emu, &[]);
    let path = m.interactions_dir().join(guid).join(key);
    emu.reset_stats();
    let (ok, _, err) = sh(&format!("ffprobe -v error {}", path.display()));
    assert!(ok && err.trim().is_empty(), "ffprobe {key}: {err}");
    let (ok, _, err) = sh(&format!("ffmpeg -v error -i {} -f null -", path.display()));
    assert!(ok && err.trim().is_empty(), "ffmpeg decode {key}: {err}");
    let stats = emu.stats();
    m.stop();
    stats
}

/// The content requests in `stats`, checked against their count by purpose.
fn content_requests(stats: &Value) -> u64 {
    let total = stats["content_requests"]
        .as_u64()
        .expect("content_requests");
    let by_purpose: u64 = stats["content_requests_by_purpose"]
        .as_object()
        .expect("content_requests_by_purpose")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(
        by_purpose, total,
        "every content request names its purpose: {stats}"
    );
    total
}

#[test]
fn small_media_cost_one_request_for_probe_and_decode() {
    if !fuse_available() || !media_tools() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "30", "--seed", "13"]);
    let items = emu.interactions(
        &emu.token(),
        time::OffsetDateTime::now_utc() - time::Duration::days(40),
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
    );
    let wav = pick(&items, &["callRecording"], 100_000..=WHOLE);
    let webm = pick(
        &items,
        &["screenRecording", "videoRecording"],
        100_000..=WHOLE,
    );
    for (guid, key, size) in [wav, webm] {
        let stats = probe_and_decode(&emu, &guid, &key);
        assert_eq!(
            content_requests(&stats),
            1,
            "{key} ({size} bytes): one request for ffprobe + decode: {stats}"
        );
        assert_eq!(
            stats["content_requests_by_purpose"]["content"], 1,
            "{stats}"
        );
    }
}

#[test]
fn a_large_media_file_costs_size_over_8_mib_plus_two() {
    if !fuse_available() || !media_tools() {
        return;
    }
    let emu = Emulator::start(&[
        "--interactions",
        "10",
        "--seed",
        "13",
        "--big-file-mib",
        "40",
    ]);
    let items = emu.interactions(
        &emu.token(),
        time::OffsetDateTime::now_utc() - time::Duration::days(40),
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
    );
    let (guid, key, size) = pick(&items, &["screenRecording"], WHOLE + 1..=u64::MAX);
    assert_eq!(size, 40 * MIB);
    let stats = probe_and_decode(&emu, &guid, &key);
    let n = content_requests(&stats);
    let floor = size / (8 * MIB) + 2;
    assert!(
        n <= floor,
        "{n} requests for a {size}-byte file (floor {floor}): {stats}"
    );
    let by_purpose = &stats["content_requests_by_purpose"];
    assert!(
        by_purpose["read-ahead"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    // The listing a mount starts with is counted under its own purpose.
    assert_eq!(
        stats["requests_by_purpose"]["content"],
        by_purpose["content"]
    );
}
