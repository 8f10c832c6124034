//! Reliability on a real mount: every fault the emulator can inject, against ground
//! truth. Each test prints a report row: fault, reads, mismatched bytes, errors seen by
//! readers, worst read latency (`cargo test --test e2e faults:: -- --nocapture` shows them).
//! (Hostile names, secrets and other users: `hostile`.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{fuse_available, sh, Emulator, Mount, BIN};
use serde_json::{json, Value};

pub(crate) const TENANT: &[&str] = &["--interactions", "12", "--seed", "11"];

/// Ground truth: every content file of the window, downloaded directly.
pub(crate) fn truth(emu: &Emulator, m: &Mount) -> HashMap<PathBuf, Vec<u8>> {
    let token = emu.token();
    let mut out = HashMap::new();
    for i in emu.interactions(&token, m.from, m.to) {
        let guid = i["guid"].as_str().expect("guid").to_string();
        for c in i["content"].as_array().expect("content") {
            let key = c["contentKey"].as_str().expect("key");
            out.insert(
                m.interactions_dir().join(&guid).join(key),
                emu.content(&token, &guid, key),
            );
        }
    }
    out
}

#[derive(Debug, Default)]
struct Report {
    reads: usize,
    mismatched_bytes: usize,
    errors: Vec<String>,
    worst: Duration,
}

impl Report {
    fn print(&self, fault: &str) {
        eprintln!(
            "FAULT-REPORT | {fault} | reads {} | mismatched bytes {} | reader errors {} | worst read {:.2} s",
            self.reads,
            self.mismatched_bytes,
            self.errors.len(),
            self.worst.as_secs_f64()
        );
    }
}

/// Read `path` in a thread; a read that takes longer than `limit` is a hang.
/// Read every file of `files` and compare it with its bytes; any error or difference
/// fails the test.
pub(crate) fn read_exactly(files: &HashMap<PathBuf, Vec<u8>>) {
    for (path, want) in files {
        let (got, _) = timed_read(path, Duration::from_secs(60));
        let got = got.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(got == *want, "{}: wrong bytes", path.display());
    }
}

pub(crate) fn timed_read(path: &Path, limit: Duration) -> (std::io::Result<Vec<u8>>, Duration) {
    let p = path.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(p));
    });
    match rx.recv_timeout(limit) {
        Ok(r) => (r, start.elapsed()),
        Err(_) => panic!("read of {} hung for more than {limit:?}", path.display()),
    }
}

fn mismatch(got: &[u8], want: &[u8]) -> usize {
    let common = got.len().min(want.len());
    got[..common]
        .iter()
        .zip(&want[..common])
        .filter(|(a, b)| a != b)
        .count()
        + got.len().abs_diff(want.len())
}

/// Read every file once and compare.
fn read_all(truth: &HashMap<PathBuf, Vec<u8>>) -> Report {
    let mut r = Report::default();
    for (path, want) in truth {
        let (got, took) = timed_read(path, Duration::from_secs(90));
        r.reads += 1;
        r.worst = r.worst.max(took);
        match got {
            Ok(got) => r.mismatched_bytes += mismatch(&got, want),
            Err(e) => r.errors.push(format!("{}: {e}", path.display())),
        }
    }
    r
}

/// A transient fault: every read exact, no reader sees an error. Ground truth is taken
/// before the fault (`patch` for `POST /_emulator/faults`) is switched on.
fn transient(fault: &str, patch: Value, mount_flags: &[&str], injected: &str) {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let m = Mount::start(&emu, mount_flags);
    let truth = truth(&emu, &m);
    emu.control("/_emulator/faults", patch);
    assert!(truth.len() > 20);
    let r = read_all(&truth);
    r.print(fault);
    assert_eq!(r.mismatched_bytes, 0, "{fault}: wrong bytes");
    assert!(
        r.errors.is_empty(),
        "{fault}: readers saw errors: {:?}",
        r.errors
    );
    // The fault really happened (a test of nothing would pass too).
    let floor = if injected == "token_requests" { 2 } else { 1 };
    let n = emu.stat(injected);
    assert!(n >= floor, "{fault}: {injected} = {n}");
}

#[test]
fn bursts_of_503() {
    transient(
        "503 (fail-rate 0.3)",
        json!({"fail_rate": 0.3}),
        &[],
        "status_5xx",
    );
}

#[test]
fn resets_mid_body() {
    transient(
        "reset mid-body (0.3)",
        json!({"reset_rate": 0.3}),
        &[],
        "resets",
    );
}

#[test]
fn truncated_bodies() {
    transient(
        "short body (0.3)",
        json!({"short_body_rate": 0.3}),
        &[],
        "short_bodies",
    );
}

#[test]
fn bodies_longer_than_announced() {
    transient(
        "body longer than its Content-Range (0.3)",
        json!({"long_body_rate": 0.3}),
        // A small cache fetches files of over 256 KiB in 1 MiB ranges: bodies can
        // only run long where a range stops short of the end of the file (a file
        // fetched whole, in one request, cannot).
        &["--cache-size", "2M"],
        "long_bodies",
    );
}

#[test]
fn ignored_ranges() {
    transient(
        "Range ignored, 200 full body (0.5)",
        json!({"ignore_range_rate": 0.5}),
        &[],
        "ignored_ranges",
    );
}

#[test]
fn wrong_content_range() {
    transient(
        "wrong Content-Range (0.3)",
        json!({"wrong_range_rate": 0.3}),
        &[],
        "wrong_ranges",
    );
}

#[test]
fn stalls_mid_body() {
    // Read timeout is a quarter of --io-timeout (3 s): a 5 s stall is abandoned and
    // retried; a read fails only if four attempts in a row stall.
    transient(
        "stall mid-body 5 s (0.1)",
        json!({"stall_rate": 0.1, "stall_ms": 5000}),
        &["--io-timeout", "12"],
        "stalls",
    );
}

#[test]
fn storm_of_429() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let m = Mount::start(&emu, &[]);
    let truth = truth(&emu, &m);
    emu.control("/_emulator/faults", json!({"burst_429": 15}));
    let r = read_all(&truth);
    r.print("429 storm (15 in a row, Retry-After 1 s)");
    assert_eq!(r.mismatched_bytes, 0);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(emu.stat("status_429") >= 15);
}

#[test]
fn tokens_expiring_every_two_seconds() {
    transient(
        "token TTL 2 s, 2 MB/s bodies",
        json!({"token_ttl": 2, "bandwidth": 4000000}),
        &[],
        "token_requests",
    );
}

#[test]
fn api_down_then_back() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let m = Mount::start(&emu, &["--io-timeout", "3"]);
    let truth = truth(&emu, &m);
    let mut paths: Vec<&PathBuf> = truth.keys().collect();
    paths.sort();
    let (cached, uncached) = (paths[0], paths[1]);
    let first = std::fs::read(cached).expect("read before the outage");
    assert!(first == truth[cached]);

    emu.control("/_emulator/faults", json!({"down": true}));
    let (got, took) = timed_read(uncached, Duration::from_secs(30));
    let err = got.expect_err("an uncached read fails while the API is down");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(took < Duration::from_secs(10), "failed after {took:?}");
    // The mount keeps serving what it has.
    assert!(std::fs::read(cached).expect("cached file still readable") == truth[cached]);
    assert!(std::fs::read_dir(m.interactions_dir()).expect("ls").count() > 5);

    emu.control("/_emulator/faults", json!({"down": false}));
    let r = read_all(&truth);
    r.print("API down 3 s then back (after recovery)");
    assert_eq!(r.mismatched_bytes, 0);
    assert!(
        r.errors.is_empty(),
        "after the API came back: {:?}",
        r.errors
    );
    eprintln!("FAULT-REPORT | API down (permanent for the read) | reads 1 | mismatched bytes 0 | reader errors 1 (EIO) | worst read {:.2} s", took.as_secs_f64());
}

#[test]
fn permanently_lying_server_gives_eio_not_bytes() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let m = Mount::start(&emu, &["--io-timeout", "3"]);
    let truth = truth(&emu, &m);
    let path = truth.keys().max_by_key(|p| truth[*p].len()).expect("file");
    emu.control("/_emulator/faults", json!({"wrong_range_rate": 1.0}));
    let (got, took) = timed_read(path, Duration::from_secs(30));
    let err = got.expect_err("a server that always lies cannot be read");
    assert_eq!(err.raw_os_error(), Some(libc::EIO));
    assert!(took < Duration::from_secs(10), "{took:?}");
    emu.control("/_emulator/faults", json!({"wrong_range_rate": 0.0}));
    let again = std::fs::read(path).expect("readable once the server behaves");
    assert!(again == truth[path]);
    eprintln!(
        "FAULT-REPORT | wrong Content-Range always | reads 2 | mismatched bytes 0 | reader errors 1 (EIO) | worst read {:.2} s",
        took.as_secs_f64()
    );
}

#[test]
fn content_changing_under_a_reader() {
    if !fuse_available() {
        return;
    }
    // The file that changes is larger than a whole-file fetch (16 MiB), so the read
    // goes on with requests after the change (a smaller one is one request: it is
    // read whole from the old version, never mixed).
    let emu = Emulator::start(&[TENANT, &["--big-file-mib", "20"]].concat());
    let m = Mount::start(&emu, &["--refresh", "1"]);
    let truth = truth(&emu, &m);
    let path = truth
        .keys()
        .max_by_key(|p| truth[*p].len())
        .expect("file")
        .clone();
    let guid = path
        .parent()
        .and_then(Path::file_name)
        .expect("guid")
        .to_string_lossy()
        .to_string();
    let key = path.file_name().expect("key").to_string_lossy().to_string();

    use std::io::Read;
    let mut f = std::fs::File::open(&path).expect("open");
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).expect("read head");
    assert!(head[..] == truth[&path][..4096]);
    emu.control(
        "/_emulator/mutate",
        json!({"guid": guid, "contentKey": key}),
    );
    // Reading on from the old version: an error (ESTALE), never a mix of versions.
    let mut rest = Vec::new();
    let res = f.read_to_end(&mut rest);
    let err = res.expect_err("reading a changed file must fail");
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
    drop(f);

    // After the next re-list the file shows its new version, byte-exact.
    let token = emu.token();
    let new_bytes = emu.content(&token, &guid, &key);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match timed_read(&path, Duration::from_secs(30)).0 {
            Ok(b) if b == new_bytes => break,
            Ok(b) => assert!(b == truth[&path] || b == new_bytes, "a mix of versions"),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::ESTALE), "{e}"),
        }
        assert!(Instant::now() < deadline, "new version never appeared");
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("FAULT-REPORT | content changed while open | reads 2+ | mismatched bytes 0 | reader errors 1 (ESTALE) | -");
}

#[test]
fn soak_mixed_faults_with_concurrent_readers() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "16", "--seed", "5"]);
    let m = Mount::start(&emu, &["--cache-size", "32M"]);
    let truth = truth(&emu, &m);
    emu.control(
        "/_emulator/faults",
        json!({"fail_rate": 0.05, "reset_rate": 0.05, "short_body_rate": 0.05,
               "ignore_range_rate": 0.05, "wrong_range_rate": 0.05}),
    );
    let until = Instant::now() + Duration::from_secs(40);
    let root = m.path.clone();
    let mut workers = Vec::new();
    // cat of every file, repeatedly.
    for _ in 0..2 {
        let t = truth.clone();
        workers.push(std::thread::spawn(move || {
            let mut r = Report::default();
            while Instant::now() < until {
                let part = read_all(&t);
                r.reads += part.reads;
                r.mismatched_bytes += part.mismatched_bytes;
                r.errors.extend(part.errors);
                r.worst = r.worst.max(part.worst);
            }
            r
        }));
    }
    // grep -r and rsync, repeatedly.
    {
        let root = root.clone();
        workers.push(std::thread::spawn(move || {
            let mut r = Report::default();
            let backup = tempfile::tempdir().expect("tempdir");
            while Instant::now() < until {
                let t = Instant::now();
                let (_, _, err) = sh(&format!(
                    "timeout 120 grep -rlc refund {}",
                    root.join("interactions").display()
                ));
                if !err.is_empty() {
                    r.errors.push(format!("grep: {err}"));
                }
                let (ok, _, err) = sh(&format!(
                    "timeout 120 rsync -a {}/ {}/",
                    root.display(),
                    backup.path().display()
                ));
                if !ok {
                    r.errors.push(format!("rsync: {err}"));
                }
                r.reads += 2;
                r.worst = r.worst.max(t.elapsed());
            }
            r
        }));
    }
    // Random 4 KiB reads with dd.
    {
        let t = truth.clone();
        workers.push(std::thread::spawn(move || {
            let mut r = Report::default();
            let files: Vec<(&PathBuf, &Vec<u8>)> =
                t.iter().filter(|(_, b)| b.len() > 8192).collect();
            let mut x: u64 = 99;
            while Instant::now() < until {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let (p, want) = files[(x >> 33) as usize % files.len()];
                let block = (x >> 13) % (want.len() as u64 / 4096);
                let start = Instant::now();
                let out = std::process::Command::new("timeout")
                    .args([
                        "60",
                        "dd",
                        &format!("if={}", p.display()),
                        "bs=4096",
                        &format!("skip={block}"),
                        "count=1",
                        "status=none",
                    ])
                    .output()
                    .expect("dd");
                r.reads += 1;
                r.worst = r.worst.max(start.elapsed());
                if !out.status.success() {
                    r.errors
                        .push(String::from_utf8_lossy(&out.stderr).to_string());
                    continue;
                }
                let s = (block * 4096) as usize;
                r.mismatched_bytes += mismatch(&out.stdout, &want[s..(s + 4096).min(want.len())]);
            }
            r
        }));
    }
    let mut total = Report::default();
    for w in workers {
        let r = w.join().expect("worker");
        total.reads += r.reads;
        total.mismatched_bytes += r.mismatched_bytes;
        total.errors.extend(r.errors);
        total.worst = total.worst.max(r.worst);
    }
    total.print("soak 40 s, mixed faults, cat+grep+rsync+dd");
    assert_eq!(total.mismatched_bytes, 0);
    assert!(
        total.errors.is_empty(),
        "{:?}",
        &total.errors[..total.errors.len().min(5)]
    );
    assert!(total.reads > 50, "only {} reads", total.reads);
    // RSS stays bounded: cache (32 MiB) + read-ahead budget (16 MiB) + a small constant.
    let status = std::fs::read_to_string(format!("/proc/{}/status", m.pid())).expect("status");
    let hwm_kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    eprintln!("soak peak RSS {} MiB", hwm_kib / 1024);
    assert!(
        hwm_kib < (32 + 16 + 64) * 1024,
        "peak RSS {} MiB",
        hwm_kib / 1024
    );
}

#[test]
fn killed_daemon_leaves_a_mount_that_the_next_mount_recovers() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let mut m = Mount::start(&emu, &[]);
    // SAFETY: killing our own child.
    unsafe { libc::kill(m.pid() as i32, libc::SIGKILL) };
    let _ = m.wait_exit(Duration::from_secs(10));
    let err = std::fs::metadata(m.interactions_dir()).expect_err("dead mount");
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    let out = std::process::Command::new(BIN)
        .env("XDG_CACHE_HOME", crate::common::scratch_cache())
        .env(
            "CACHE_DIRECTORY",
            crate::common::scratch_cache().join("vccfs"),
        )
        .arg("mount")
        .arg(&m.path)
        .args([
            "--api-url",
            &emu.api_url,
            "--auth-url",
            &emu.auth_url,
            "--daemon",
        ])
        .env("VCC_CLIENT_ID", &emu.client_id)
        .env("VCC_CLIENT_SECRET", &emu.client_secret)
        .output()
        .expect("remount");
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "remount over a dead mount: {msg}");
    assert!(msg.contains("cleared a dead mount"), "{msg}");
    assert!(
        std::fs::read_dir(m.interactions_dir())
            .expect("live again")
            .count()
            > 0
    );
    let out = crate::common::vccfs_unmount(&m.path);
    assert!(out.status.success());
}
