//! At rest, sealed: after a real mount read a whole tenant through the disk tier and a
//! real Redis, nothing kept — no file under the cache directory, no Redis value —
//! holds a 64-byte run of any file's content or any phone number of the listing; a
//! remount still serves every byte exactly with no content request; and cache files
//! moved, damaged or sealed for another tenant are misses, never served.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::redis::{self, Redis};
use crate::common::{fuse_available, Emulator, Mount};
use crate::faults::{read_exactly, truth};
use crate::fleet::moved;
pub(crate) use crate::persist::files_below;

const TENANT: &[&str] = &["--interactions", "8", "--seed", "23"];

/// Byte strings to look for, found with a 4-byte prefix filter (a bitmap) and then
/// compared whole: fast enough for tens of MiB in a debug build.
pub(crate) struct Needles {
    bits: Vec<u64>,
    by_prefix: HashMap<u32, Vec<usize>>,
    needles: Vec<(String, Vec<u8>)>,
    /// Needles found where they may be (in other interactions' content): not looked for.
    common: HashSet<usize>,
}

const BITS: u32 = 27;

fn slot(prefix: u32) -> usize {
    (prefix.wrapping_mul(0x9E37_79B1) >> (32 - BITS)) as usize
}

impl Needles {
    pub(crate) fn new() -> Needles {
        Needles {
            bits: vec![0; 1 << (BITS - 6)],
            by_prefix: HashMap::new(),
            needles: Vec::new(),
            common: HashSet::new(),
        }
    }

    fn add(&mut self, what: String, needle: Vec<u8>) {
        assert!(needle.len() >= 4, "{what}: too short to look for");
        let p = u32::from_le_bytes([needle[0], needle[1], needle[2], needle[3]]);
        let s = slot(p);
        self.bits[s / 64] |= 1 << (s % 64);
        self.by_prefix
            .entry(p)
            .or_default()
            .push(self.needles.len());
        self.needles.push((what, needle));
    }

    /// Every 64-byte run of `content` contains one of its 32-byte chunks at a multiple
    /// of 32: look for those (skipping runs of one byte, which anything may hold).
    pub(crate) fn add_content(&mut self, name: &str, content: &[u8]) {
        for (k, chunk) in content.chunks_exact(32).enumerate() {
            if chunk.iter().all(|&b| b == chunk[0]) {
                continue;
            }
            self.add(format!("{name} @{}", k * 32), chunk.to_vec());
        }
    }

    /// Stop looking for the needles that `hay` holds (text that other interactions'
    /// files share, such as a JSON template or a WAV header).
    pub(crate) fn allow_found_in(&mut self, hay: &[u8]) {
        while let Some(n) = self.find_index(hay) {
            self.common.insert(n);
        }
    }

    /// The first needle found in `hay`.
    pub(crate) fn find(&self, hay: &[u8]) -> Option<&str> {
        self.find_index(hay).map(|n| self.needles[n].0.as_str())
    }

    fn find_index(&self, hay: &[u8]) -> Option<usize> {
        for i in 0..hay.len().saturating_sub(3) {
            let p = u32::from_le_bytes([hay[i], hay[i + 1], hay[i + 2], hay[i + 3]]);
            let s = slot(p);
            if self.bits[s / 64] & (1 << (s % 64)) == 0 {
                continue;
            }
            for &n in self.by_prefix.get(&p).into_iter().flatten() {
                if !self.common.contains(&n) && hay[i..].starts_with(&self.needles[n].1) {
                    return Some(n);
                }
            }
        }
        None
    }
}

/// Wait until the cache directory stops changing (write-behind landed).
pub(crate) fn settle(cache: &Path) {
    let mut last = (usize::MAX, 0u64);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let files = files_below(cache);
        let bytes = files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let now = (files.len(), bytes);
        if now == last && bytes > 0 {
            return;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every string value in a Redis, read with the redis crate (binary-safe).
pub(crate) fn redis_values(url: &str) -> Vec<(String, Vec<u8>)> {
    let client = ::redis::Client::open(url).expect("redis url");
    let mut conn = client.get_connection().expect("connect to redis");
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("*")
        .query(&mut conn)
        .expect("KEYS");
    let mut out = Vec::new();
    for k in keys {
        let kind: String = ::redis::cmd("TYPE").arg(&k).query(&mut conn).expect("TYPE");
        let v: Vec<u8> = match kind.as_str() {
            "string" => ::redis::cmd("GET").arg(&k).query(&mut conn).expect("GET"),
            "zset" => {
                let all: Vec<Vec<u8>> = ::redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .expect("ZRANGE");
                all.concat()
            }
            "list" => {
                let all: Vec<Vec<u8>> = ::redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query(&mut conn)
                    .expect("LRANGE");
                all.concat()
            }
            _ => continue,
        };
        out.push((k, v));
    }
    out
}

#[test]
fn nothing_kept_on_disk_or_in_redis_shows_content_or_a_phone_number() {
    if !fuse_available() || !redis::available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let rd = Redis::start();
    let keep = tempfile::tempdir().expect("tempdir");
    let cache = keep.path().join("cache");
    let cache_arg = cache.to_string_lossy().to_string();
    let url = rd.url();
    let flags = ["--cache-dir", &cache_arg, "--redis", &url];
    let m = Mount::start(&emu, &flags);
    let files = truth(&emu, &m);
    assert!(files.len() >= 8, "a tenant with files");
    read_exactly(&files);
    // Listed days are saved too: walk the tree so every day is listed and kept.
    let n = std::fs::read_dir(m.path.join("by-date"))
        .expect("by-date")
        .count();
    assert!(n > 0);
    settle(&cache);
    let window = (m.from, m.to);
    let first = m.interactions_dir();
    m.stop();

    let mut needles = Needles::new();
    for (path, bytes) in &files {
        needles.add_content(&path.display().to_string(), bytes);
    }
    let token = emu.token();
    let mut numbers = HashSet::new();
    for i in emu.interactions(&token, window.0, window.1) {
        for field in ["connectFrom", "connectTo"] {
            if let Some(n) = i[field].as_str() {
                numbers.insert(n.to_string());
            }
        }
    }
    assert!(!numbers.is_empty(), "the listing has phone numbers");
    for n in &numbers {
        needles.add(format!("phone number {n}"), n.as_bytes().to_vec());
    }

    let kept = files_below(&cache);
    let kept_bytes: u64 = kept
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let content_bytes: u64 = files.values().map(|v| v.len() as u64).sum();
    assert!(
        kept_bytes >= content_bytes,
        "the disk holds every file ({kept_bytes} bytes kept, {content_bytes} read)"
    );
    assert!(
        kept.iter().any(|p| p.to_string_lossy().contains("catalog")),
        "the catalog is saved: {kept:?}"
    );
    for p in &kept {
        let bytes = std::fs::read(p).expect("read a cache file");
        if let Some(what) = needles.find(&bytes) {
            panic!("{} holds {what} in plain", p.display());
        }
    }
    let values = redis_values(&url);
    let redis_bytes: usize = values.iter().map(|(_, v)| v.len()).sum();
    assert!(
        redis_bytes as u64 >= content_bytes,
        "Redis holds every file ({redis_bytes} bytes)"
    );
    for (k, v) in &values {
        if let Some(what) = needles.find(v) {
            panic!("Redis key {k} holds {what} in plain");
        }
        if let Some(what) = needles.find(k.as_bytes()) {
            panic!("Redis key name {k} holds {what}");
        }
    }

    // A remount reads every byte exactly from what was kept: no content request.
    emu.reset_stats();
    let m = Mount::start(&emu, &flags);
    read_exactly(&moved(&files, &first, &m));
    let content = emu.stat("content_requests");
    assert_eq!(content, 0, "a remount fetched content again");
    m.stop();
}

/// Swap two files of one kind (the two largest, say) in place.
fn swap(a: &Path, b: &Path) {
    let (x, y) = (
        std::fs::read(a).expect("read a"),
        std::fs::read(b).expect("read b"),
    );
    std::fs::write(a, y).expect("write a");
    std::fs::write(b, x).expect("write b");
}

#[test]
fn moved_damaged_or_foreign_cache_files_are_misses_with_exact_bytes() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let keep = tempfile::tempdir().expect("tempdir");
    let cache = keep.path().join("cache");
    let cache_arg = cache.to_string_lossy().to_string();
    let m = Mount::start(&emu, &["--cache-dir", &cache_arg]);
    let files = truth(&emu, &m);
    read_exactly(&files);
    settle(&cache);
    let first = m.interactions_dir();
    m.stop();

    // The content files kept (not the catalog, not bookkeeping), largest first.
    let mut kept: Vec<(u64, PathBuf)> = files_below(&cache)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("catalog"))
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (m.len(), p)))
        .filter(|(len, _)| *len > 4096)
        .collect();
    kept.sort();
    kept.reverse();
    assert!(kept.len() >= 4, "content kept on disk: {kept:?}");
    // Two files of two versions swapped; a bit flipped in a third.
    swap(&kept[0].1, &kept[1].1);
    let mut raw = std::fs::read(&kept[2].1).expect("read");
    let mid = raw.len() / 2;
    raw[mid] ^= 0x04;
    std::fs::write(&kept[2].1, raw).expect("write");

    // Files sealed for another tenant (another emulator: same guids, same bytes, its
    // own API URL, so its own tenant and key) put where this tenant's would be.
    let other = Emulator::start(TENANT);
    let other_keep = tempfile::tempdir().expect("tempdir");
    let other_cache = other_keep.path().join("cache");
    let oc = other_cache.to_string_lossy().to_string();
    let om = Mount::start(&other, &["--cache-dir", &oc]);
    read_exactly(&truth(&other, &om));
    settle(&other_cache);
    om.stop();
    let tenant_dir = |c: &Path| -> PathBuf {
        std::fs::read_dir(c)
            .expect("cache root")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir())
            .expect("a tenant directory")
    };
    let (mine, theirs) = (tenant_dir(&cache), tenant_dir(&other_cache));
    let mut planted = 0;
    for p in files_below(&theirs) {
        let Ok(rel) = p.strip_prefix(&theirs) else {
            continue;
        };
        let to = mine.join(rel);
        let content = rel.components().any(|c| c.as_os_str() == "v2");
        if !content || !to.parent().is_some_and(Path::exists) {
            continue;
        }
        if std::fs::copy(&p, &to).is_ok() {
            planted += 1;
        }
    }
    // Under keyed names the other tenant's paths differ: plant its files at ours.
    if planted == 0 {
        let theirs_files: Vec<PathBuf> = files_below(&theirs)
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains("catalog"))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 4096))
            .collect();
        for (target, source) in kept[3..].iter().map(|(_, p)| p).zip(&theirs_files) {
            std::fs::copy(source, target).expect("plant a foreign file");
            planted += 1;
        }
    }
    assert!(planted > 0, "foreign files planted");

    emu.reset_stats();
    let m = Mount::start(&emu, &["--cache-dir", &cache_arg]);
    read_exactly(&moved(&files, &first, &m));
    let refetched = emu.stat("content_requests");
    assert!(refetched > 0, "the damaged files were fetched again");
    let out = std::process::Command::new(crate::common::BIN)
        .args(["status", "--json"])
        .arg(&m.path)
        .output()
        .expect("vccfs status --json");
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    let rejected: u64 = s["tiers"]
        .as_array()
        .expect("tiers")
        .iter()
        .filter(|t| t["tier"] == "disk")
        .map(|t| t["rejected"].as_u64().unwrap_or(0))
        .sum();
    assert!(rejected >= 3, "rejections counted: {s}");
    m.stop();
}
