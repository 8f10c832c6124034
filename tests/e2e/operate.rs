//! Operating vccfs: mounted the way `mount(8)` and `/etc/fstab` do it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{fuse_available, is_mounted, sh, which, Emulator, BIN};

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(needle) && pid != std::process::id() {
            out.push(pid);
        }
    }
    out
}

#[test]
fn mount_t_fuse_vccfs_mounts_reads_exactly_and_umount_stops_the_daemon() {
    if !fuse_available() {
        return;
    }
    let root = unsafe { libc::geteuid() } == 0;
    if !root || !which("mount.fuse3") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with fuse3"
        );
        eprintln!("SKIP: mount -t fuse.vccfs needs root and mount.fuse3");
        return;
    }
    let emu = Emulator::start(&["--interactions", "6", "--seed", "13"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let cred = dir.path().join("vccfs.cred");
    std::fs::write(
        &cred,
        format!(
            "VCC_CLIENT_ID={}\nVCC_CLIENT_SECRET={}\n",
            emu.client_id, emu.client_secret
        ),
    )
    .expect("credentials");
    std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // mount(8) runs helpers with a standard PATH: put this build of vccfs on it, as an
    // install would (and take it away after, unless something else was there).
    let link = Path::new("/usr/local/bin/vccfs");
    struct Installed(Option<std::path::PathBuf>);
    impl Drop for Installed {
        fn drop(&mut self) {
            if let Some(l) = &self.0 {
                let _ = std::fs::remove_file(l);
            }
        }
    }
    let _installed = match std::fs::symlink_metadata(link) {
        Ok(_) => Installed(None),
        Err(_) => {
            std::os::unix::fs::symlink(BIN, link).expect("install vccfs on PATH");
            Installed(Some(link.to_path_buf()))
        }
    };
    let installed = std::fs::canonicalize(link).ok();
    assert_eq!(
        installed.as_deref(),
        std::fs::canonicalize(BIN).ok().as_deref(),
        "/usr/local/bin/vccfs is another vccfs"
    );
    let options = format!(
        "rw,nosuid,_netdev,x-systemd.automount,credentials={},auth_url={},cache_dir={},from=40d,to=1d",
        cred.display(),
        emu.auth_url,
        dir.path().join("cache").display()
    );
    let (ok, out, err) = sh(&format!(
        "mount -t fuse.vccfs '{}' '{}' -o '{options}'",
        emu.api_url,
        mnt.display()
    ));
    assert!(ok, "mount failed: {out} {err}");
    assert!(is_mounted(&mnt), "mount returned before the mount was live");

    let token = emu.token();
    let now = time::OffsetDateTime::now_utc();
    let mut files = 0;
    for i in emu.interactions(&token, now - time::Duration::days(40), now) {
        let guid = i["guid"].as_str().expect("guid");
        for c in i["content"].as_array().expect("content") {
            let key = c["contentKey"].as_str().expect("key");
            let got = std::fs::read(mnt.join("interactions").join(guid).join(key)).expect("read");
            assert!(got == emu.content(&token, guid, key), "{guid}/{key}");
            files += 1;
        }
    }
    assert!(files > 5, "{files} files");

    let needle = mnt.to_string_lossy().to_string();
    assert!(
        !processes_mentioning(&needle).is_empty(),
        "a daemon serves the mount"
    );
    let (ok, _, err) = sh(&format!("umount '{}'", mnt.display()));
    assert!(ok, "umount: {err}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !processes_mentioning(&needle).is_empty() {
        assert!(Instant::now() < deadline, "a vccfs process outlived umount");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (n, rest) = key.split_once('{').unwrap_or((key, ""));
            (n == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

fn scrape(addr: &str) -> String {
    let (ok, out, err) = sh(&format!("curl -sf http://{addr}/metrics"));
    assert!(ok, "scrape failed: {err}");
    out
}

#[test]
fn metrics_move_by_what_was_read_and_status_tells_live_from_dead() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "20", "--seed", "14"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let addr = format!("127.0.0.1:{port}");
    let m = crate::common::Mount::start(&emu, &["--metrics", &addr, "--max-rpm", "600"]);
    let before = scrape(&addr);
    let content = |t: &str| metric(t, "vccfs_api_requests_total", &["purpose=\"content\""]);
    let disk_hits = |t: &str| metric(t, "vccfs_cache_hits_total", &["tier=\"disk\""]);

    // Ten transcripts nobody has read: ten content requests at least, no disk hits.
    let (ok, out, _) = sh(&format!(
        "ls -d '{}'/*/transcript | head -10",
        m.interactions_dir().display()
    ));
    assert!(ok);
    let files: Vec<&str> = out.lines().collect();
    assert_eq!(files.len(), 10, "ten transcripts");
    for f in &files {
        std::fs::read(f).expect("cat");
    }
    let after = scrape(&addr);
    assert!(
        content(&after) - content(&before) >= 10.0,
        "content requests {} -> {}",
        content(&before),
        content(&after)
    );
    assert_eq!(
        disk_hits(&after) - disk_hits(&before),
        0.0,
        "nothing came from disk"
    );
    assert!(metric(&after, "vccfs_read_latency_seconds_count", &[]) >= 10.0);
    assert!(metric(&after, "vccfs_interactions_listed", &[]) >= 20.0);
    assert!(after.contains("vccfs_budget_slots_left"), "{after}");

    // Status: the window and the budget of the live mount, as text and as JSON.
    let mnt = m.path.display().to_string();
    let status = std::process::Command::new(BIN)
        .args(["status", &mnt])
        .output()
        .expect("vccfs status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "status failed: {text}");
    assert!(
        text.contains("window") && text.contains(&vccfs::util::format_rfc3339(m.from)),
        "{text}"
    );
    assert!(text.contains("of 600/min"), "{text}");
    let json = std::process::Command::new(BIN)
        .args(["status", "--json", &mnt])
        .output()
        .expect("vccfs status --json");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["max_rpm"], 600);
    assert!(v["interactions_listed"].as_u64().unwrap_or(0) >= 20);

    // A dead mount (the daemon killed): status says so and fails.
    let _ = sh(&format!("kill -9 {}", m.pid()));
    std::thread::sleep(Duration::from_millis(300));
    let dead = std::process::Command::new(BIN)
        .args(["status", &mnt])
        .output()
        .expect("vccfs status");
    assert!(!dead.status.success(), "status of a dead mount must fail");
    let err = String::from_utf8_lossy(&dead.stderr);
    assert!(err.contains("not a running vccfs mount"), "{err}");
    drop(m);
}

/// Content requests of one `grep -r` over the transcripts of `m`.
fn grep_requests(emu: &Emulator, m: &crate::common::Mount) -> u64 {
    emu.reset_stats();
    let (ok, _, err) = sh(&format!(
        "grep -rl --include=transcript refund '{}' >/dev/null; true",
        m.interactions_dir().display()
    ));
    assert!(ok, "{err}");
    emu.stat("content_requests")
}

#[test]
fn warm_fills_the_disk_cache_so_grep_costs_no_requests_and_resumes() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "30", "--seed", "15"]);
    let keep = tempfile::tempdir().expect("tempdir");
    let cache = keep.path().join("cache").display().to_string();
    let flags = ["--max-rpm", "6000", "--cache-dir", cache.as_str()];
    let m = crate::common::Mount::start(&emu, &flags);
    let mnt = m.path.display().to_string();
    let warm = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("warm")
            .arg(&mnt)
            .args(args)
            .output()
            .expect("vccfs warm");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "warm failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let first = warm(&["--keys", "transcript"]);
    let line = first.lines().last().unwrap_or_default().to_string();
    assert!(
        line.starts_with("warm: ") && line.contains("0 failed"),
        "{line}"
    );
    // "N files fetched (...), M skipped ...": the daemon's scan read-ahead may have
    // fetched some before warm came to them (skipped as cached).
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let (fetched, skipped) = (numbers[0], numbers[2]);
    let transcripts = fetched + skipped;
    assert!(fetched >= 1 && transcripts >= 10, "{line}");

    // Every transcript is on disk now: grep costs no content request.
    assert_eq!(grep_requests(&emu, &m), 0, "grep after warm made requests");

    // A second run skips what is cached.
    let again = warm(&["--keys", "transcript"]);
    let line = again.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("warm: 0 files fetched")
            && line.contains(&format!("{transcripts} skipped")),
        "{line}"
    );

    // And it is the disk that holds them: after a remount, grep still costs nothing.
    m.stop();
    let m = crate::common::Mount::start(&emu, &flags);
    assert_eq!(
        grep_requests(&emu, &m),
        0,
        "grep after a remount made requests"
    );
}

#[test]
fn ctrl_c_stops_warm_cleanly_with_its_final_line() {
    if !fuse_available() {
        return;
    }
    let emu = Emulator::start(&["--interactions", "30", "--seed", "16"]);
    // 6 a minute: warm takes 3, so it is still pacing itself when interrupted. A
    // window of 10 days lists in 2 searches.
    let now = time::OffsetDateTime::now_utc();
    let (from, to) = (
        now - time::Duration::days(10),
        now + time::Duration::days(1),
    );
    let m = crate::common::Mount::start_window(&emu, from, to, &["--max-rpm", "6"]);
    let child = std::process::Command::new(BIN)
        .args([
            "warm",
            &m.path.display().to_string(),
            "--keys",
            "transcript",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("vccfs warm");
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let out = child.wait_with_output().expect("warm exits");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "warm did not stop at Ctrl-C"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("warm: ") && line.ends_with("(interrupted)"),
        "{text}"
    );
    // The mount is unharmed and still serving.
    let status = std::process::Command::new(BIN)
        .args(["status", &m.path.display().to_string()])
        .output()
        .expect("vccfs status");
    assert!(status.status.success(), "the mount died with warm");
}

/// The daemon's node table size, from `vccfs status --json`.
fn nodes_held(mnt: &Path) -> u64 {
    let out = std::process::Command::new(BIN)
        .args(["status", "--json"])
        .arg(mnt)
        .output()
        .expect("vccfs status --json");
    assert!(out.status.success(), "status failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["nodes"].as_u64().expect("a node count in the snapshot")
}

/// Ignored by default: `drop_caches` empties the whole machine's inode and page
/// caches, which breaks the page-cache assertions of tests running alongside. Run it
/// alone: `cargo test --test e2e inodes_the_kernel -- --ignored`.
#[test]
#[ignore = "drops the machine's caches: run alone with --ignored"]
fn inodes_the_kernel_evicts_leave_the_node_table() {
    if !fuse_available() {
        return;
    }
    let drop_caches = Path::new("/proc/sys/vm/drop_caches");
    if std::fs::OpenOptions::new()
        .write(true)
        .open(drop_caches)
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("SKIP: cannot write /proc/sys/vm/drop_caches");
        return;
    }
    let emu = Emulator::start(&["--interactions", "20"]);
    let m = crate::common::Mount::start(&emu, &[]);
    let walk = || {
        // `%s` makes find stat every path (else it trusts readdir's types for leaves).
        let (ok, out, err) = sh(&format!(
            "find '{}' -printf '%s\\n' | wc -l",
            m.path.display()
        ));
        assert!(ok, "{err}");
        out.trim().parse::<u64>().expect("a count")
    };
    let seen = walk();
    let held = nodes_held(&m.path);
    // Every guid directory, its files and its by-date link were looked up.
    assert!(held >= 20 * 4, "{held} nodes after a walk of {seen} paths");
    assert_eq!(held, seen - 3, "one node per path but the three fixed ones");

    // Evicted inodes are forgotten (the kernel sends the forgets in batches).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = held;
    while Instant::now() < deadline {
        std::fs::write(drop_caches, "2").expect("drop caches");
        std::thread::sleep(Duration::from_millis(300));
        now = nodes_held(&m.path);
        if now <= held / 10 {
            break;
        }
    }
    assert!(now <= held / 10, "{held} nodes fell only to {now}");
    eprintln!("nodes: {held} after a walk of {seen} paths, {now} after drop_caches");

    // Forgotten nodes are looked up afresh: the same tree, the same table.
    assert_eq!(walk(), seen, "the same tree after the forgets");
    assert_eq!(nodes_held(&m.path), held, "the table grew back, no more");
    let (ok, out, _) = sh(&format!(
        "cat '{}'/*/.interaction.json | wc -c",
        m.interactions_dir().display()
    ));
    assert!(ok && out.trim() != "0", "metadata reads after re-lookup");
    m.stop();
}
