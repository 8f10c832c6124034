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

/// Refused at once (well under a second), in one line, before any connection: the
/// emulator sees no request, and nothing is mounted.
fn refused_fast(emu: &Emulator, mnt: &str, args: &[&str], env: &[(&str, &str)], needle: &str) {
    let before = emu.stat("token_requests");
    let t = std::time::Instant::now();
    let out = vccfs(args, env);
    let took = t.elapsed();
    fails_with(&out, needle);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line:\n{err}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "took {took:?}: {err}"
    );
    assert_eq!(
        emu.stat("token_requests"),
        before,
        "contacted the API: {err}"
    );
    assert!(!crate::common::is_mounted(std::path::Path::new(mnt)));
}

#[test]
fn shared_host_refusals() {
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
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, env: &[(&str, &str)], needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused_fast(&emu, &mnt, &args, env, needle);
    };

    // A credentials file behind a symlink, and one owned by another user.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("creds");
    std::fs::write(
        &file,
        "VCC_CLIENT_ID=demo-client\nVCC_CLIENT_SECRET=demo-secret\n",
    )
    .expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    let l = link.display().to_string();
    run(with(&["--credentials", &l]), &[], "is a symlink");
    run(
        with(&["--redis", "rediss://h", "--redis-credentials", &l]),
        CREDS,
        "is a symlink",
    );
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&file, Some(65534), None).expect("chown");
        let f = file.display().to_string();
        run(with(&["--credentials", &f]), &[], "owned by uid 65534");
    } else {
        eprintln!("SKIP: the other-owner case needs root (chown)");
    }

    // A password inside a Redis URL: on the command line, in REDIS_URL, from fstab,
    // with --daemon (refused before any child is started).
    let pw = "redis://:hunter2@127.0.0.1:6379";
    run(with(&["--redis", pw]), CREDS, "--redis-credentials");
    run(
        with(&["--redis", pw, "--daemon"]),
        CREDS,
        "--redis-credentials",
    );
    let mut env = CREDS.to_vec();
    env.push(("REDIS_URL", pw));
    run(with(&[]), &env, "--redis-credentials");
    let fstab = [
        emu.api_url.as_str(),
        &mnt,
        "-o",
        &format!(
            "auth_url={},redis=redis://u:hunter2@127.0.0.1",
            emu.auth_url
        ),
    ]
    .map(String::from)
    .to_vec();
    run(fstab, CREDS, "--redis-credentials");

    // Plain redis:// to another host without the opt-in.
    run(
        with(&["--redis", "redis://10.255.255.1:6379"]),
        CREDS,
        "--redis-allow-plaintext",
    );

    // Plain http to a host other than loopback: the API, the token endpoint, fstab.
    let remote = "http://example.com/interaction-content";
    let args = ["mount", &mnt, "--api-url", remote]
        .map(String::from)
        .to_vec();
    run(args, CREDS, "https is required");
    let args = [
        "mount",
        &mnt,
        "--api-url",
        &emu.api_url,
        "--auth-url",
        "http://example.com/Auth/connect/token",
    ]
    .map(String::from)
    .to_vec();
    run(args, CREDS, "https is required");
    let fstab = [remote, &mnt, "-o", "foreground"]
        .map(String::from)
        .to_vec();
    run(fstab, CREDS, "https is required");
}
