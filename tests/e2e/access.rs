//! Safe on a shared host: with `--allow-other`, another local user reads nothing
//! (content, `.interaction.json`, xattrs) unless the group or the modes say so; a bad
//! mode is a one-line error and no mount. As root: a second user and a group are
//! created for the test (unique names) and removed at the end, even on failure.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{fuse_available, is_mounted, sh, Emulator, Mount, BIN};
use crate::faults::truth;

const TENANT: &[&str] = &["--interactions", "4", "--seed", "23"];

/// Root is needed to create accounts: skipped with a message elsewhere, a failure in CI.
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "the access test must run as root in CI (it creates a user and a group)"
        );
        eprintln!("SKIP: access test needs root (it creates a user and a group)");
    }
    root
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A local user and a group of this run, removed when dropped.
struct Accounts {
    user: Option<String>,
    group: Option<String>,
}

impl Accounts {
    fn create() -> Accounts {
        let pid = std::process::id();
        let mut a = Accounts {
            user: None,
            group: None,
        };
        let group = format!("vccfsg{pid}");
        run("groupadd", &[&group]);
        a.group = Some(group);
        let user = format!("vccfsu{pid}");
        run(
            "useradd",
            &[
                "-M",
                "-N",
                "-s",
                "/usr/sbin/nologin",
                "-d",
                "/nonexistent",
                &user,
            ],
        );
        a.user = Some(user);
        a
    }

    fn user(&self) -> &str {
        self.user.as_deref().expect("user")
    }

    fn group(&self) -> &str {
        self.group.as_deref().expect("group")
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        if let Some(u) = self.user.take() {
            let _ = Command::new("userdel").arg(&u).status();
        }
        if let Some(g) = self.group.take() {
            let _ = Command::new("groupdel").arg(&g).status();
        }
    }
}

/// `cmd args` as `user` (its own groups, no capabilities): (ok, stdout, stderr).
fn as_user(user: &str, cmd: &str, args: &[&Path]) -> (bool, Vec<u8>, String) {
    let out = Command::new("runuser")
        .args(["-u", user, "--", cmd])
        .args(args)
        .output()
        .expect("runuser");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn denied(user: &str, cmd: &str, path: &Path) {
    let (ok, _, err) = as_user(user, cmd, &[path]);
    assert!(!ok, "{cmd} {} should be refused", path.display());
    assert!(
        err.contains("Permission denied"),
        "{cmd} {}: {err}",
        path.display()
    );
}

/// `stat -c FORMAT path`, as root.
/// The uid of local user `name`.
fn stat_uid(name: &str) -> u64 {
    let out = Command::new("id")
        .args(["-u", name])
        .output()
        .expect("id -u");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a uid")
}

fn stat(format: &str, path: &Path) -> String {
    let (ok, out, err) = sh(&format!("stat -c '{format}' '{}'", path.display()));
    assert!(ok, "stat {}: {err}", path.display());
    out.trim().to_string()
}

/// The mount, with its temporary directory opened to other users (the mountpoint's own
/// bits are the mount's).
fn mount(emu: &Emulator, extra: &[&str]) -> Mount {
    let mut flags = vec!["--no-disk-cache"];
    flags.extend_from_slice(extra);
    let m = Mount::start(emu, &flags);
    std::fs::set_permissions(m.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod tempdir");
    m
}

/// A content file (`<guid>/<key>` under `interactions`) and its bytes.
fn one_file(emu: &Emulator, m: &Mount) -> (PathBuf, Vec<u8>) {
    let files = truth(emu, m);
    let (path, bytes) = files
        .into_iter()
        .filter(|(_, b)| !b.is_empty())
        .min_by_key(|(p, _)| p.clone())
        .expect("a content file");
    let rel = path
        .strip_prefix(m.interactions_dir())
        .expect("under interactions");
    (rel.to_path_buf(), bytes)
}

/// That file, its `.interaction.json` and its directory on mount `m`.
fn paths(m: &Mount, rel: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let file = m.interactions_dir().join(rel);
    let dir = file.parent().expect("dir").to_path_buf();
    (file.clone(), dir.join(".interaction.json"), dir)
}

#[test]
fn other_users_read_only_what_the_group_and_modes_allow() {
    if !root() || !fuse_available() {
        return;
    }
    let conf = std::fs::read_to_string("/etc/fuse.conf").unwrap_or_default();
    let user_allow_other = conf
        .lines()
        .any(|l| l.trim_start().starts_with("user_allow_other"));
    eprintln!(
        "/etc/fuse.conf user_allow_other: {} (as root --allow-other needs none{})",
        if user_allow_other { "set" } else { "not set" },
        if user_allow_other {
            "; not proven on this host"
        } else {
            ": proven below"
        }
    );
    let emu = Emulator::start(TENANT);
    let acc = Accounts::create();
    let user = acc.user().to_string();

    // --allow-other alone: owner root:root, 0440/0550; the other user reads nothing.
    let m = mount(&emu, &["--allow-other"]);
    let (rel, bytes) = one_file(&emu, &m);
    let (file, meta, dir) = paths(&m, &rel);
    assert_eq!(stat("%a %u %g", &file), "440 0 0");
    assert_eq!(stat("%a %u %g", &meta), "440 0 0");
    assert_eq!(stat("%a %u %g", &dir), "550 0 0");
    assert_eq!(stat("%a", &m.path), "550");
    assert_eq!(stat("%a", &m.interactions_dir()), "550");
    let by_date = m.path.join("by-date");
    let day = std::fs::read_dir(&by_date)
        .expect("by-date")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|d| {
            std::fs::read_dir(d)
                .map(|mut r| r.next().is_some())
                .unwrap_or(false)
        })
        .expect("a day with interactions");
    let link = std::fs::read_dir(&day)
        .expect("day")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .next()
        .expect("a link");
    assert_eq!(stat("%F %a %u %g", &link), "symbolic link 777 0 0");
    denied(&user, "cat", &file);
    denied(&user, "cat", &meta);
    denied(&user, "getfattr", &dir);
    denied(&user, "getfattr", &file);
    denied(&user, "ls", &m.interactions_dir());
    m.stop();

    // --allow-other --gid GROUP, the user a member: exact bytes, metadata, xattrs.
    run("usermod", &["-aG", acc.group(), &user]);
    let audit_dir = tempfile::tempdir().expect("tempdir");
    let audit = audit_dir.path().join("audit.log");
    let audit_arg = audit.to_string_lossy().to_string();
    let m = mount(
        &emu,
        &[
            "--allow-other",
            "--gid",
            acc.group(),
            "--audit-log",
            &audit_arg,
        ],
    );
    let (file, meta, dir) = paths(&m, &rel);
    let group = acc.group();
    assert_eq!(stat("%a %U %G", &file), format!("440 root {group}"));
    assert_eq!(stat("%a %U %G", &dir), format!("550 root {group}"));
    let (ok, got, err) = as_user(&user, "cat", &[&file]);
    assert!(ok, "cat as a member: {err}");
    assert!(
        got == bytes,
        "{}: wrong bytes for the member",
        file.display()
    );
    let (ok, got, err) = as_user(&user, "cat", &[&meta]);
    assert!(ok, "cat .interaction.json as a member: {err}");
    assert_eq!(got, std::fs::read(&meta).expect("meta as root"));
    let (ok, got, err) = as_user(&user, "getfattr", &[Path::new("-d"), &dir]);
    assert!(ok, "getfattr as a member: {err}");
    assert!(
        String::from_utf8_lossy(&got).contains("user.vcc.direction"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    m.stop();
    // The audit log says who read which recording: the member's uid, the guid, the key.
    let uid = stat_uid(&user);
    let guid = rel
        .iter()
        .next()
        .expect("guid")
        .to_string_lossy()
        .to_string();
    let key = file.file_name().expect("key").to_string_lossy().to_string();
    let log = std::fs::read_to_string(&audit).expect("audit log");
    let mode = std::fs::metadata(&audit)
        .expect("audit")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the audit log is private");
    let hit = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|l| {
            l["uid"] == uid
                && l["guid"] == guid.as_str()
                && l["key"] == key.as_str()
                && l["result"] == "ok"
        });
    assert!(hit, "no audit line for uid {uid}, {guid}/{key}:\n{log}");

    // Directories open to all, files not (gid root: the user is no member): names are
    // visible, content, metadata and every xattr are not — the kernel checks the file's
    // bits for its xattrs, vccfs the file rule for the directory's (phone numbers).
    let m = mount(&emu, &["--allow-other", "--dir-mode", "0555"]);
    let (file, meta, dir) = paths(&m, &rel);
    assert_eq!(stat("%a", &file), "440");
    let (ok, names, err) = as_user(&user, "ls", &[Path::new("-a"), &dir]);
    assert!(ok, "ls as a stranger with 0555 directories: {err}");
    assert!(String::from_utf8_lossy(&names).contains(".interaction.json"));
    denied(&user, "cat", &file);
    denied(&user, "cat", &meta);
    for (name, path) in [
        ("user.vcc.contentType", &file),
        ("user.vcc.direction", &dir),
    ] {
        let (ok, _, err) = as_user(&user, "getfattr", &[Path::new("-n"), Path::new(name), path]);
        assert!(!ok && err.contains("Permission denied"), "{name}: {err}");
    }
    m.stop();

    // --file-mode 0444: anyone reads (directories follow: 0555).
    let m = mount(&emu, &["--allow-other", "--file-mode", "0444"]);
    let (file, meta, dir) = paths(&m, &rel);
    assert_eq!(stat("%a", &file), "444");
    assert_eq!(stat("%a", &dir), "555");
    let (ok, got, err) = as_user(&user, "cat", &[&file]);
    assert!(ok && got == bytes, "cat with 0444: {err}");
    let (ok, got, err) = as_user(&user, "cat", &[&meta]);
    assert!(
        ok && !got.is_empty(),
        "cat .interaction.json with 0444: {err}"
    );
    m.stop();

    // --allow-root: the mounting user and root, nobody else, whatever the modes.
    let m = mount(&emu, &["--allow-root", "--file-mode", "0444"]);
    let (file, meta, dir) = paths(&m, &rel);
    assert_eq!(std::fs::read(&file).expect("root reads"), bytes);
    for path in [&file, &meta] {
        denied(&user, "cat", path);
    }
    denied(&user, "getfattr", &dir);
    m.stop();
}

#[test]
fn bad_modes_and_owners_are_one_line_errors_and_mount_nothing() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "2"]);
    let d = tempfile::tempdir().expect("tempdir");
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let mnt_s = mnt.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--file-mode", "0666"],
            "--file-mode 0666: the mount is read-only",
        ),
        (
            &["--file-mode", "999"],
            "--file-mode 999: not an octal mode",
        ),
        (
            &["--dir-mode", "0755"],
            "--dir-mode 0755: the mount is read-only",
        ),
        (&["--dir-mode", "1555"], "only permission bits"),
        (
            &["--gid", "no-such-group-vccfs"],
            "--gid no-such-group-vccfs: no such group",
        ),
        (
            &["--uid", "no-such-user-vccfs"],
            "--uid no-such-user-vccfs: no such user",
        ),
        (&["--allow-other", "--allow-root"], "cannot be used with"),
    ];
    for (flags, needle) in cases {
        for daemon in [false, true] {
            let mut c = Command::new(BIN);
            c.args(["mount", &mnt_s, "--api-url", &emu.api_url])
                .args(["--auth-url", &emu.auth_url, "--no-disk-cache"])
                .args(*flags)
                .env("VCC_CLIENT_ID", &emu.client_id)
                .env("VCC_CLIENT_SECRET", &emu.client_secret);
            if daemon {
                c.arg("--daemon");
            }
            let out = c.output().expect("vccfs mount");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{flags:?} should fail: {err}");
            assert!(
                err.contains(needle),
                "{flags:?}: expected {needle:?} in {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            if !needle.contains("cannot be used") {
                // Ours (clap's conflict adds its usage lines).
                assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            }
            assert!(!is_mounted(&mnt), "{flags:?} left a mount");
        }
    }
}
