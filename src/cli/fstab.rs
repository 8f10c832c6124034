//! `mount -t fuse.vccfs SOURCE MOUNTPOINT -o OPTIONS` (and `/etc/fstab`): `mount.fuse3`
//! runs `vccfs SOURCE MOUNTPOINT -o OPTIONS`, which is turned here into the equivalent
//! `vccfs mount MOUNTPOINT ... --daemon` before clap parses it.
//!
//! - SOURCE is a region name (`emea`, `nam`, `apac`) or an API URL.
//! - Every long flag of `vccfs mount` is accepted as an option, with dashes or
//!   underscores: `credentials=FILE`, `from=30d`, `cache_dir=DIR`, `allow_other`, …;
//!   who may read is `allow_other` or `allow_root` with `uid=`, `gid=` (names or
//!   numbers), `file_mode=`, `dir_mode=` (octal), e.g. `allow_other,gid=vccfs`.
//! - Generic mount options (`rw`, `ro`, `dev`, `suid`, `exec`, `auto`, `noauto`, `user`,
//!   `_netdev`, `nofail`, `defaults`, `x-systemd.*`, …) are the mount's business, not
//!   ours, and are ignored.
//! - The mount goes to the background and the command returns once it is live, as
//!   `mount` expects; the option `foreground` keeps it in the foreground.

use std::ffi::{OsStr, OsString};

/// Commands `vccfs` knows: a first argument that is one of them is not a SOURCE.
const COMMANDS: &[&str] = &[
    "mount", "unmount", "demo", "emulator", "cache", "status", "warm", "erase", "refresh",
    "doctor", "help",
];

/// Options that belong to `mount(8)` itself.
fn is_generic(option: &str) -> bool {
    const GENERIC: &[&str] = &[
        "rw",
        "ro",
        "dev",
        "nodev",
        "suid",
        "nosuid",
        "exec",
        "noexec",
        "auto",
        "noauto",
        "user",
        "nouser",
        "users",
        "owner",
        "group",
        "_netdev",
        "nofail",
        "defaults",
        "async",
        "sync",
        "atime",
        "noatime",
        "relatime",
        "strictatime",
        "nodiratime",
        "diratime",
        "lazytime",
        "silent",
        "loud",
        "default_permissions",
    ];
    GENERIC.contains(&option)
        || option.starts_with("x-")
        || option.starts_with("comment=")
        || option.starts_with("fsname=")
        || option.starts_with("subtype=")
}

/// The `vccfs mount …` arguments for an fstab-style command line, or `None` when
/// `args` (program name first) is an ordinary `vccfs` command line.
pub fn translate(args: &[OsString]) -> Option<Result<Vec<OsString>, String>> {
    let first = args.get(1)?.to_str()?;
    if first.starts_with('-') || COMMANDS.contains(&first) || args.len() < 3 {
        return None;
    }
    Some(fstab_args(args))
}

fn fstab_args(args: &[OsString]) -> Result<Vec<OsString>, String> {
    let mut out: Vec<OsString> = vec![args[0].clone(), "mount".into()];
    let mut positional: Vec<&OsStr> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        let s = a.to_string_lossy();
        if s == "-o" {
            let v = rest.next().ok_or("-o needs a list of options")?;
            options.extend(v.to_string_lossy().split(',').map(str::to_string));
        } else if let Some(v) = s.strip_prefix("-o") {
            options.extend(v.split(',').map(str::to_string));
        } else if s.starts_with('-') {
            // mount.fuse3 may pass -n (no mtab), -s (sloppy), -v, -f: nothing for us.
            continue;
        } else {
            positional.push(a);
        }
    }
    let [source, mountpoint] = positional[..] else {
        return Err(format!(
            "expected SOURCE MOUNTPOINT [-o OPTIONS], got {} positional arguments",
            positional.len()
        ));
    };
    out.push(mountpoint.to_owned());
    let source = source.to_string_lossy();
    match source.as_ref() {
        "emea" | "nam" | "apac" => out.extend(["--region".into(), source.to_string().into()]),
        s if s.starts_with("http://") || s.starts_with("https://") => {
            out.extend(["--api-url".into(), s.to_string().into()])
        }
        other => {
            return Err(format!(
                "source {other:?} is neither a region (emea, nam, apac) nor an API URL"
            ))
        }
    }
    let mut foreground = false;
    for o in options.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        if is_generic(o) {
            continue;
        }
        if o == "foreground" {
            foreground = true;
            continue;
        }
        let (name, value) = match o.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (o, None),
        };
        out.push(format!("--{}", name.replace('_', "-")).into());
        if let Some(v) = value {
            out.push(v.into());
        }
    }
    if !foreground {
        out.push("--daemon".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Option<Result<Vec<String>, String>> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        translate(&args).map(|r| {
            r.map(|v| {
                v.into_iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect()
            })
        })
    }

    #[test]
    fn an_fstab_line_becomes_a_daemon_mount() {
        let got = t(&[
            "vccfs",
            "http://127.0.0.1:8080/interaction-content",
            "/mnt/vcc",
            "-o",
            "rw,nosuid,nodev,_netdev,x-systemd.automount,credentials=/etc/vccfs.cred,from=30d,cache_dir=/var/cache/vccfs,allow_other",
        ]);
        assert_eq!(
            got,
            Some(Ok([
                "vccfs",
                "mount",
                "/mnt/vcc",
                "--api-url",
                "http://127.0.0.1:8080/interaction-content",
                "--credentials",
                "/etc/vccfs.cred",
                "--from",
                "30d",
                "--cache-dir",
                "/var/cache/vccfs",
                "--allow-other",
                "--daemon",
            ]
            .map(String::from)
            .to_vec()))
        );
        let region = t(&[
            "vccfs",
            "nam",
            "/m",
            "-n",
            "-o",
            "disk-cache-size=20G,foreground",
        ]);
        assert_eq!(
            region,
            Some(Ok([
                "vccfs",
                "mount",
                "/m",
                "--region",
                "nam",
                "--disk-cache-size",
                "20G"
            ]
            .map(String::from)
            .to_vec()))
        );
    }

    #[test]
    fn ordinary_command_lines_are_left_alone_and_bad_ones_explained() {
        assert_eq!(t(&["vccfs", "mount", "/m", "--region", "emea"]), None);
        assert_eq!(t(&["vccfs", "--help"]), None);
        assert_eq!(t(&["vccfs", "demo", "/tmp/x"]), None);
        assert!(
            matches!(t(&["vccfs", "mars", "/m"]), Some(Err(e)) if e.contains("neither a region"))
        );
        assert!(matches!(t(&["vccfs", "emea", "/m", "/n"]), Some(Err(_))));
        assert!(matches!(t(&["vccfs", "emea", "/m", "-o"]), Some(Err(_))));
    }

    #[test]
    fn owner_and_mode_options_become_their_flags() {
        let got = t(&[
            "vccfs",
            "emea",
            "/m",
            "-o",
            "_netdev,allow_other,uid=vccfs,gid=vccfs,file_mode=0440,dir_mode=0550,foreground",
        ]);
        let want = [
            "vccfs",
            "mount",
            "/m",
            "--region",
            "emea",
            "--allow-other",
            "--uid",
            "vccfs",
            "--gid",
            "vccfs",
            "--file-mode",
            "0440",
            "--dir-mode",
            "0550",
        ];
        assert_eq!(got, Some(Ok(want.map(String::from).to_vec())));
        let root = t(&["vccfs", "emea", "/m", "-o", "allow_root,gid=1001"]);
        let want = [
            "vccfs",
            "mount",
            "/m",
            "--region",
            "emea",
            "--allow-root",
            "--gid",
            "1001",
            "--daemon",
        ];
        assert_eq!(root, Some(Ok(want.map(String::from).to_vec())));
    }

    #[test]
    fn the_disk_cache_options_become_their_flags() {
        let got = t(&[
            "vccfs",
            "emea",
            "/m",
            "-o",
            "disk_encryption=none,cache_key_file=/etc/vccfs/key,disk_cache_max_age=7d,foreground",
        ]);
        let want = [
            "vccfs",
            "mount",
            "/m",
            "--region",
            "emea",
            "--disk-encryption",
            "none",
            "--cache-key-file",
            "/etc/vccfs/key",
            "--disk-cache-max-age",
            "7d",
        ];
        assert_eq!(got, Some(Ok(want.map(String::from).to_vec())));
    }
}
