//! The mountpoint as the kernel sees it: checks before mounting (exists, a directory,
//! empty, not mounted; a dead vccfs mount is cleared), `vccfs unmount`, lazy detaching,
//! and raising the kernel read-ahead of the mounted device.
//!
//! Invariants: what is mounted where comes only from [`mountinfo`] (one parser); the
//! device of a fresh mount is found without touching the mount itself; releasing a mount
//! tries fusermount3, fusermount, then umount, in that order.

use std::path::Path;
use std::process::{Command, Stdio};

use super::{mountinfo, MountError};

/// Ways to release a mount, tried in turn: as its user (FUSE 3, then 2), then as root.
const UNMOUNT: [(&str, &[&str]); 3] = [
    ("fusermount3", &["-u"]),
    ("fusermount", &["-u"]),
    ("umount", &[]),
];
/// The same, lazily: detach it now even if busy or dead, release it when no longer used.
const DETACH: [(&str, &[&str]); 3] = [
    ("fusermount3", &["-uz"]),
    ("fusermount", &["-uz"]),
    ("umount", &["-l"]),
];

/// The mountpoint must be an existing, empty directory that is not mounted. A dead
/// vccfs mount left by a killed process is cleared.
pub fn check_mountpoint(path: &Path) -> Result<(), MountError> {
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            // "Transport endpoint is not connected": a dead FUSE mount.
            if detach_unmount(path) {
                eprintln!(
                    "vccfs: cleared a dead mount at {shown} left by a previous vccfs process"
                );
            } else {
                return Err(MountError::DeadMount(path.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountError::MissingMountpoint(path.to_path_buf()))
        }
        Err(e) => {
            return Err(MountError::Unreadable {
                path: path.to_path_buf(),
                source: e,
            })
        }
        Ok(m) if !m.is_dir() => return Err(MountError::NotADirectory(path.to_path_buf())),
        Ok(_) => {}
    }
    if is_mounted(path) {
        return Err(MountError::AlreadyMounted(path.to_path_buf()));
    }
    let mut entries = std::fs::read_dir(path).map_err(|e| MountError::Unreadable {
        path: path.to_path_buf(),
        source: e,
    })?;
    if entries.next().is_some() {
        return Err(MountError::NotEmpty(path.to_path_buf()));
    }
    Ok(())
}

/// Is `path` a mountpoint (per /proc/self/mountinfo)?
fn is_mounted(path: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|canon| mountinfo::find(&canon).is_some())
}

/// Lazily detach a mount (works for dead FUSE mounts).
pub(super) fn detach_unmount(path: &Path) -> bool {
    first_success(&DETACH, path).is_ok()
}

/// Run each command on `path` until one succeeds; otherwise the stderr of the last one
/// that ran (commands that are not installed are skipped).
fn first_success(commands: &[(&str, &[&str])], path: &Path) -> Result<(), String> {
    let mut last_err = String::new();
    for (cmd, args) in commands {
        match Command::new(cmd)
            .args(*args)
            .arg(path)
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => last_err = String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(_) => continue,
        }
    }
    Err(last_err)
}

/// `vccfs unmount`: release the mount; the serving process then exits.
pub fn unmount(path: &Path) -> Result<(), MountError> {
    let dead =
        matches!(std::fs::metadata(path), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
    if !dead && !is_mounted(path) {
        return Err(MountError::NotMounted(path.to_path_buf()));
    }
    let Err(reason) = first_success(&UNMOUNT, path) else {
        return Ok(());
    };
    if dead && detach_unmount(path) {
        return Ok(());
    }
    Err(MountError::CannotUnmount {
        path: path.to_path_buf(),
        reason,
    })
}

/// Kernel read-ahead on a FUSE mount defaults to 128 KiB, which caps each read request
/// the kernel sends us at 128 KiB. Raise it (needs root; otherwise nothing changes) so
/// sequential readers get up to 1 MiB requests and more of them in flight.
pub(super) fn tune_kernel_readahead(mountpoint: &Path) {
    const READ_AHEAD_KB: u32 = 4096;
    let Some(dev) = mount_device(mountpoint) else {
        return;
    };
    let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    match std::fs::write(&knob, READ_AHEAD_KB.to_string()) {
        Ok(()) => tracing::info!(%knob, kb = READ_AHEAD_KB, "raised kernel read-ahead"),
        Err(e) => tracing::debug!(%knob, error = %e, "kernel read-ahead left as is"),
    }
}

/// `major:minor` of the filesystem mounted at `path` (from /proc/self/mountinfo, without
/// touching the mount itself).
fn mount_device(path: &Path) -> Option<String> {
    let canon = std::fs::canonicalize(path.parent()?)
        .ok()?
        .join(path.file_name()?);
    mountinfo::find(&canon).map(|e| e.device)
}
