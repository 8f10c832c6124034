//! Safe on a shared host (as root): a mount started like systemd starts one (no HOME,
//! no XDG_*) keeps its cache and socket out of `/tmp` (a `/tmp/vccfs-0` planted by
//! another user stays untouched); an unsafe `--cache-dir` (another user's, a symbolic
//! link) is refused at once with one line and no mount; `--log-file` is created 0600
//! and never followed through a symbolic link.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{fuse_available, is_mounted, Emulator, BIN};

const SMALL_TENANT: &[&str] = &["--interactions", "20", "--seed", "11"];

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("SKIP: needs root (chown, root's default directories)");
    }
    root
}

/// `vccfs ARGS` as systemd would run it: no HOME, no XDG_*, no TMPDIR; systemd's
/// CACHE_DIRECTORY / RUNTIME_DIRECTORY from `unit` (this test's own) when given.
fn bare(args: &[&std::ffi::OsStr], emu: &Emulator, unit: Option<&Path>) -> Output {
    let mut c = Command::new(BIN);
    for v in [
        "HOME",
        "XDG_CACHE_HOME",
        "XDG_RUNTIME_DIR",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "TMPDIR",
        "CACHE_DIRECTORY",
        "RUNTIME_DIRECTORY",
    ] {
        c.env_remove(v);
    }
    if let Some(u) = unit {
        c.env("CACHE_DIRECTORY", u.join("cache"))
            .env("RUNTIME_DIRECTORY", u.join("run"));
    }
    c.args(args)
        .env("VCC_CLIENT_ID", &emu.client_id)
        .env("VCC_CLIENT_SECRET", &emu.client_secret)
        .output()
        .expect("run vccfs")
}

fn mount_args<'a>(mnt: &'a Path, emu: &'a Emulator, extra: &[&'a str]) -> Vec<&'a std::ffi::OsStr> {
    let mut a: Vec<&std::ffi::OsStr> = vec!["mount".as_ref(), mnt.as_os_str()];
    for s in [
        "--api-url",
        &emu.api_url,
        "--auth-url",
        &emu.auth_url,
        "--from",
        "60d",
    ] {
        a.push(s.as_ref());
    }
    a.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    a
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn unmount(mnt: &Path) {
    let _ = Command::new("fusermount3").arg("-u").arg(mnt).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mounted(mnt) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!is_mounted(mnt), "unmounted");
}

/// `/tmp/vccfs-0` as another user planted it (mtime, entries); whatever was there
/// before (an older vccfs's) is moved aside and put back when this is dropped.
struct Planted {
    mtime: (i64, i64),
    entries: Vec<std::ffi::OsString>,
    aside: Option<std::path::PathBuf>,
}

const PLANTED: &str = "/tmp/vccfs-0";

fn plant() -> Planted {
    let p = Path::new(PLANTED);
    let aside = std::fs::symlink_metadata(p).is_ok().then(|| {
        let to = std::path::PathBuf::from(format!("/tmp/vccfs-0.aside-{}", std::process::id()));
        std::fs::rename(p, &to).expect("move the old /tmp/vccfs-0 aside");
        to
    });
    std::fs::create_dir(p).expect("mkdir /tmp/vccfs-0");
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    std::os::unix::fs::chown(p, Some(65534), Some(65534)).expect("chown");
    let m = std::fs::symlink_metadata(p).expect("stat");
    Planted {
        mtime: (m.mtime(), m.mtime_nsec()),
        entries: listing(p),
        aside,
    }
}

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(PLANTED);
        if let Some(from) = &self.aside {
            let _ = std::fs::rename(from, PLANTED);
        }
    }
}

fn listing(p: &Path) -> Vec<std::ffi::OsString> {
    let mut v: Vec<_> = std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_root_mount_without_home_or_xdg_never_touches_tmp() {
    if !fuse_available() || !is_root() {
        return;
    }
    let planted = plant();
    let emu = Emulator::start(SMALL_TENANT);
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let unit = dir.path();
    let up = bare(&mount_args(&mnt, &emu, &["--daemon"]), &emu, Some(unit));
    assert!(up.status.success(), "{}", stderr(&up));
    assert!(is_mounted(&mnt));
    {
        // (A DirEntry keeps its directory open: dropped before the unmount.)
        let guid = std::fs::read_dir(mnt.join("interactions"))
            .expect("readdir")
            .flatten()
            .map(|e| e.path())
            .next()
            .expect("an interaction");
        let some = std::fs::read_dir(&guid)
            .expect("guid dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| !p.ends_with(".interaction.json"))
            .expect("a content file");
        assert!(!std::fs::read(some).expect("read").is_empty());
    }
    let status = bare(&["status".as_ref(), mnt.as_os_str()], &emu, Some(unit));
    assert!(status.status.success(), "{}", stderr(&status));
    // Where things went: systemd's directories, private.
    let cache = unit.join("cache");
    let run = unit.join("run");
    assert!(cache.join("CACHEDIR.TAG").exists());
    for d in [&cache, &run] {
        let m = std::fs::metadata(d).expect("dir");
        assert_eq!((m.mode() & 0o777, m.uid()), (0o700, 0), "{}", d.display());
    }
    let sock = std::fs::read_dir(&run)
        .expect("run")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        .expect("the status socket");
    assert_eq!(sock.metadata().expect("sock").mode() & 0o777, 0o600);
    unmount(&mnt);

    // Without systemd's variables: no HOME, no XDG, still nothing in /tmp. (Its
    // cache defaults to /var/cache/vccfs: --no-disk-cache keeps this test from
    // sharing it; the socket goes to /run/vccfs.)
    let up = bare(
        &mount_args(&mnt, &emu, &["--daemon", "--no-disk-cache"]),
        &emu,
        None,
    );
    assert!(up.status.success(), "{}", stderr(&up));
    let status = bare(&["status".as_ref(), mnt.as_os_str()], &emu, None);
    assert!(status.status.success(), "{}", stderr(&status));
    unmount(&mnt);

    let m = std::fs::symlink_metadata(PLANTED).expect("still there");
    assert_eq!((m.mtime(), m.mtime_nsec()), planted.mtime, "untouched");
    assert_eq!(
        (m.uid(), m.mode() & 0o777),
        (65534, 0o777),
        "still the other user's"
    );
    assert_eq!(
        listing(Path::new(PLANTED)),
        planted.entries,
        "nothing added"
    );
    drop(planted);
}

/// A refused mount: quick, one line naming the problem, no mount left behind.
fn refused(mnt: &Path, emu: &Emulator, extra: &[&str], unit: &Path, says: &str) {
    let started = Instant::now();
    let out = bare(&mount_args(mnt, emu, extra), emu, Some(unit));
    let took = started.elapsed();
    assert!(!out.status.success(), "refused");
    let err = stderr(&out);
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].contains(says), "{err}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(!is_mounted(mnt), "no mount left behind");
}

#[test]
fn an_unsafe_cache_dir_is_refused_at_once_with_one_line() {
    if !fuse_available() || !is_root() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).expect("mkdir");
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
    let t = theirs.to_str().expect("utf-8");
    refused(
        &mnt,
        &emu,
        &["--cache-dir", t],
        dir.path(),
        "owned by uid 65534",
    );
    let link = dir.path().join("link");
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).expect("mkdir");
    std::os::unix::fs::symlink(&mine, &link).expect("symlink");
    let l = link.to_str().expect("utf-8");
    refused(&mnt, &emu, &["--cache-dir", l], dir.path(), "symbolic link");
    refused(
        &mnt,
        &emu,
        &["--cache-dir", l, "--daemon"],
        dir.path(),
        "symbolic link",
    );
    assert_eq!(listing(&mine).len(), 0, "nothing written through the link");
    assert_eq!(listing(&theirs).len(), 0, "nothing written in theirs");
}

#[test]
fn the_daemon_log_file_is_0600_and_never_a_symlink() {
    if !fuse_available() || !is_root() {
        return;
    }
    let emu = Emulator::start(SMALL_TENANT);
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let log = dir.path().join("vccfs.log");
    let l = log.to_str().expect("utf-8");
    let up = bare(
        &mount_args(&mnt, &emu, &["--daemon", "--log-file", l, "-v"]),
        &emu,
        Some(dir.path()),
    );
    assert!(up.status.success(), "{}", stderr(&up));
    assert_eq!(std::fs::metadata(&log).expect("log").mode() & 0o777, 0o600);
    unmount(&mnt);
    // A link at F: refused before anything starts; its target untouched.
    let target = dir.path().join("target");
    std::fs::write(&target, b"precious\n").expect("target");
    let link = dir.path().join("link.log");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let k = link.to_str().expect("utf-8");
    refused(
        &mnt,
        &emu,
        &["--daemon", "--log-file", k],
        dir.path(),
        "symbolic link",
    );
    assert_eq!(std::fs::read(&target).expect("target"), b"precious\n");
}
