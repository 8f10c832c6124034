//! Erasure on a real mount: `vccfs erase` on demand, and deletions at the API found
//! by a read's 404 (confirmed by one lookup) or by a re-list.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{fuse_available, Emulator, Mount, BIN};
use crate::faults::{read_exactly, truth};

/// The files of `files` under interaction `guid`, and the others.
fn split(
    files: &HashMap<PathBuf, Vec<u8>>,
    guid: &str,
) -> (Vec<PathBuf>, HashMap<PathBuf, Vec<u8>>) {
    let mine = |p: &Path| p.parent().and_then(Path::file_name) == Some(guid.as_ref());
    let of: Vec<PathBuf> = files.keys().filter(|p| mine(p)).cloned().collect();
    let rest = files
        .iter()
        .filter(|(p, _)| !mine(p))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect();
    (of, rest)
}

/// An interaction of the mount's window with at least two files: (guid, its day).
fn pick(emu: &Emulator, m: &Mount, skip: &[String]) -> (String, String) {
    let token = emu.token();
    emu.interactions(&token, m.from, m.to)
        .into_iter()
        .filter(|i| i["content"].as_array().is_some_and(|c| c.len() >= 2))
        .map(|i: Value| {
            let guid = i["guid"].as_str().expect("guid").to_string();
            let day = i["start"].as_str().expect("start")[..10].to_string();
            (guid, day)
        })
        .find(|(g, _)| !skip.contains(g))
        .expect("an interaction with two files")
}

fn gone(m: &Mount, guid: &str) -> bool {
    matches!(
        std::fs::metadata(m.interactions_dir().join(guid)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound
    )
}

fn listed(m: &Mount, day: &str, guid: &str) -> bool {
    std::fs::read_dir(m.path.join("by-date").join(day))
        .expect("ls by-date/<day>")
        .filter_map(|e| e.ok())
        .any(|e| e.file_name() == guid)
}

fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Interactions this mount has erased so far (`erasures` in `vccfs status --json`):
/// counted once an erasure is complete, the kernel's caches included.
fn erasures(m: &Mount) -> u64 {
    let out = Command::new(BIN)
        .args(["status", "--json", &m.path.to_string_lossy()])
        .output()
        .expect("vccfs status");
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v["erasures"].as_u64())
        .unwrap_or(0)
}

/// About 80 calls an hour, mounted on the last 90 minutes: every `--refresh` (1 s)
/// re-lists all of it (the tail is 2 hours).
fn recent() -> (Emulator, Mount) {
    let emu = Emulator::start(&["--interactions", "2000", "--days", "1", "--seed", "3"]);
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("ns");
    let m = Mount::start_window(
        &emu,
        now - time::Duration::minutes(90),
        now - time::Duration::minutes(5),
        &["--refresh", "1"],
    );
    (emu, m)
}

fn requests(emu: &Emulator, purpose: &str) -> u64 {
    emu.stats()["requests_by_purpose"][purpose]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn vccfs_erase_takes_an_interaction_out_of_every_tier() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "8", "--seed", "21"]);
    let m = Mount::start(&emu, &[]);
    let files = truth(&emu, &m);
    let (guid, day) = pick(&emu, &m, &[]);
    let (mine, others) = split(&files, &guid);
    // A handle opened before anything of it is cached (served through vccfs).
    let mut open = std::fs::File::open(&mine[0]).expect("open");
    let mut head = vec![0u8; 64];
    open.read_exact(&mut head).expect("read before the erase");
    // Its metadata, held open across the erasure too.
    let json = m
        .path
        .join("interactions")
        .join(&guid)
        .join(".interaction.json");
    let mut meta = std::fs::File::open(&json).expect("open .interaction.json");
    meta.read_exact(&mut head[..1])
        .expect("read the metadata before the erase");
    let of: HashMap<PathBuf, Vec<u8>> =
        mine.iter().map(|p| (p.clone(), files[p].clone())).collect();
    read_exactly(&of);
    assert!(listed(&m, &day, &guid));

    let out = Command::new(BIN)
        .args(["erase", &m.path.to_string_lossy(), &guid])
        .output()
        .expect("vccfs erase");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("erased {guid}: catalog ")),
        "{stdout}"
    );
    assert!(stdout.contains("disk "), "{stdout}");

    assert!(gone(&m, &guid), "interactions/<guid> still resolves");
    assert!(!listed(&m, &day, &guid), "by-date/{day} still lists it");
    open.seek(SeekFrom::Start(0)).expect("seek");
    let mut again = Vec::new();
    let read = open.read_to_end(&mut again);
    assert!(read.is_err(), "an erased file read {} bytes", again.len());
    meta.seek(SeekFrom::Start(0)).expect("seek");
    let mut again = Vec::new();
    let read = meta.read_to_end(&mut again);
    assert!(
        read.is_err(),
        "an erased .interaction.json read {} bytes",
        again.len()
    );
    read_exactly(&others);

    // Not a GUID: one line of usage, non-zero; a dead mount: one line too.
    let out = Command::new(BIN)
        .args(["erase", &m.path.to_string_lossy(), "not-a-guid"])
        .output()
        .expect("vccfs erase");
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
    let out = Command::new(BIN)
        .args(["erase", "/nonexistent-mount", &guid])
        .output()
        .expect("vccfs erase");
    assert!(!out.status.success());
    let out = Command::new(BIN)
        .args(["status", "--json", &m.path.to_string_lossy()])
        .output()
        .expect("vccfs status");
    let status: Value = serde_json::from_slice(&out.stdout).expect("status json");
    assert_eq!(status["erasures"], 1);
    drop((open, meta));
    m.stop();
}

#[test]
fn deletions_at_the_api_reach_every_tier() {
    if !fuse_available() {
        return;
    }
    let (emu, m) = recent();
    let files = truth(&emu, &m);

    // 1. Deleted, then one of its files read: 404, one lookup confirms, all of it goes.
    let (guid, day) = pick(&emu, &m, &[]);
    let (mine, _) = split(&files, &guid);
    let mut cached = std::fs::File::open(&mine[0]).expect("open");
    let mut all = Vec::new();
    cached.read_to_end(&mut all).expect("read");
    assert_eq!(all, files[&mine[0]]);
    let lookups = requests(&emu, "lookup");
    emu.control("/_emulator/delete", json!({ "guid": guid }));
    assert!(std::fs::read(&mine[1]).is_err(), "a deleted file read");
    wait_until(
        "the 404's interaction erased",
        Duration::from_secs(10),
        || gone(&m, &guid),
    );
    assert!(requests(&emu, "lookup") > lookups, "no confirming lookup");
    // A re-list that began before the deletion may show it once more; the next one
    // (every second here) erases it again.
    wait_until("by-date/<day> without it", Duration::from_secs(10), || {
        !listed(&m, &day, &guid)
    });
    wait_until("the erasure complete", Duration::from_secs(10), || {
        erasures(&m) >= 1
    });
    cached.seek(SeekFrom::Start(0)).expect("seek");
    assert!(
        cached.read_to_end(&mut Vec::new()).is_err(),
        "cached bytes served"
    );

    // 2. Deleted, never read again: the next re-list erases it.
    let (guid2, day2) = pick(&emu, &m, std::slice::from_ref(&guid));
    let (mine2, rest) = split(&files, &guid2);
    let of: HashMap<PathBuf, Vec<u8>> = mine2
        .iter()
        .map(|p| (p.clone(), files[p].clone()))
        .collect();
    read_exactly(&of);
    let mut open = std::fs::File::open(&mine2[0]).expect("open");
    let before = erasures(&m);
    emu.control("/_emulator/delete", json!({ "guid": guid2 }));
    wait_until("the re-list's erasure", Duration::from_secs(20), || {
        !listed(&m, &day2, &guid2)
    });
    wait_until("interactions/<guid> gone", Duration::from_secs(5), || {
        gone(&m, &guid2)
    });
    wait_until("the erasure complete", Duration::from_secs(10), || {
        erasures(&m) > before
    });
    assert!(
        open.read_to_end(&mut Vec::new()).is_err(),
        "cached bytes served"
    );
    let others: HashMap<PathBuf, Vec<u8>> = rest
        .into_iter()
        .filter(|(p, _)| !p.to_string_lossy().contains(&guid))
        .take(6)
        .collect();
    read_exactly(&others);
    drop((open, cached));
    m.stop();
}

/// Content version directories in the disk cache (`<tenant>/v2/<xx>/<interaction>/<version>`).
fn versions_on_disk(cache: &Path) -> usize {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut level = vec![cache.to_path_buf()];
    for _ in 0..5 {
        level = level.iter().flat_map(|p| dirs(p)).collect();
    }
    level.len()
}

/// A content item the API deletes while its interaction stays (a retention rule took
/// the recording): the next re-list erases that file alone — it leaves the directory,
/// an open handle reads nothing (not even the bytes cached), its version leaves the
/// disk cache — and the interaction's other file still reads exactly.
#[test]
fn a_file_the_api_drops_is_erased_alone() {
    if !fuse_available() {
        return;
    }
    let (emu, m) = recent();
    let (guid, _) = pick(&emu, &m, &[]);
    let dir = m.interactions_dir().join(&guid);
    let token = emu.token();
    let keys: Vec<String> = std::fs::read_dir(&dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|k| k != ".interaction.json")
        .collect();
    assert!(keys.len() >= 2, "{keys:?}");
    let (dropped, kept) = (&keys[0], &keys[1]);
    for k in [dropped, kept] {
        let got = std::fs::read(dir.join(k)).expect("read");
        assert!(got == emu.content(&token, &guid, k), "{k} differs");
    }
    let cache = m.cache_dir();
    let mut before = versions_on_disk(&cache);
    wait_until("the disk writes settle", Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(300));
        let now = versions_on_disk(&cache);
        std::mem::replace(&mut before, now) == now && now >= 2
    });
    let mut open = std::fs::File::open(dir.join(dropped)).expect("open");

    emu.control(
        "/_emulator/delete",
        json!({ "guid": guid, "contentKey": dropped }),
    );
    wait_until(
        "the file leaves its directory",
        Duration::from_secs(10),
        || {
            !std::fs::read_dir(&dir)
                .expect("ls")
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy() == dropped.as_str())
        },
    );
    assert!(
        open.read_to_end(&mut Vec::new()).is_err(),
        "an open handle of the dropped file read bytes"
    );
    assert!(std::fs::read(dir.join(dropped)).is_err());
    wait_until(
        "its version leaves the disk",
        Duration::from_secs(10),
        || versions_on_disk(&cache) == before - 1,
    );
    let got = std::fs::read(dir.join(kept)).expect("read the other file");
    assert!(got == emu.content(&token, &guid, kept), "{kept} differs");
    drop(open);
    m.stop();
}
