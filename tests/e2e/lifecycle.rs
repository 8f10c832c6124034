//! End-to-end: a mount's life — names outside the window looked up on demand,
//! unmount and SIGTERM (idle and busy), `--daemon`, the demo, and a rolling window.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::common::{fuse_available, sh, Emulator, Mount, BIN};
use crate::mount::{ts, SMALL_TENANT};

#[test]
fn guids_outside_the_window_are_looked_up_on_demand() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("ns");
    let token = emu.token();
    let all = emu.interactions(
        &token,
        now - time::Duration::days(40),
        now + time::Duration::days(1),
    );
    let old = all
        .iter()
        .find(|i| ts(&i["start"]) < (now - time::Duration::days(10)).unix_timestamp())
        .expect("an interaction older than 10 days");
    let m = Mount::start_window(
        &emu,
        now - time::Duration::days(3),
        now + time::Duration::days(1),
        &[],
    );
    let guid = old["guid"].as_str().expect("guid");
    let listed: Vec<String> = std::fs::read_dir(m.interactions_dir())
        .expect("readdir")
        .map(|e| e.expect("e").file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !listed.iter().any(|g| g == guid),
        "old interaction must not be listed"
    );
    emu.reset_stats();
    let key = old["content"][0]["contentKey"].as_str().expect("key");
    let meta = std::fs::metadata(m.interactions_dir().join(guid).join(key))
        .expect("lookup outside window");
    assert_eq!(
        meta.len(),
        old["content"][0]["contentLength"].as_u64().expect("len")
    );
    assert_eq!(emu.stat("interaction_requests"), 1);
    // Another day outside the window: one search.
    let day = &old["start"].as_str().expect("start")[..10];
    let n = std::fs::read_dir(m.path.join("by-date").join(day))
        .expect("day dir")
        .count();
    assert!(n >= 1);
    assert_eq!(emu.stat("search_requests"), 1);
}

#[test]
fn unmount_and_sigterm_leave_no_mount_and_no_process() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let mut m = Mount::start(&emu, &[]);
    let out = crate::common::vccfs_unmount(&m.path);
    assert!(
        out.status.success(),
        "vccfs unmount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = m
        .wait_exit(Duration::from_secs(10))
        .expect("mount process exits after unmount");
    assert!(status.success(), "exit status {status}");
    assert!(!crate::common::is_mounted(&m.path));

    let mut m = Mount::start(&emu, &[]);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(m.pid() as i32, libc::SIGTERM) };
    let status = m
        .wait_exit(Duration::from_secs(10))
        .expect("mount process exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(!crate::common::is_mounted(&m.path));

    // Even while busy (a directory held open), SIGTERM stops it without leaving a mount.
    let mut m = Mount::start(&emu, &[]);
    let held = std::fs::read_dir(m.interactions_dir()).expect("open dir");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(m.pid() as i32, libc::SIGTERM) };
    let status = m
        .wait_exit(Duration::from_secs(10))
        .expect("busy mount process exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
    drop(held);
    assert!(!crate::common::is_mounted(&m.path));
}

#[test]
fn daemon_mode_returns_once_live_and_fails_cleanly() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let run = |secret: &str| {
        std::process::Command::new(BIN)
            .env("XDG_CACHE_HOME", crate::common::scratch_cache())
            .env(
                "CACHE_DIRECTORY",
                crate::common::scratch_cache().join("vccfs"),
            )
            .arg("mount")
            .arg(&mnt)
            .args([
                "--api-url",
                &emu.api_url,
                "--auth-url",
                &emu.auth_url,
                "--daemon",
            ])
            .env("VCC_CLIENT_ID", &emu.client_id)
            .env("VCC_CLIENT_SECRET", secret)
            .output()
            .expect("vccfs mount --daemon")
    };
    let bad = run("wrong-secret");
    assert!(!bad.status.success());
    let msg = String::from_utf8_lossy(&bad.stderr);
    assert!(msg.contains("wrong client id or secret"), "message: {msg}");
    assert!(
        !msg.contains("wrong-secret"),
        "the secret must never be printed: {msg}"
    );
    assert!(
        !crate::common::is_mounted(&mnt),
        "a failed start leaves no mount"
    );

    let good = run(&emu.client_secret);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(
        crate::common::is_mounted(&mnt),
        "--daemon returns only once the mount is live"
    );
    assert!(
        std::fs::read_dir(mnt.join("interactions"))
            .expect("readdir")
            .count()
            > 0
    );
    let out = crate::common::vccfs_unmount(&mnt);
    assert!(out.status.success());
    assert!(!crate::common::is_mounted(&mnt));
}

#[test]
fn demo_mounts_a_synthetic_tenant_and_stops_on_ctrl_c() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("vcc");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mut child = std::process::Command::new(BIN)
        .env("XDG_CACHE_HOME", crate::common::scratch_cache())
        .env(
            "CACHE_DIRECTORY",
            crate::common::scratch_cache().join("vccfs"),
        )
        .args(["demo", "--interactions", "30", "--big-file-mib", "4"])
        .arg(&mnt)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("vccfs demo");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !crate::common::is_mounted(&mnt) {
        assert!(std::time::Instant::now() < deadline, "demo did not mount");
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = std::fs::read_dir(mnt.join("interactions"))
        .expect("ls")
        .count();
    assert!(n >= 20, "{n} interactions");
    let (ok, out, err) = sh(&format!(
        "cat {}/interactions/*/transcript | grep -c speaker",
        mnt.display()
    ));
    assert!(
        ok && out.trim().parse::<u32>().unwrap_or(0) > 10,
        "{out} {err}"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert!(status.success(), "demo exit: {status}");
    assert!(!crate::common::is_mounted(&mnt));
    let mut banner = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut banner)
        .expect("read");
    assert!(banner.contains("Try, in another terminal"), "{banner}");
}

/// With the default `--to now`, interactions that start after the mount appear at the
/// next re-list, and none of the mount's first listing disappears.
#[test]
fn a_rolling_window_shows_calls_that_start_after_the_mount() {
    if !fuse_available() {
        return;
    }
    // About 2.3 new calls a second, on and on.
    let emu = Emulator::start(&["--interactions", "200000", "--days", "1"]);
    let mounted_at = time::OffsetDateTime::now_utc();
    let from = mounted_at - time::Duration::minutes(3);
    let m = Mount::start_rolling(&emu, from, &["--refresh", "2"]);
    let list = || -> BTreeSet<String> {
        std::fs::read_dir(m.interactions_dir())
            .expect("ls")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect()
    };
    let first = list();
    assert!(!first.is_empty(), "the first listing is empty");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let later = loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = list();
        if now.len() > first.len() + 2 {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new interaction appeared"
        );
    };
    assert!(
        first.is_subset(&later),
        "an interaction disappeared as time passed"
    );
    let token = emu.token();
    let truth = emu.interactions(&token, from, time::OffsetDateTime::now_utc());
    let started: HashMap<String, String> = truth
        .iter()
        .map(|i| {
            (
                i["guid"].as_str().unwrap_or_default().to_string(),
                i["start"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let after_mount = later
        .difference(&first)
        .filter(|g| {
            started
                .get(*g)
                .and_then(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .is_some_and(|s| s >= mounted_at)
        })
        .count();
    assert!(
        after_mount >= 1,
        "the new entries are calls that started after the mount"
    );
}
