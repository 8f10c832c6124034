//! End-to-end: a real FUSE mount of a real emulator, exercised with real programs:
//! sizes and times, exact bytes through grep, rsync, media players, O_DIRECT, errors
//! and xattrs. (Starting and stopping a mount: `lifecycle`.)

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{fuse_available, sh, which, Emulator, Mount};
use serde_json::Value;

pub(crate) const SMALL_TENANT: &[&str] = &["--interactions", "40", "--seed", "7"];

/// (guid, key) → contentLength / lastModified, from the API itself.
fn listing(emu: &Emulator, m: &Mount) -> Vec<Value> {
    let token = emu.token();
    emu.interactions(&token, m.from, m.to)
}

pub(crate) fn ts(v: &Value) -> i64 {
    let s = v.as_str().expect("timestamp string");
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .expect("rfc3339")
        .unix_timestamp()
}

#[test]
fn ls_lr_shows_exact_sizes_and_mtimes_without_content_requests() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let m = Mount::start(&emu, &[]);
    let items = listing(&emu, &m);
    assert!(
        items.len() >= 30,
        "tenant has {} interactions in the window",
        items.len()
    );
    emu.reset_stats();

    let (ok, out, err) = sh(&format!("ls -lR {}", m.path.display()));
    assert!(ok, "ls -lR failed: {err}");
    let mut files_checked = 0;
    for i in &items {
        let guid = i["guid"].as_str().expect("guid");
        let dir = m.interactions_dir().join(guid);
        assert!(out.contains(guid), "ls -lR does not show {guid}");
        let dmeta = std::fs::metadata(&dir).expect("interaction dir");
        assert!(dmeta.is_dir());
        assert_eq!(dmeta.mtime(), ts(&i["start"]), "dir mtime of {guid}");
        assert_eq!(dmeta.mode() & 0o777, 0o555);
        for c in i["content"].as_array().expect("content") {
            let key = c["contentKey"].as_str().expect("key");
            let meta =
                std::fs::metadata(dir.join(key)).unwrap_or_else(|e| panic!("{guid}/{key}: {e}"));
            assert_eq!(
                meta.len(),
                c["contentLength"].as_u64().expect("len"),
                "size of {guid}/{key}"
            );
            assert_eq!(
                meta.mtime(),
                ts(&c["lastModified"]),
                "mtime of {guid}/{key}"
            );
            assert_eq!(meta.mode() & 0o777, 0o444);
            assert_eq!(meta.blocks(), meta.len().div_ceil(512));
            // SAFETY: getuid has no preconditions.
            assert_eq!(meta.uid(), unsafe { libc::getuid() });
            files_checked += 1;
        }
        let json: Value = serde_json::from_slice(
            &std::fs::read(dir.join(".interaction.json")).expect("meta json"),
        )
        .expect("meta json parses");
        assert_eq!(json["guid"], i["guid"]);
        assert_eq!(json["content"], i["content"]);
    }
    assert!(files_checked > 100, "only {files_checked} files");
    let s = emu.stats();
    assert_eq!(
        s["content_requests"], 0,
        "ls -lR/stat/.interaction.json must not download content: {s}"
    );
    assert_eq!(
        s["interaction_requests"], 0,
        "listed interactions need no per-guid request: {s}"
    );

    // Inode numbers are stable across remounts.
    let probe = items[0]["guid"].as_str().expect("guid");
    let key = items[0]["content"][0]["contentKey"].as_str().expect("key");
    let ino1 = std::fs::metadata(m.interactions_dir().join(probe).join(key))
        .expect("stat")
        .ino();
    let from = m.from;
    let to = m.to;
    drop(m);
    let m2 = Mount::start_window(&emu, from, to, &[]);
    let ino2 = std::fs::metadata(m2.interactions_dir().join(probe).join(key))
        .expect("stat")
        .ino();
    assert_eq!(ino1, ino2, "inode numbers must survive a remount");
}

#[test]
fn every_file_is_byte_exact_and_grep_and_rsync_behave() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let m = Mount::start(&emu, &[]);
    let token = emu.token();
    let items = listing(&emu, &m);
    let truth_dir = tempfile::tempdir().expect("tempdir");
    let mut truth: HashMap<(String, String), Vec<u8>> = HashMap::new();
    for i in &items {
        let guid = i["guid"].as_str().expect("guid");
        std::fs::create_dir_all(truth_dir.path().join(guid)).expect("mkdir");
        for c in i["content"].as_array().expect("content") {
            let key = c["contentKey"].as_str().expect("key");
            let bytes = emu.content(&token, guid, key);
            std::fs::write(truth_dir.path().join(guid).join(key), &bytes).expect("write truth");
            truth.insert((guid.to_string(), key.to_string()), bytes);
        }
    }

    // cmp every file through the mount against its direct download.
    emu.reset_stats();
    for (guid, key) in truth.keys() {
        let (ok, _, err) = sh(&format!(
            "cmp {}/{guid}/{key} {}/{guid}/{key}",
            m.interactions_dir().display(),
            truth_dir.path().display()
        ));
        assert!(ok, "cmp {guid}/{key}: {err}");
    }
    let s = emu.stats();
    let small_files = truth.values().filter(|b| b.len() <= 256 << 10).count() as u64;
    assert!(
        s["content_requests"].as_u64().unwrap_or(0) >= small_files,
        "sanity: reads went to the emulator: {s}"
    );

    // grep -rl finds exactly the files that contain the word.
    let word = [
        "refund", "warranty", "password", "invoice", "delivery", "cancel",
    ]
    .into_iter()
    .find(|w| {
        let n = truth.values().filter(|b| contains(b, w.as_bytes())).count();
        n > 0 && n < items.len()
    })
    .expect("a word found in some transcripts and not others");
    let mut expected: BTreeSet<String> = truth
        .iter()
        .filter(|(_, b)| contains(b, word.as_bytes()))
        .map(|((g, k), _)| format!("{}/{g}/{k}", m.interactions_dir().display()))
        .collect();
    for i in &items {
        let p = m
            .interactions_dir()
            .join(i["guid"].as_str().expect("guid"))
            .join(".interaction.json");
        if contains(&std::fs::read(&p).expect("meta"), word.as_bytes()) {
            expected.insert(p.display().to_string());
        }
    }
    let (_, out, err) = sh(&format!(
        "grep -rl {word} {}",
        m.interactions_dir().display()
    ));
    let got: BTreeSet<String> = out.lines().map(str::to_string).collect();
    assert_eq!(got, expected, "grep -rl {word}: {err}");

    // rsync -a copies everything exactly; a second rsync transfers nothing and
    // downloads nothing.
    let backup = tempfile::tempdir().expect("tempdir");
    let (ok, _, err) = sh(&format!(
        "rsync -a {}/ {}/",
        m.path.display(),
        backup.path().display()
    ));
    assert!(ok, "rsync: {err}");
    for ((guid, key), bytes) in &truth {
        let copy = std::fs::read(backup.path().join("interactions").join(guid).join(key))
            .expect("backup file");
        assert!(copy == *bytes, "backup of {guid}/{key} differs");
    }
    emu.reset_stats();
    let (ok, out, err) = sh(&format!(
        "rsync -a --stats {}/ {}/",
        m.path.display(),
        backup.path().display()
    ));
    assert!(ok, "second rsync: {err}");
    assert!(
        out.contains("Number of regular files transferred: 0"),
        "second rsync transferred files:\n{out}"
    );
    let s = emu.stats();
    assert_eq!(
        s["content_requests"], 0,
        "second rsync downloaded content: {s}"
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn media_players_probe_decode_and_seek() {
    if !fuse_available() {
        return;
    }
    if !which("ffprobe") || !which("ffmpeg") {
        assert!(std::env::var_os("CI").is_none(), "ffmpeg is required in CI");
        eprintln!("SKIP: ffprobe/ffmpeg not installed");
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let m = Mount::start(&emu, &[]);
    let token = emu.token();
    let items = listing(&emu, &m);
    let find = |kind: &str| {
        items.iter().find_map(|i| {
            i["content"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == kind)
                .map(|c| {
                    (
                        i["guid"].as_str().unwrap_or_default().to_string(),
                        c["contentKey"].as_str().unwrap_or_default().to_string(),
                        c["contentLength"].as_u64().unwrap_or(0),
                    )
                })
        })
    };
    let (guid, key, len) = find("callRecording").expect("a call recording");
    let wav = m.interactions_dir().join(&guid).join(&key);
    let (ok, out, err) = sh(&format!(
        "ffprobe -v error -show_entries format=duration -of default=nw=1:nk=1 {}",
        wav.display()
    ));
    assert!(ok, "ffprobe wav: {err}");
    let duration: f64 = out.trim().parse().expect("duration");
    let expected = (len - 44) as f64 / 16000.0;
    assert!(
        (duration - expected).abs() < 0.01,
        "duration {duration} vs {expected}"
    );
    let (ok, _, err) = sh(&format!("ffmpeg -v error -i {} -f null -", wav.display()));
    assert!(ok && err.trim().is_empty(), "ffmpeg decode: {err}");

    let (wguid, wkey, _) = find("screenRecording")
        .or_else(|| find("videoRecording"))
        .expect("a webm");
    let webm = m.interactions_dir().join(&wguid).join(&wkey);
    let (ok, out, err) = sh(&format!(
        "ffprobe -v error -show_entries stream=codec_name -of default=nw=1:nk=1 {}",
        webm.display()
    ));
    assert!(ok, "ffprobe webm: {err}");
    assert_eq!(out.trim(), "vp8");

    // dd at random offsets matches the source.
    let truth = emu.content(&token, &guid, &key);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let block = x % (truth.len() as u64 / 4096);
        let out = std::process::Command::new("dd")
            .arg(format!("if={}", wav.display()))
            .args([
                "bs=4096",
                &format!("skip={block}"),
                "count=1",
                "status=none",
            ])
            .output()
            .expect("dd");
        let start = (block * 4096) as usize;
        let end = (start + 4096).min(truth.len());
        assert!(out.stdout == truth[start..end], "dd block {block} differs");
    }
}

#[test]
fn concurrent_readers_of_one_file_share_each_block_fetch() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let m = Mount::start(&emu, &[]);
    let token = emu.token();
    let (guid, key, len) = largest_file(&listing(&emu, &m));
    assert!(len > 2 << 20, "largest file is only {len} bytes");
    let truth = emu.content(&token, &guid, &key);
    emu.reset_stats();
    let path = m.interactions_dir().join(&guid).join(&key);
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || std::fs::read(p).expect("read"))
        })
        .collect();
    for r in readers {
        let got = r.join().expect("reader");
        assert!(got == truth, "a concurrent reader saw different bytes");
    }
    let s = emu.stats();
    assert_eq!(
        s["bytes_sent"].as_u64(),
        Some(len),
        "8 readers must fetch each byte once: {s}"
    );
    let blocks = len.div_ceil(256 << 10);
    assert!(
        s["content_requests"].as_u64().unwrap_or(u64::MAX) <= blocks,
        "{s}"
    );
}

/// (guid, key, length) of the largest file listed.
fn largest_file(items: &[Value]) -> (String, String, u64) {
    items
        .iter()
        .flat_map(|i| {
            let g = i["guid"].as_str().unwrap_or_default().to_string();
            i["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| {
                    (
                        g.clone(),
                        c["contentKey"].as_str().unwrap_or_default().to_string(),
                        c["contentLength"].as_u64().unwrap_or(0),
                    )
                })
        })
        .max_by_key(|(_, _, l)| *l)
        .expect("a file")
}

/// A file much larger than the cache's eighth is streamed: the block cache hands it to
/// the kernel's page cache as it goes (the daemon stays small), a re-read costs
/// nothing, and an O_DIRECT reader (which the page cache does not serve) still gets
/// exact bytes, then finds them in the block cache.
#[test]
fn streamed_files_are_exact_through_the_page_cache_and_with_o_direct() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "6", "--seed", "5", "--big-file-mib", "48"]);
    // Memory and the page cache only: with the disk tier the O_DIRECT reads below
    // would be served from disk, and they must show they reached the daemon.
    let m = Mount::start(&emu, &["--cache-size", "64M", "--no-disk-cache"]);
    let token = emu.token();
    let (guid, key, len) = largest_file(&listing(&emu, &m));
    assert_eq!(len, 48 << 20, "the big file");
    let truth = emu.content(&token, &guid, &key);
    let path = m.interactions_dir().join(&guid).join(&key);
    let content_requests = || emu.stats()["content_requests"].as_u64().unwrap_or(u64::MAX);

    emu.reset_stats();
    assert!(
        std::fs::read(&path).expect("read") == truth,
        "streamed read"
    );
    let streamed = content_requests();
    assert!(streamed <= 48, "{streamed} requests for 48 MiB");
    let rss = m.peak_rss_mib();
    assert!(rss <= 64.0 + 64.0, "peak RSS {rss} MiB with a 64 MiB cache");

    emu.reset_stats();
    assert!(std::fs::read(&path).expect("re-read") == truth);
    assert_eq!(content_requests(), 0, "a re-read comes from the page cache");

    let out = m.dir.path().join("direct.bin");
    let direct = |what: &str| {
        let (ok, _, err) = sh(&format!(
            "dd if='{}' of='{}' iflag=direct bs=1M status=none",
            path.display(),
            out.display()
        ));
        assert!(ok, "{what}: {err}");
        assert!(
            std::fs::read(&out).expect("dd output") == truth,
            "{what}: bytes differ"
        );
    };
    emu.reset_stats();
    direct("first O_DIRECT read");
    assert!(content_requests() > 0, "O_DIRECT bypasses the page cache");
    emu.reset_stats();
    direct("second O_DIRECT read");
    assert_eq!(
        content_requests(),
        0,
        "what O_DIRECT read stays in the block cache"
    );
}

fn errno_of(r: std::io::Result<impl Sized>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().unwrap_or(-1),
    }
}

#[test]
fn read_only_unknown_names_and_by_date() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let m = Mount::start(&emu, &[]);
    let items = listing(&emu, &m);
    let guid = items[0]["guid"].as_str().expect("guid").to_string();
    let key = items[0]["content"][0]["contentKey"]
        .as_str()
        .expect("key")
        .to_string();
    let dir = m.interactions_dir().join(&guid);
    let file = dir.join(&key);
    // Everything listed first: what follows is about names, not listing.
    let listed = std::fs::read_dir(m.interactions_dir()).expect("ls").count();
    assert_eq!(listed, items.len());
    emu.reset_stats();

    assert_eq!(
        errno_of(std::fs::OpenOptions::new().write(true).open(&file)),
        libc::EROFS
    );
    assert_eq!(errno_of(std::fs::write(dir.join("new"), b"x")), libc::EROFS);
    assert_eq!(errno_of(std::fs::create_dir(dir.join("d"))), libc::EROFS);
    assert_eq!(errno_of(std::fs::remove_file(&file)), libc::EROFS);
    assert_eq!(errno_of(std::fs::rename(&file, dir.join("x"))), libc::EROFS);
    let (ok, _, _) = sh(&format!("touch {}", file.display()));
    assert!(!ok, "touch must fail");
    assert_eq!(
        errno_of(std::fs::metadata(dir.join("noSuchKey"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(std::fs::metadata(m.interactions_dir().join("not-a-guid"))),
        libc::ENOENT
    );
    assert_eq!(
        errno_of(std::fs::metadata(m.path.join("by-date").join("2026-13-45"))),
        libc::ENOENT
    );
    let s = emu.stats();
    assert_eq!(
        s["interaction_requests"], 0,
        "names that cannot exist cost no request: {s}"
    );
    assert_eq!(s["content_requests"], 0, "{s}");

    // An unknown, well-formed guid: one GET, then remembered.
    let unknown = m
        .interactions_dir()
        .join("00000000-0000-4000-8000-000000000000");
    assert_eq!(errno_of(std::fs::metadata(&unknown)), libc::ENOENT);
    assert_eq!(errno_of(std::fs::metadata(&unknown)), libc::ENOENT);
    assert_eq!(
        emu.stat("interaction_requests"),
        1,
        "negative lookups are cached"
    );

    // by-date lists exactly one day's interactions, as symlinks into /interactions.
    let day = &items[items.len() / 2]["start"].as_str().expect("start")[..10];
    let expected: BTreeSet<String> = items
        .iter()
        .filter(|i| i["start"].as_str().is_some_and(|s| s.starts_with(day)))
        .map(|i| i["guid"].as_str().unwrap_or_default().to_string())
        .collect();
    let day_dir = m.path.join("by-date").join(day);
    let got: BTreeSet<String> = std::fs::read_dir(&day_dir)
        .expect("read day dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(got, expected);
    let g = got.iter().next().expect("one");
    let link = std::fs::read_link(day_dir.join(g)).expect("readlink");
    assert_eq!(link, Path::new("../../interactions").join(g));
    assert!(std::fs::metadata(day_dir.join(g))
        .expect("follow link")
        .is_dir());
    let other_day = items
        .iter()
        .find(|i| i["start"].as_str().is_some_and(|s| !s.starts_with(day)))
        .and_then(|i| i["guid"].as_str())
        .expect("an interaction of another day");
    assert_eq!(
        errno_of(std::fs::symlink_metadata(day_dir.join(other_day))),
        libc::ENOENT,
        "an interaction of another day is not under this one"
    );

    // Extended attributes.
    assert!(!xattr(&file, "user.vcc.contentType").is_empty());
    assert_eq!(
        xattr(&file, "user.vcc.type"),
        items[0]["content"][0]["type"].as_str().expect("type")
    );
    assert_eq!(
        xattr(&dir, "user.vcc.direction"),
        items[0]["direction"].as_str().expect("direction")
    );
}

fn xattr(path: &Path, name: &str) -> String {
    use std::ffi::CString;
    let p = CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    let n = CString::new(name).expect("name");
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid NUL-terminated strings and a buffer of the stated length.
    let len = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(
        len >= 0,
        "getxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    buf.truncate(len as usize);
    String::from_utf8(buf).expect("utf8")
}
