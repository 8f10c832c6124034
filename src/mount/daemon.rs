//! `--daemon`: the parent re-runs this program (same arguments minus `--daemon`, with
//! [`DAEMON_CHILD_ENV`] set) and waits on the child's stdout for [`READY_LINE`]; on it, it
//! reports the pid and returns, otherwise the child's last `vccfs: ` stderr line is the
//! error. The child serves as usual, then announces itself and lets go of the pipes.
//!
//! Invariants: the child's arguments are exactly the user's minus `--daemon`
//! ([`child_args`]): nothing is added, so no secret appears in its `/proc/PID/cmdline`
//! that was not in the parent's (and the parent's holds none: `cli::options` refuses a
//! password in a URL before this runs; secrets come from the environment, which the
//! child inherits and only its owner can read, or from files). The daemon child prints the ready line only once the session is live
//! (the parent returning means the mount works); after it, the child writes nothing to
//! the parent's pipes (logs go to `--log-file` or /dev/null) and leaves its session.
//! The log file is opened `O_APPEND|O_NOFOLLOW|O_CLOEXEC`, created 0600 ([`open_log`]):
//! a symbolic link there, or a file of another user, is refused (by the parent,
//! before anything starts, as a one-line error).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use super::{MountError, MountOptions};

/// Environment variable that marks the background child of `--daemon`.
const DAEMON_CHILD_ENV: &str = "VCCFS_DAEMON_CHILD";
/// What the child prints on stdout once the mount is live.
const READY_LINE: &str = "vccfs-ready";

/// Is this process the background child of `--daemon`?
pub(crate) fn is_child() -> bool {
    std::env::var_os(DAEMON_CHILD_ENV).is_some()
}

/// Start this program again in the background and wait for its verdict.
pub(super) fn spawn_daemon(opts: &MountOptions) -> Result<(), MountError> {
    if let Some(p) = &opts.log_file {
        open_log(p).map_err(MountError::UnsafeDir)?;
    }
    let exe = std::env::current_exe().map_err(|source| MountError::Start {
        what: "find own executable",
        source,
    })?;
    let args = child_args(std::env::args_os().skip(1));
    let mut child = std::process::Command::new(exe)
        .args(args)
        .env(DAEMON_CHILD_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| MountError::Start {
            what: "start the background process",
            source,
        })?;
    let stdout = child.stdout.take().ok_or(MountError::NoPipe)?;
    let stderr = child.stderr.take();
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(l) if l.trim() == READY_LINE => {
                eprintln!(
                    "vccfs: mounted {} in the background (pid {})",
                    opts.mountpoint.display(),
                    child.id()
                );
                return Ok(());
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    // The child ended without mounting: its last stderr line is the reason.
    let _ = child.wait();
    let reason = stderr
        .map(|s| {
            BufReader::new(s)
                .lines()
                .map_while(Result::ok)
                .filter(|l| l.starts_with("vccfs: "))
                .last()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let reason = reason
        .trim_start_matches("vccfs: ")
        .trim_start_matches("error: ")
        .to_string();
    Err(if reason.is_empty() {
        MountError::BackgroundExited
    } else {
        MountError::Background(reason)
    })
}

/// The child's arguments: the parent's (program name excluded) minus `--daemon`,
/// nothing added.
fn child_args(parent: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    parent.filter(|a| a != "--daemon").collect()
}

/// In the child, once the session is live: tell the parent, then detach from its pipes.
pub(super) fn announce_ready(log_file: Option<&Path>) {
    println!("{READY_LINE}");
    let _ = std::io::stdout().flush();
    detach_stdio(log_file);
}

/// After start-up, the daemon child stops writing to its parent's pipes.
fn detach_stdio(log_file: Option<&Path>) {
    use std::os::fd::AsRawFd;
    let target = log_file.and_then(|p| open_log(p).ok()).or_else(|| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .ok()
    });
    if let Some(f) = target {
        // SAFETY: dup2 onto the standard descriptors of our own process; `f` outlives the calls.
        unsafe {
            libc::dup2(f.as_raw_fd(), 1);
            libc::dup2(f.as_raw_fd(), 2);
            libc::setsid();
        }
    }
}

/// Open (creating it 0600) the log file `path` for appending, never through a
/// symbolic link; a regular file must be the effective user's. Errors are one line.
pub(super) fn open_log(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!("--log-file {shown}: is a symbolic link; refused"),
            _ => format!("--log-file {shown}: {e}"),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("--log-file {shown}: {e}"))?;
    let euid = crate::safe_fs::euid();
    if meta.is_file() && meta.uid() != euid {
        return Err(format!(
            "--log-file {shown}: owned by uid {}, not by this user (uid {euid}); refused",
            meta.uid()
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_gets_the_same_arguments_minus_daemon_and_nothing_more() {
        let parent = [
            "mount",
            "/m",
            "--daemon",
            "--redis-credentials",
            "/etc/r",
            "-v",
        ];
        let got = child_args(parent.iter().map(std::ffi::OsString::from));
        assert_eq!(got, ["mount", "/m", "--redis-credentials", "/etc/r", "-v"]);
    }
}
