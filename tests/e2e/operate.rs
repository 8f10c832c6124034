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
