//! Persistence on real mounts: what was fetched is kept on disk across remounts,
//! crashes and damage, within its cap, private, and never served stale.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{fuse_available, sh, Emulator, Mount};
use crate::faults::{read_exactly, timed_read, truth};

const TENANT: &[&str] = &["--interactions", "12", "--seed", "21"];

/// Every regular file below `dir`.
pub(crate) fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Block files of the disk tier (not the lock, not the saved catalog).
fn block_files(cache: &Path) -> Vec<PathBuf> {
    files_below(cache)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "v2"))
        .collect()
}

/// Wait until the disk tier's writes have landed (the file count stops growing).
fn settle(cache: &Path) {
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let n = block_files(cache).len();
        if n == last && n > 0 {
            return;
        }
        last = n;
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn remount(emu: &Emulator, cache: &Path) -> Mount {
    remount_with(emu, cache, &[])
}

fn remount_with(emu: &Emulator, cache: &Path, extra: &[&str]) -> Mount {
    let dir = cache.to_string_lossy().to_string();
    let mut args = vec!["--cache-dir", &dir];
    args.extend_from_slice(extra);
    Mount::start(emu, &args)
}

/// A cache directory (in the returned tempdir, as `cache`) that holds every file of
/// `emu`'s tree, read once by a mount that is gone now; and the tree's ground truth.
fn filled_cache(emu: &Emulator) -> (tempfile::TempDir, HashMap<PathBuf, Vec<u8>>) {
    filled_cache_with(emu, &[])
}

fn filled_cache_with(
    emu: &Emulator,
    extra: &[&str],
) -> (tempfile::TempDir, HashMap<PathBuf, Vec<u8>>) {
    let keep = tempfile::tempdir().expect("tempdir");
    let cache = keep.path().join("cache");
    let m = remount_with(emu, &cache, extra);
    let files = truth(emu, &m);
    read_exactly(&files);
    settle(&cache);
    m.stop();
    (keep, files)
}

#[test]
fn a_remount_reads_everything_from_disk_with_zero_content_requests() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let (keep, _) = filled_cache(&emu);
    let cache = keep.path().join("cache");

    let m = remount(&emu, &cache);
    let files = truth(&emu, &m);
    emu.reset_stats();
    read_exactly(&files);
    assert_eq!(
        emu.stat("content_requests"),
        0,
        "a remount fetched content again"
    );

    // Nothing under the cache is readable by group or others.
    for p in files_below(&cache) {
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} is mode {:o}",
            p.display(),
            mode & 0o777
        );
    }
    let (ok, out, _) = sh(&format!("find '{}' -type d -perm /077", cache.display()));
    assert!(
        ok && out.trim().is_empty(),
        "directories open to others: {out}"
    );
    m.stop();
}

#[test]
fn damaged_cache_files_are_refetched_not_served() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let (keep, _) = filled_cache(&emu);
    let cache = keep.path().join("cache");

    let blocks = block_files(&cache);
    assert!(blocks.len() >= 20, "only {} block files", blocks.len());
    for (i, p) in blocks.iter().take(20).enumerate() {
        let mut raw = std::fs::read(p).expect("read block file");
        let (mid, len) = (raw.len() / 2, raw.len());
        for b in &mut raw[mid..(mid + 16).min(len)] {
            *b ^= 0x5a ^ i as u8;
        }
        std::fs::write(p, &raw).expect("overwrite");
    }
    let m = remount(&emu, &cache);
    let files = truth(&emu, &m);
    emu.reset_stats();
    read_exactly(&files);
    let refetched = emu.stat("content_requests");
    assert!(refetched >= 1, "damaged blocks must be fetched again");
    assert!(
        refetched <= 20,
        "{refetched} requests for 20 damaged blocks"
    );
    m.stop();
}

#[test]
fn a_daemon_killed_while_writing_leaves_a_cache_the_next_mount_reads_exactly() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "6", "--seed", "4", "--big-file-mib", "40"]);
    let keep = tempfile::tempdir().expect("tempdir");
    let cache = keep.path().join("cache");
    let m = remount(&emu, &cache);
    let files = truth(&emu, &m);
    let big = files
        .keys()
        .max_by_key(|p| files[*p].len())
        .expect("file")
        .clone();
    let reader = {
        let big = big.clone();
        std::thread::spawn(move || std::fs::read(big))
    };
    // Kill it mid-stream, while blocks are being written.
    std::thread::sleep(Duration::from_millis(400));
    let _ = sh(&format!("kill -9 {}", m.pid()));
    let _ = reader.join();
    drop(m);

    let m = remount(&emu, &cache);
    let files = truth(&emu, &m);
    read_exactly(&files);
    m.stop();
}

#[test]
fn a_version_changed_between_mounts_is_read_new_never_old() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let (keep, files) = filled_cache(&emu);
    let cache = keep.path().join("cache");

    let path = files
        .keys()
        .max_by_key(|p| files[*p].len())
        .expect("file")
        .clone();
    let name = |p: Option<&std::ffi::OsStr>| p.expect("name").to_string_lossy().to_string();
    let guid = name(path.parent().and_then(Path::file_name));
    let key = name(path.file_name());
    emu.control(
        "/_emulator/mutate",
        json!({"guid": guid, "contentKey": key}),
    );
    let new_bytes = emu.content(&emu.token(), &guid, &key);
    assert_eq!(new_bytes.len(), files[&path].len(), "same size, new bytes");
    assert!(new_bytes != files[&path]);

    // The remount lists from its saved catalog, then re-lists at once: the file reads
    // old bytes never, and the new ones as soon as the re-list has seen the change.
    let m = remount(&emu, &cache);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match timed_read(&path_in(&m, &path), Duration::from_secs(30)).0 {
            Ok(b) if b == new_bytes => break,
            Ok(b) => assert!(
                b.len() == new_bytes.len() && b != files[&path],
                "old bytes served"
            ),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}"),
        }
        assert!(Instant::now() < deadline, "the new version never appeared");
        std::thread::sleep(Duration::from_millis(200));
    }
    m.stop();
}

/// The same file under another mount of the same tree.
fn path_in(m: &Mount, path: &Path) -> PathBuf {
    let name = |p: Option<&std::ffi::OsStr>| p.expect("name").to_owned();
    m.interactions_dir()
        .join(name(path.parent().and_then(Path::file_name)))
        .join(name(path.file_name()))
}

#[test]
fn the_disk_cap_holds_while_more_than_it_is_read() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&[
        "--interactions",
        "30",
        "--seed",
        "8",
        "--big-file-mib",
        "120",
    ]);
    let keep = tempfile::tempdir().expect("tempdir");
    let cache = keep.path().join("cache");
    let dir = cache.to_string_lossy().to_string();
    let m = Mount::start(&emu, &["--cache-dir", &dir, "--disk-cache-size", "40M"]);
    let files = truth(&emu, &m);
    let total: usize = files.values().map(Vec::len).sum();
    assert!(
        total >= 150 << 20 || total >= 140_000_000,
        "{total} bytes in the tree"
    );
    let cap = 40u64 << 20;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (cache, stop) = (cache.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut worst = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let used: u64 = files_below(&cache)
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|md| md.len())
                    .sum();
                worst = worst.max(used);
                std::thread::sleep(Duration::from_millis(50));
            }
            worst
        })
    };
    read_exactly(&files);
    settle(&cache);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = sampler.join().expect("sampler");
    // The saved catalog shares the directory: allow it (a few KiB) on top.
    assert!(
        worst <= cap + (1 << 20),
        "disk use reached {worst} bytes, cap {cap}"
    );
    assert!(worst >= cap / 2, "the cache was used ({worst} bytes)");
    m.stop();
}

#[test]
fn a_full_disk_is_a_miss_and_reads_go_on_from_the_network() {
    if !fuse_available() {
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("SKIP: mounting a tmpfs needs root");
        return;
    }
    let emu = Emulator::start(&["--interactions", "6", "--seed", "9", "--big-file-mib", "24"]);
    let keep = tempfile::tempdir().expect("tempdir");
    let small = keep.path().join("small");
    std::fs::create_dir(&small).expect("mkdir");
    let (ok, _, err) = sh(&format!(
        "mount -t tmpfs -o size=4m tmpfs '{}'",
        small.display()
    ));
    assert!(ok, "mount tmpfs: {err}");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = sh(&format!("umount -l '{}'", self.0.display()));
        }
    }
    let _tmpfs = Unmount(small.clone());
    let dir = small.join("cache").to_string_lossy().to_string();
    // The cap says 10G; the filesystem holds 4 MiB.
    let m = Mount::start(&emu, &["--cache-dir", &dir]);
    let files = truth(&emu, &m);
    read_exactly(&files);
    read_exactly(&files);
    m.stop();
}

#[test]
fn files_held_whole_are_read_by_the_kernel_itself_exactly() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "6", "--seed", "5", "--big-file-mib", "24"]);
    // Plain files: the kernel can read them (sealed ones it cannot, below).
    let plain = ["--disk-encryption", "none"];
    let (keep, files) = filled_cache_with(&emu, &plain);
    let cache = keep.path().join("cache");
    let wholes: Vec<_> = block_files(&cache)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "whole"))
        .collect();
    assert!(!wholes.is_empty(), "no version was made one whole file");
    let big = files
        .keys()
        .max_by_key(|p| files[*p].len())
        .expect("file")
        .clone();
    let local = keep.path().join("big.local");
    std::fs::write(&local, &files[&big]).expect("write the truth");

    let m = remount_with(&emu, &cache, &plain);
    let big = path_in(&m, &big);
    emu.reset_stats();
    // Two opens of one file at once (one backing for both), then one after both
    // closed (a new backing), each read whole and compared by `cmp`.
    let first = std::fs::File::open(&big).expect("open");
    let (ok, _, err) = sh(&format!("cmp '{}' '{}'", big.display(), local.display()));
    assert!(ok, "second open while the first is open: {err}");
    let mut got = Vec::new();
    std::io::Read::read_to_end(&mut &first, &mut got).expect("read the first open");
    assert!(got == std::fs::read(&local).expect("truth"), "wrong bytes");
    drop(first);
    let (ok, _, err) = sh(&format!("cmp '{}' '{}'", big.display(), local.display()));
    assert!(ok, "open after close: {err}");
    let files = truth(&emu, &m);
    emu.reset_stats();
    read_exactly(&files);
    assert_eq!(emu.stat("content_requests"), 0, "content fetched again");
    if unsafe { libc::geteuid() } == 0 {
        // Root may hand the kernel backing files (Linux 6.9+, which CI runs).
        let opens = m.status()["passthrough_opens"].as_u64().unwrap_or(0);
        assert!(opens >= 3, "{opens} passthrough opens");
    }
    m.stop();

    // --no-passthrough: the same bytes, through the daemon.
    let dir = cache.to_string_lossy().to_string();
    let m = Mount::start(
        &emu,
        &[
            "--cache-dir",
            &dir,
            "--no-passthrough",
            "--disk-encryption",
            "none",
        ],
    );
    read_exactly(&truth(&emu, &m));
    assert_eq!(m.status()["passthrough_opens"].as_u64(), Some(0));
    m.stop();

    // Sealed (the default): the plain cache is discarded, refilled sealed, and read
    // through the daemon, never by the kernel.
    for _ in 0..2 {
        let m = remount(&emu, &cache);
        read_exactly(&truth(&emu, &m));
        settle(&cache);
        assert_eq!(m.status()["passthrough_opens"].as_u64(), Some(0));
        m.stop();
    }
}
