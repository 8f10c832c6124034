//! Revoked access and `vccfs refresh`: a client the API stops accepting reads nothing
//! of what it cached (EACCES) until it is accepted again, without a remount; `vccfs
//! refresh` re-lists on demand and says what changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{fuse_available, sh, Emulator, Mount, BIN};
use crate::faults::truth;

fn vccfs(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run vccfs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The emulator's bytes of each file, written next to the mount for `cmp`.
fn expected_files(m: &Mount, files: &HashMap<PathBuf, Vec<u8>>) -> Vec<(PathBuf, PathBuf)> {
    let dir = m.dir.path().join("expected");
    std::fs::create_dir_all(&dir).expect("mkdir");
    files
        .iter()
        .enumerate()
        .map(|(n, (path, bytes))| {
            let want = dir.join(n.to_string());
            std::fs::write(&want, bytes).expect("write expected");
            (path.clone(), want)
        })
        .collect()
}

fn cmp_all(pairs: &[(PathBuf, PathBuf)]) {
    for (got, want) in pairs {
        let (ok, out, err) = sh(&format!("cmp '{}' '{}'", got.display(), want.display()));
        assert!(ok, "cmp {}: {out}{err}", got.display());
    }
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "must fail: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn a_revoked_client_reads_nothing_until_restored() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "6", "--seed", "5"]);
    let m = Mount::start(&emu, &["--refresh", "2"]);
    let mnt = m.path.to_string_lossy().to_string();
    let files = truth(&emu, &m);
    assert!(files.len() >= 6, "{} files", files.len());
    let pairs = expected_files(&m, &files);
    cmp_all(&pairs);
    assert_eq!(m.status()["access"], "ok");

    emu.control("/_emulator/client", json!({"revoked": true}));
    // The next request finds out: the on-demand re-list fails, saying why.
    let err = one_line_error(&vccfs(&["refresh", &mnt]));
    assert!(err.contains("refresh failed: access revoked: "), "{err}");
    for (path, _) in &pairs {
        let e = std::fs::read(path).expect_err("a revoked client reads nothing");
        assert_eq!(
            e.raw_os_error(),
            Some(libc::EACCES),
            "{}: {e}",
            path.display()
        );
    }
    let (ok, _, err) = sh(&format!("cat '{}' >/dev/null", pairs[0].0.display()));
    assert!(!ok && err.contains("Permission denied"), "{err}");
    let (ok, _, err) = sh(&format!("ls '{}'", m.interactions_dir().display()));
    assert!(!ok && err.contains("Permission denied"), "{err}");
    let s = m.status();
    assert_eq!(s["access"], "revoked", "{s}");
    assert!(
        s["access_reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{s}"
    );
    assert!(s["access_since"].as_str().is_some(), "{s}");
    let human = text(&vccfs(&["status", &mnt]).stdout);
    assert!(human.contains("REVOKED since"), "{human}");

    // Restored at the API: the refresher's next probe finds out, no remount.
    emu.control("/_emulator/client", json!({"revoked": false}));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read(&pairs[0].0).is_err() {
        assert!(Instant::now() < deadline, "access never came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    cmp_all(&pairs);
    assert_eq!(m.status()["access"], "ok");
    m.stop();
}

fn guid_and_key(path: &Path) -> (String, String) {
    let name = |p: Option<&std::ffi::OsStr>| p.expect("name").to_string_lossy().to_string();
    (
        name(path.parent().and_then(Path::file_name)),
        name(path.file_name()),
    )
}

#[test]
fn refresh_reports_what_changed_and_refuses_other_days() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "6", "--seed", "7"]);
    // No periodic refresh: only `vccfs refresh` re-lists.
    let m = Mount::start(&emu, &["--refresh", "0"]);
    let mnt = m.path.to_string_lossy().to_string();
    let files = truth(&emu, &m);
    let path = files.keys().min().expect("a file").clone();
    let (guid, key) = guid_and_key(&path);
    assert!(std::fs::read(&path).expect("read") == files[&path]);
    let token = emu.token();
    let day = emu
        .interactions(&token, m.from, m.to)
        .into_iter()
        .find(|i| i["guid"] == guid.as_str())
        .and_then(|i| i["start"].as_str().map(|s| s[..10].to_string()))
        .expect("its day");

    emu.control(
        "/_emulator/mutate",
        json!({"guid": guid, "contentKey": key}),
    );
    let new_bytes = emu.content(&emu.token(), &guid, &key);
    assert!(new_bytes != files[&path]);
    let out = vccfs(&["refresh", &mnt, &day]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(
        said.starts_with(&format!("{day}: 0 added, 0 removed, 1 changed\n")),
        "{said}"
    );
    assert!(said.contains(&format!("  changed {guid}\n")), "{said}");
    let want = m.dir.path().join("new");
    std::fs::write(&want, &new_bytes).expect("write");
    // The kernel's pages of the old version are dropped by a queued invalidation.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out_, err) = sh(&format!("cmp '{}' '{}'", path.display(), want.display()));
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new version is served: {out_}{err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Again: nothing changed; the tail alone works too.
    let out = vccfs(&["refresh", &mnt, &day]);
    assert_eq!(
        text(&out.stdout),
        format!("{day}: 0 added, 0 removed, 0 changed\n")
    );
    let out = vccfs(&["refresh", &mnt]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let err = one_line_error(&vccfs(&["refresh", &mnt, "1999-01-01"]));
    assert!(
        err.contains("1999-01-01 is not in the mount's window"),
        "{err}"
    );
    let err = one_line_error(&vccfs(&["refresh", &mnt, "yesterday"]));
    assert!(err.contains("is not a day (YYYY-MM-DD)"), "{err}");
    let dead = m.dir.path().join("expected-nothing-here");
    let err = one_line_error(&vccfs(&["refresh", &dead.to_string_lossy()]));
    assert!(err.contains("not a running vccfs mount"), "{err}");
    m.stop();
}
