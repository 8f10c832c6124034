//! A fleet on one Redis: three mounts of one tenant share one request budget and one
//! content cache, and Redis going away is never a reason for a read to fail.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::redis::{self, Redis};
use crate::common::{fuse_available, sh, Emulator, Mount};
use crate::faults::{read_exactly, truth};

fn fleet_mount(emu: &Emulator, redis: &Redis, extra: &[&str]) -> Mount {
    let url = redis.url();
    let mut flags = vec!["--redis", url.as_str()];
    flags.extend_from_slice(extra);
    Mount::start(emu, &flags)
}

/// `grep -rl WORD` over the transcripts of a mount, as relative paths.
fn grep(m: &Mount, word: &str) -> BTreeSet<String> {
    let root = m.interactions_dir();
    let (_, out, err) = sh(&format!(
        "grep -rl --include=transcript {word} '{}'",
        root.display()
    ));
    assert!(err.trim().is_empty(), "grep: {err}");
    out.lines()
        .map(|l| l.trim_start_matches(&*root.to_string_lossy()).to_string())
        .collect()
}

/// The same files as `files` (paths under `from`), under mount `to`.
pub(crate) fn moved(
    files: &HashMap<PathBuf, Vec<u8>>,
    from: &Path,
    to: &Mount,
) -> HashMap<PathBuf, Vec<u8>> {
    files
        .iter()
        .map(|(p, b)| {
            let rel = p.strip_prefix(from).expect("under the mount");
            (to.interactions_dir().join(rel), b.clone())
        })
        .collect()
}

const TENANT: &[&str] = &[
    "--interactions",
    "40",
    "--seed",
    "31",
    "--rate-limit",
    "160",
];

#[test]
fn three_mounts_grepping_at_once_cost_the_requests_of_one() {
    if !fuse_available() || !redis::available() {
        return;
    }
    // One mount alone, for the baseline.
    let alone = Emulator::start(TENANT);
    let m = Mount::start(&alone, &["--max-rpm", "150"]);
    alone.reset_stats();
    let want = grep(&m, "refund");
    let one = alone.stat("content_requests");
    assert!(one >= 10, "{one} transcripts read");
    drop(m);

    let emu = Emulator::start(TENANT);
    let redis = Redis::start();
    let mounts: Vec<Mount> = (0..3)
        .map(|_| fleet_mount(&emu, &redis, &["--max-rpm", "150"]))
        .collect();
    emu.reset_stats();
    let found: Vec<BTreeSet<String>> = std::thread::scope(|s| {
        let greps: Vec<_> = mounts
            .iter()
            .map(|m| s.spawn(|| grep(m, "refund")))
            .collect();
        greps.into_iter().map(|g| g.join().expect("grep")).collect()
    });
    for f in &found {
        assert_eq!(f, &want, "every mount finds the same files");
    }
    let three = emu.stat("content_requests");
    assert_eq!(emu.stat("status_429"), 0, "no 429s");
    assert!(
        three as f64 <= one as f64 * 1.1,
        "three mounts made {three} content requests, one alone {one}"
    );
}

#[test]
fn redis_killed_mid_read_is_no_error_and_sharing_resumes_without_a_remount() {
    if !fuse_available() || !redis::available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "12", "--seed", "32"]);
    let mut redis = Redis::start();
    let a = fleet_mount(&emu, &redis, &[]);
    let b = fleet_mount(&emu, &redis, &[]);
    let files = truth(&emu, &a);
    let root = a.interactions_dir();
    let mut paths: Vec<&PathBuf> = files.keys().collect();
    paths.sort();
    let half = |upper: bool| -> HashMap<PathBuf, Vec<u8>> {
        let (lo, hi) = paths.split_at(paths.len() / 2);
        let part = if upper { hi } else { lo };
        part.iter()
            .map(|p| ((*p).clone(), files[*p].clone()))
            .collect()
    };
    let (first, second) = (half(false), half(true));
    std::thread::scope(|s| {
        s.spawn(|| read_exactly(&first));
        s.spawn(|| read_exactly(&moved(&first, &root, &b)));
        std::thread::sleep(Duration::from_millis(150));
        redis.kill();
    });
    // Redis down: every read still works, from the network.
    read_exactly(&second);
    read_exactly(&moved(&second, &root, &b));

    // Redis back: what one mount fetches, another (without a disk cache of its own)
    // reads from Redis, without any remount of the first two. The filler reads the
    // whole tree: the reader's read-ahead of sibling transcripts (in listing order,
    // across both halves) then finds those in Redis too, whatever made it there
    // before the kill.
    redis.restart();
    std::thread::sleep(Duration::from_secs(3));
    let filler = fleet_mount(&emu, &redis, &["--no-disk-cache"]);
    let reader = fleet_mount(&emu, &redis, &["--no-disk-cache"]);
    read_exactly(&moved(&files, &root, &filler));
    // Writes to Redis are write-behind: let the filler's land (the key count settles).
    let mut last = usize::MAX;
    let settle = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < settle {
        let n = redis.keys().len();
        if n == last {
            break;
        }
        last = n;
        std::thread::sleep(Duration::from_millis(500));
    }
    emu.reset_stats();
    read_exactly(&moved(&second, &root, &reader));
    assert_eq!(
        emu.stat("content_requests"),
        0,
        "sharing resumed after the restart: {}",
        emu.stats()
    );
    read_exactly(&moved(&first, &root, &a));
    read_exactly(&moved(&first, &root, &b));
}

#[test]
fn garbage_in_redis_is_never_served() {
    if !fuse_available() || !redis::available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "10", "--seed", "33"]);
    let redis = Redis::start();
    let a = fleet_mount(&emu, &redis, &["--no-disk-cache", "--max-rpm", "600"]);
    let files = truth(&emu, &a);
    let root = a.interactions_dir();
    read_exactly(&files);
    drop(a);
    let keys = redis.keys();
    assert!(keys.len() >= files.len(), "{} keys in Redis", keys.len());
    for k in &keys {
        redis.command(&["SET", k, "garbage, not a block"]);
    }
    let b = fleet_mount(&emu, &redis, &["--no-disk-cache", "--max-rpm", "600"]);
    emu.reset_stats();
    read_exactly(&moved(&files, &root, &b));
    assert!(
        emu.stat("content_requests") >= 1,
        "garbage was refetched, not served"
    );
}

#[test]
fn a_fleet_of_three_keeps_to_its_budget() {
    if !fuse_available() || !redis::available() {
        return;
    }
    // The emulator refuses more than 64 requests in any 60 s: 60 plus a small burst.
    let emu = Emulator::start(&[
        "--interactions",
        "200",
        "--seed",
        "34",
        "--rate-limit",
        "64",
    ]);
    let redis = Redis::start();
    let mounts: Vec<Mount> = (0..3)
        .map(|_| fleet_mount(&emu, &redis, &["--max-rpm", "60", "--no-disk-cache"]))
        .collect();
    emu.reset_stats();
    let started = Instant::now();
    let mut readers = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        // Each mount reads its own third of the transcripts: demand far above 60/min.
        let root = m.interactions_dir();
        use std::os::unix::process::CommandExt;
        readers.push(std::process::Command::new("sh")
            .process_group(0)
            .arg("-c")
            .arg(format!(
                "ls '{r}' | awk 'NR % 3 == {i}' | while read g; do cat '{r}'/$g/* >/dev/null 2>&1; done",
                r = root.display()
            ))
            .spawn()
            .expect("reader"));
    }
    // Requests the emulator has seen, sampled twice a second for 75 s.
    let sent = |s: &serde_json::Value| {
        [
            "search_requests",
            "interaction_requests",
            "content_requests",
        ]
        .iter()
        .map(|k| s[*k].as_u64().unwrap_or(0))
        .sum::<u64>()
    };
    let mut samples: Vec<(Duration, u64)> = Vec::new();
    while started.elapsed() < Duration::from_secs(75) {
        samples.push((started.elapsed(), sent(&emu.stats())));
        std::thread::sleep(Duration::from_millis(500));
    }
    let last = emu.stats();
    for mut r in readers {
        // The whole group: the shell and the `cat` it is running.
        unsafe { libc::kill(-(r.id() as i32), libc::SIGKILL) };
        let _ = r.wait();
    }
    assert_eq!(
        last["status_429"].as_u64().unwrap_or(0),
        0,
        "the fleet went over 64 in some 60 s"
    );
    // Every 60 s window lies within two samples at most 61 s apart, so the most
    // requests between such samples bounds the most in any 60 s.
    let most = samples
        .iter()
        .flat_map(|a| {
            samples
                .iter()
                .filter(move |b| b.0 > a.0 && b.0 - a.0 <= Duration::from_secs(61))
                .map(move |b| b.1 - a.1)
        })
        .max()
        .unwrap_or(0);
    let total = samples.last().map_or(0, |s| s.1);
    eprintln!("fleet of three at --max-rpm 60: {total} requests in 75 s, at most {most} in 60 s");
    assert!(most <= 62, "{most} requests in some 60 s at --max-rpm 60");
    let first_minute = samples
        .iter()
        .take_while(|s| s.0 <= Duration::from_secs(60))
        .last()
        .map_or(0, |s| s.1);
    assert!(
        first_minute >= 40,
        "{first_minute} requests in the first minute: the budget was not used"
    );
    assert!(
        total > first_minute,
        "{total} requests in 75 s: the next window never opened"
    );
}

/// The shared tier in `vccfs status --json` of `m`: (healthy, hits).
fn shared_tier(m: &Mount) -> (bool, u64) {
    let s = m.status();
    let t = s["tiers"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["tier"] == "shared"))
        .cloned()
        .unwrap_or_else(|| panic!("no shared tier: {s}"));
    (t["healthy"] == true, t["hits"].as_u64().unwrap_or(0))
}

/// Mounts on a Redis that speaks TLS only, behind a CA of its own: with `--redis-ca`
/// what one fetched the other reads from Redis; without it the handshake fails, the
/// tier is a miss (unhealthy), and reads are still exact.
#[test]
fn a_fleet_on_a_tls_redis_behind_a_private_ca_shares_its_cache() {
    if !fuse_available() || !redis::available() {
        return;
    }
    let Some(redis) = Redis::start_tls() else {
        return;
    };
    let ca = redis.ca_pem().expect("a CA");
    let ca = ca.to_string_lossy().to_string();
    let emu = Emulator::start(TENANT);
    let flags = ["--no-disk-cache", "--redis-ca", ca.as_str()];
    let a = fleet_mount(&emu, &redis, &flags);
    // Four files, their bytes asked of the API once (the tenant's budget is small).
    let token = emu.token();
    let files: HashMap<PathBuf, Vec<u8>> = std::fs::read_dir(a.interactions_dir())
        .expect("ls")
        .filter_map(|e| e.ok())
        .take(4)
        .map(|e| {
            let guid = e.file_name().to_string_lossy().to_string();
            let key = std::fs::read_dir(e.path())
                .expect("ls")
                .filter_map(|f| f.ok())
                .map(|f| f.file_name().to_string_lossy().to_string())
                .find(|k| k != ".interaction.json")
                .expect("a content file");
            let bytes = emu.content(&token, &guid, &key);
            (e.path().join(key), bytes)
        })
        .collect();
    read_exactly(&files);
    // The blocks reach Redis in the background.
    std::thread::sleep(Duration::from_secs(2));
    let b = fleet_mount(&emu, &redis, &flags);
    read_exactly(&moved(&files, &a.interactions_dir(), &b));
    let (healthy, hits) = shared_tier(&b);
    assert!(
        healthy && hits > 0,
        "TLS through --redis-ca: healthy {healthy}, {hits} hits"
    );
    // Without the CA: the system's roots do not know it.
    let c = fleet_mount(&emu, &redis, &["--no-disk-cache"]);
    read_exactly(&moved(&files, &a.interactions_dir(), &c));
    assert_eq!(shared_tier(&c).1, 0, "blocks read over an unverified TLS");
    for m in [c, b, a] {
        m.stop();
    }
}
