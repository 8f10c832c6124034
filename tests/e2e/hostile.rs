//! A hostile world on a real mount: names and offsets crafted to break paths or
//! arithmetic, secrets that must never reach logs or storage hosts, and other local
//! users without `--allow-other`.

use std::time::{Duration, Instant};

use crate::common::{fuse_available, sh, Emulator, Mount, BIN};
use crate::faults::{truth, TENANT};

#[test]
fn hostile_names_and_offsets() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(TENANT);
    let m = Mount::start(&emu, &[]);
    let truth = truth(&emu, &m);
    let (path, want) = truth.iter().next().expect("file");
    emu.reset_stats();
    let i = m.interactions_dir();
    for name in [
        "not-a-guid",
        "..x",
        "00000000-0000-0000-0000-00000000000g",
        "%2e%2e",
        ".interaction.json",
    ] {
        let e = std::fs::metadata(i.join(name)).expect_err(name);
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{name}");
    }
    let long = "a".repeat(300);
    let e = std::fs::metadata(i.join(&long)).expect_err("long name");
    assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
    let e = std::fs::metadata(
        path.parent()
            .expect("dir")
            .join("..")
            .join("..")
            .join("nope"),
    )
    .expect_err("..");
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    let e = std::fs::metadata(path.join("child")).expect_err("file as dir");
    assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    let s = emu.stats();
    assert_eq!(s["interaction_requests"], 0, "{s}");
    assert_eq!(s["content_requests"], 0, "{s}");

    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    assert_eq!(
        f.read_at(&mut buf, want.len() as u64 + 100)
            .expect("past EOF"),
        0
    );
    assert_eq!(f.read_at(&mut buf, 1 << 50).expect("far past EOF"), 0);
    let n = f.read_at(&mut buf, want.len() as u64 - 10).expect("tail");
    assert_eq!(&buf[..n], &want[want.len() - 10..]);
}

#[test]
fn secrets_never_logged_and_token_never_sent_to_storage() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "8", "--redirect"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let log = dir.path().join("vccfs.log");
    let child = std::process::Command::new(BIN)
        .env("XDG_CACHE_HOME", crate::common::scratch_cache())
        .env(
            "CACHE_DIRECTORY",
            crate::common::scratch_cache().join("vccfs"),
        )
        .args(["-vv", "mount"])
        .arg(&mnt)
        .args([
            "--api-url",
            &emu.api_url,
            "--auth-url",
            &emu.auth_url,
            "--from",
            "40d",
        ])
        .env("VCC_CLIENT_ID", &emu.client_id)
        .env("VCC_CLIENT_SECRET", &emu.client_secret)
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("mount");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !crate::common::is_mounted(&mnt) {
        assert!(Instant::now() < deadline, "mount did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, _, err) = sh(&format!(
        "cat {}/interactions/*/* > /dev/null",
        mnt.display()
    ));
    assert!(ok, "{err}");
    let out = crate::common::vccfs_unmount(&mnt);
    assert!(out.status.success());
    let mut child = child;
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.len() > 1000, "debug logging was on");
    assert!(
        !text.contains(&emu.client_secret),
        "the client secret was logged"
    );
    assert!(!text.contains("Bearer "), "a bearer token was logged");
    assert!(
        !text.contains("access_token"),
        "a token response was logged"
    );
    let s = emu.stats();
    assert_eq!(s["auth_leaked"], 0, "{s}");
    assert!(s["storage_requests"].as_u64().unwrap_or(0) > 0, "{s}");
}

#[test]
fn other_users_cannot_read_without_allow_other() {
    if !fuse_available() {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !crate::common::which("setpriv") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with setpriv"
        );
        eprintln!("SKIP: needs root and setpriv to act as another user");
        return;
    }
    let emu = Emulator::start(TENANT);
    let m = Mount::start(&emu, &[]);
    // The mount's parent directories are private temp dirs: open them for the test user.
    let (ok, _, err) = sh(&format!("chmod 755 {}", m.dir.path().display()));
    assert!(ok, "{err}");
    let (ok, _, err) = sh(&format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups ls {}",
        m.interactions_dir().display()
    ));
    assert!(!ok, "another user listed the mount");
    assert!(err.contains("Permission denied"), "{err}");
}
