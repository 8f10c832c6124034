//! Bad input gets one clear line and a non-zero exit: no panic, no backtrace, no mount.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use crate::common::{Emulator, BIN};

fn vccfs(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.env("XDG_CACHE_HOME", crate::common::scratch_cache())
        .env(
            "CACHE_DIRECTORY",
            crate::common::scratch_cache().join("vccfs"),
        )
        .args(args)
        .env_remove("VCC_CLIENT_ID")
        .env_remove("VCC_CLIENT_SECRET");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run vccfs")
}

/// Fails, says `needle`, in a few lines, without a panic or backtrace.
fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    // One line says what is wrong (clap adds a usage line and a hint after it).
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("error"),
        "first line must state the error:\n{err}"
    );
    assert!(err.lines().count() <= 8, "too verbose:\n{err}");
}

fn empty_dir() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().expect("tempdir");
    let p = d.path().join("mnt");
    std::fs::create_dir(&p).expect("mkdir");
    let s = p.display().to_string();
    (d, s)
}

const CREDS: &[(&str, &str)] = &[
    ("VCC_CLIENT_ID", "demo-client"),
    ("VCC_CLIENT_SECRET", "demo-secret"),
];

#[test]
fn credentials_problems() {
    let emu = Emulator::start(&["--interactions", "3"]);
    let (_d, mnt) = empty_dir();
    let base = [
        "mount",
        &mnt,
        "--api-url",
        &emu.api_url,
        "--auth-url",
        &emu.auth_url,
    ];
    fails_with(&vccfs(&base, &[]), "no credentials");
    fails_with(
        &vccfs(
            &base,
            &[
                ("VCC_CLIENT_ID", "demo-client"),
                ("VCC_CLIENT_SECRET", "bad"),
            ],
        ),
        "wrong client id or secret",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("creds");
    std::fs::write(
        &file,
        "VCC_CLIENT_ID=demo-client\nVCC_CLIENT_SECRET=demo-secret\n",
    )
    .expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let f = file.display().to_string();
    let mut with_file = base.to_vec();
    with_file.extend_from_slice(&["--credentials", &f]);
    fails_with(&vccfs(&with_file, &[]), "chmod 600");
    assert!(!crate::common::is_mounted(std::path::Path::new(&mnt)));
}

#[test]
fn wrong_endpoints() {
    let emu = Emulator::start(&["--interactions", "3"]);
    let (_d, mnt) = empty_dir();
    fails_with(
        &vccfs(&["mount", &mnt, "--region", "mars"], CREDS),
        "invalid value 'mars'",
    );
    let root = emu.api_url.trim_end_matches("/interaction-content");
    let not_api = format!("{root}/elsewhere/interaction-content");
    fails_with(
        &vccfs(
            &[
                "mount",
                &mnt,
                "--api-url",
                &not_api,
                "--auth-url",
                &emu.auth_url,
            ],
            CREDS,
        ),
        "does not look like an Interaction Content API",
    );
    fails_with(
        &vccfs(
            &["mount", &mnt, "--api-url", "http://127.0.0.1:9/nope"],
            CREDS,
        ),
        "must end in /interaction-content",
    );
    let t = std::time::Instant::now();
    fails_with(
        &vccfs(
            &[
                "mount",
                &mnt,
                "--api-url",
                "http://127.0.0.1:1/interaction-content",
                "--auth-url",
                "http://127.0.0.1:1/Auth/connect/token",
                "--io-timeout",
                "2",
            ],
            CREDS,
        ),
        "cannot reach http://127.0.0.1:1/Auth/connect/token",
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(15));
}

#[test]
fn mountpoint_problems() {
    let emu = Emulator::start(&["--interactions", "3"]);
    let d = tempfile::tempdir().expect("tempdir");
    let run = |mnt: &str| {
        vccfs(
            &[
                "mount",
                mnt,
                "--api-url",
                &emu.api_url,
                "--auth-url",
                &emu.auth_url,
            ],
            CREDS,
        )
    };
    let missing = d.path().join("missing").display().to_string();
    fails_with(&run(&missing), "does not exist");
    let file = d.path().join("file");
    std::fs::write(&file, b"x").expect("write");
    fails_with(&run(&file.display().to_string()), "is not a directory");
    let full = d.path().join("full");
    std::fs::create_dir(&full).expect("mkdir");
    std::fs::write(full.join("x"), b"x").expect("write");
    fails_with(&run(&full.display().to_string()), "is not empty");
    if crate::common::fuse_available() {
        let m = crate::common::Mount::start(&emu, &[]);
        fails_with(&run(&m.path.display().to_string()), "already mounted");
    }
}

#[test]
fn malformed_flags() {
    let (_d, mnt) = empty_dir();
    let api = ["--api-url", "http://127.0.0.1:9/interaction-content"];
    let case = |extra: &[&str], needle: &str| {
        let mut a = vec!["mount", mnt.as_str()];
        a.extend_from_slice(&api);
        a.extend_from_slice(extra);
        fails_with(&vccfs(&a, CREDS), needle);
    };
    case(
        &["--from", "2026-11-10", "--to", "2026-11-01"],
        "must be before --to",
    );
    case(&["--from", "last tuesday"], "invalid time");
    case(&["--to", "2026-02-30"], "invalid time");
    case(&["--cache-size", "lots"], "invalid size");
    case(&["--cache-size", "0"], "--cache-size must be more than 0");
    case(&["--cache-size", "100T"], "more than this machine's memory");
    case(
        &["--block-size", "3000"],
        "--block-size must be a power of two",
    );
    case(&["--max-rpm", "many"], "invalid value 'many'");
    case(&["--io-timeout", "-1"], "unexpected argument");
    case(&["--bogus"], "unexpected argument '--bogus'");
    fails_with(&vccfs(&["unmount", &mnt], &[]), "is not mounted");
    fails_with(&vccfs(&["emulator", "--fail-rate", "2"], &[]), "");
}
