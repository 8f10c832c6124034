//! Running a mount: take validated [`MountOptions`], mount, serve until unmounted or
//! signalled, and unmount cleanly. `--daemon` runs the same in a child process and
//! returns only once the mount is live (or has failed).
//!
//! The order of start-up is the contract with the user: everything that can fail without
//! the kernel fails before anything is mounted. The mountpoint is checked
//! (`mountpoint`), the window is listed once (a wrong URL, region or secret ends here
//! with one clear line), and only then is the FUSE session created (`serve`). Once it
//! is live: kernel read-ahead is raised where allowed, SIGINT/SIGTERM unmount, the
//! catalog is re-listed every `refresh` and what changed is invalidated in the kernel,
//! and the user is told (a line on stderr, or the ready line to a `--daemon` parent).
//! The re-list timer is the catalog's ([`crate::catalog::spawn_refresher`]); the mount
//! only hands it a callback that queues kernel invalidations.
//!
//! Files, one job each:
//! - `serve`: the runtime, wiring catalog/cache/prefetcher/fs, the session, signals;
//! - `budget`: how `--cache-size` is shared out between blocks and read-ahead;
//! - `daemon`: `--daemon`, re-running this program in the background;
//! - `mountpoint`: checking, unmounting, and the device's kernel read-ahead;
//! - `mountinfo`: the one parser of /proc/self/mountinfo.
//!
//! Invariants:
//! - `mount` never imports `cli`: flags are parsed and checked there, into
//!   [`MountOptions`]; errors here are [`MountError`]s, which the CLI wraps.
//! - Nothing is mounted before the first listing succeeded.
//! - The daemon child prints the ready line only once the session is live.
//! - Kernel invalidations never run on a runtime worker (that deadlocked).
//! - The serving process is non-dumpable ([`not_dumpable`], before anything is read):
//!   no core dump, no ptrace or `/proc/<pid>/mem` by the same user.

use std::path::PathBuf;
use std::time::Duration;

use time::OffsetDateTime;

use crate::api::{ApiConfig, ApiError};

mod daemon;
mod erase_tiers;
mod memory_plan;
mod mountinfo;
mod mountpoint;
mod serve;

pub(crate) use daemon::is_child as is_daemon_child;
pub use mountpoint::{check_mountpoint, unmount};
pub use serve::{runtime, serve};

/// Why mounting, serving or unmounting failed; each prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A directory vccfs would keep things in is not private (a symbolic link,
    /// another owner, writable by group or others): one line naming it.
    #[error("mount failed: {0}")]
    UnsafeDir(String),
    #[error("{0}")]
    Api(#[from] ApiError),
    /// Searching the API URL answered 404.
    #[error("{api_url} does not look like an Interaction Content API (searching it answered 404); check --api-url or --region")]
    NotAnApi { api_url: String },
    #[error("mount failed: cannot reach {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("mountpoint {p} does not exist (create it with mkdir -p {p})", p = .0.display())]
    MissingMountpoint(PathBuf),
    #[error("mountpoint {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("mountpoint {} is not empty", .0.display())]
    NotEmpty(PathBuf),
    #[error("mountpoint {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{p} is a dead FUSE mount; run `fusermount3 -uz {p}` (or `umount -l {p}` as root) and retry", p = .0.display())]
    DeadMount(PathBuf),
    #[error("{p} is already mounted; unmount it first (`vccfs unmount {p}`)", p = .0.display())]
    AlreadyMounted(PathBuf),
    #[error("{} is not mounted", .0.display())]
    NotMounted(PathBuf),
    #[error("mount failed: cannot unmount {}: {reason}", path.display())]
    CannotUnmount { path: PathBuf, reason: String },
    #[error("mount failed: {}: {source}", path.display())]
    Session {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--metrics {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("mount failed: {0}")]
    Catalog(crate::catalog::CatalogError),
    #[error("mount failed: session ended with an error: {0}")]
    SessionEnded(#[source] std::io::Error),
    /// The `--daemon` child failed; its own error line, as it printed it.
    #[error("mount failed: {0}")]
    Background(String),
    #[error("mount failed: the background process exited before the mount was live")]
    BackgroundExited,
    #[error("no pipe to the background process")]
    NoPipe,
    /// A runtime, thread or process could not be started.
    #[error("cannot {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    pub api: ApiConfig,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub cache_size: u64,
    /// `--catalog-memory`: bytes of the listing kept in memory (`catalog::resident`).
    pub catalog_memory: u64,
    pub block_size: u64,
    /// `--allow-other`: every local user may reach the mount (the kernel then checks
    /// `access`).
    pub allow_other: bool,
    /// `--allow-root`: the mounting user and root only (conflicts with `allow_other`).
    pub allow_root: bool,
    /// `--uid`, `--gid`, `--file-mode`, `--dir-mode`, resolved with their defaults:
    /// owner and permission bits of every node.
    pub access: crate::fs::Access,
    pub daemon: bool,
    pub refresh: Duration,
    pub log_file: Option<PathBuf>,
    /// `--audit-log FILE` (absolute): one line per open (see `audit`).
    pub audit_log: Option<PathBuf>,
    /// `--calls-name`: how `calls/<day>/` names calls.
    pub calls_name: crate::catalog::views::Template,
    /// Printed once the mount is live (the demo's hints).
    pub banner: Option<String>,
    /// The persistent cache, unless `--no-disk-cache`.
    pub disk: Option<DiskOptions>,
    /// The fleet's shared budget and cache (`--redis`).
    pub redis: Option<RedisOptions>,
    /// `--metrics ADDR`: serve Prometheus metrics there.
    pub metrics: Option<std::net::SocketAddr>,
    /// `--to now`: the window's end follows the clock at each re-list.
    pub rolling: bool,
    /// `--cache-key-file`: the root of the keys sealing what is kept (default: derived
    /// from the client secret).
    pub cache_key_file: Option<PathBuf>,
}

/// `--redis` and what goes with it.
#[derive(Clone)]
pub struct RedisOptions {
    /// With the password, if any (never printed: see `Debug`; wiped when dropped).
    pub url: String,
    /// `--redis-control`: the control keys' Redis, if not `url`'s.
    pub control_url: Option<String>,
    /// `--fallback-rpm`.
    pub fallback_rpm: Option<u32>,
    /// `--redis-ca`: the CA certificates (PEM) to trust for `rediss://`.
    pub ca_pem: Option<Vec<u8>>,
}

impl Drop for RedisOptions {
    /// The URLs may hold the password: wiped from memory.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.url);
        if let Some(c) = &mut self.control_url {
            zeroize::Zeroize::zeroize(c);
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOptions")
            .field("url", &crate::fleet::redacted(&self.url))
            .field(
                "control_url",
                &self.control_url.as_deref().map(crate::fleet::redacted),
            )
            .field("fallback_rpm", &self.fallback_rpm)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// Where and how much to keep on disk.
#[derive(Debug, Clone)]
pub struct DiskOptions {
    /// `--cache-dir`: one subdirectory per tenant below it.
    pub root: PathBuf,
    /// `--disk-cache-size`.
    pub max_bytes: u64,
    /// Not `--no-passthrough`, and `--disk-encryption none`: the kernel reads files
    /// the disk holds whole itself.
    pub passthrough: bool,
    /// `--disk-encryption`.
    pub encryption: crate::source::disk::DiskEncryption,
    /// `--disk-cache-max-age`.
    pub max_age: std::time::Duration,
}

/// Make this process non-dumpable (`PR_SET_DUMPABLE` 0): no core dump, and no other
/// process of the same user may ptrace it or read its memory, so the recordings and
/// secrets it holds stay in it. Only the serving process calls this (not the emulator,
/// not the tests' processes); a refusal is logged and the mount goes on.
pub(crate) fn not_dumpable() {
    // SAFETY: prctl(PR_SET_DUMPABLE) takes integer arguments and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "could not make the mount's process non-dumpable");
    }
}

/// Mount and serve until unmounted (or SIGINT/SIGTERM).
pub fn run(opts: MountOptions) -> Result<(), MountError> {
    if opts.daemon && !daemon::is_child() {
        // Check what can be checked without the network here, for a fast clear error.
        check_mountpoint(&opts.mountpoint)?;
        return daemon::spawn_daemon(&opts);
    }
    not_dumpable();
    let rt = runtime()?;
    let result = serve(&rt, opts);
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_serving_process_is_not_dumpable() {
        // In a forked child, so the test process itself stays dumpable. The child only
        // makes system calls (`not_dumpable` logs only if prctl fails) and exits.
        // SAFETY: fork in a test; the child calls prctl and _exit only.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: plain system calls in the forked child.
            let before = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
            super::not_dumpable();
            // SAFETY: as above.
            unsafe {
                let after = libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0);
                libc::_exit(if before == 1 && after == 0 { 0 } else { 1 });
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{status}"
        );
    }
}
