//! Running a mount: validate everything first, then mount, serve until unmounted or
//! signalled, and unmount cleanly. `--daemon` runs the same in a child process and
//! returns only once the mount is live (or has failed).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::api::{ApiClient, ApiConfig, ApiError};
use crate::cache::BlockCache;
use crate::catalog::Catalog;
use crate::fs::VccFs;
use crate::prefetch::{Prefetcher, ReadAheadConfig};

/// Environment variable that marks the background child of `--daemon`.
const DAEMON_CHILD_ENV: &str = "VCCFS_DAEMON_CHILD";
/// What the child prints on stdout once the mount is live.
const READY_LINE: &str = "vccfs-ready";

/// Why mounting, serving or unmounting failed; each prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
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
    pub block_size: u64,
    pub allow_other: bool,
    pub daemon: bool,
    pub refresh: Duration,
    pub log_file: Option<PathBuf>,
    /// Printed once the mount is live (the demo's hints).
    pub banner: Option<String>,
}

/// The multi-threaded tokio runtime every command runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, MountError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .thread_name("vccfs-io")
        .build()
        .map_err(|source| MountError::Start {
            what: "start the I/O runtime",
            source,
        })
}

/// Mount and serve until unmounted (or SIGINT/SIGTERM).
pub fn run(opts: MountOptions) -> Result<(), MountError> {
    if opts.daemon && std::env::var_os(DAEMON_CHILD_ENV).is_none() {
        // Check what can be checked without the network here, for a fast clear error.
        check_mountpoint(&opts.mountpoint)?;
        return spawn_daemon(&opts);
    }
    let rt = runtime()?;
    let result = serve(&rt, opts);
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Mount and serve on `rt` until unmounted (or SIGINT/SIGTERM); never daemonises.
pub fn serve(rt: &tokio::runtime::Runtime, opts: MountOptions) -> Result<(), MountError> {
    let is_child = std::env::var_os(DAEMON_CHILD_ENV).is_some();
    check_mountpoint(&opts.mountpoint)?;
    let client = ApiClient::new(opts.api.clone())?;
    let catalog = rt
        .block_on(async { Catalog::load(client.clone(), opts.from, opts.to).await })
        .map_err(|e| startup_error(&opts.api, e))?;
    let catalog = Arc::new(catalog);
    tracing::info!(interactions = catalog.listed().len(), "listed the window");
    // --cache-size bounds all content memory: blocks (cached and in flight) get 15/16 of
    // it, the rest is headroom for reply and network buffers in transit.
    let block_budget = (opts.cache_size - opts.cache_size / 16).max(opts.block_size);
    let cache = Arc::new(BlockCache::new(block_budget, opts.block_size));
    let mut ra = ReadAheadConfig::default();
    // Read-ahead never holds more than half the cache in flight.
    ra.inflight_budget = ra
        .inflight_budget
        .min(opts.cache_size / 2)
        .max(opts.block_size);
    ra.max_window = ra.max_window.min(opts.cache_size / 2).max(opts.block_size);
    let prefetcher = Arc::new(Prefetcher::new(
        client.clone(),
        cache,
        ra,
        rt.handle().clone(),
    ));
    let fs = VccFs::new(Arc::clone(&catalog), prefetcher, rt.handle().clone());

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("vccfs".into()),
        fuser::MountOption::Subtype("vccfs".into()),
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = if opts.allow_other {
        fuser::SessionACL::All
    } else {
        fuser::SessionACL::Owner
    };
    config.n_threads = Some(4);
    config.clone_fd = true;
    let mut session = fuser::Session::new(fs, &opts.mountpoint, &config).map_err(|source| {
        MountError::Session {
            path: opts.mountpoint.clone(),
            source,
        }
    })?;

    tune_kernel_readahead(&opts.mountpoint);

    // Unmount on SIGINT/SIGTERM; session.run() then returns.
    let mut unmounter = session.unmount_callable();
    let mountpoint = opts.mountpoint.clone();
    rt.spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: unmounting");
        if let Err(e) = unmounter.unmount() {
            // Busy (a shell inside it, an open file): detach it lazily and stop anyway;
            // closing /dev/fuse as we exit ends the connection, so nothing hangs.
            eprintln!(
                "vccfs: {} is busy ({e}); detaching it and stopping",
                mountpoint.display()
            );
            detach_unmount(&mountpoint);
            std::process::exit(0);
        }
    });
    if !opts.refresh.is_zero() {
        let catalog = Arc::clone(&catalog);
        let every = opts.refresh;
        // Invalidations go through their own thread: the kernel may hold one until reads of
        // the inode in flight are answered, and those answers come from runtime workers,
        // which must never be the ones waiting (that deadlocked).
        let notifier = session.notifier();
        let (inval, invalidations) = std::sync::mpsc::channel::<u64>();
        std::thread::Builder::new()
            .name("vccfs-inval".into())
            .spawn(move || {
                for ino in invalidations {
                    let _ = notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
                }
            })
            .map_err(|source| MountError::Start {
                what: "start a thread",
                source,
            })?;
        rt.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match catalog.refresh().await {
                    Ok(r) => {
                        if !r.files.is_empty() || !r.dirs.is_empty() {
                            tracing::info!(
                                files = r.files.len(),
                                dirs = r.dirs.len(),
                                "the listing changed"
                            );
                        }
                        // Drop the kernel's cached pages, attributes and listings of what changed.
                        for ino in r.files.iter().map(|f| f.ino).chain(r.dirs) {
                            let _ = inval.send(ino);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "re-listing failed; keeping the old listing")
                    }
                }
            }
        });
    }

    if is_child {
        println!("{READY_LINE}");
        let _ = std::io::stdout().flush();
        detach_stdio(opts.log_file.as_deref());
    } else {
        eprintln!(
            "vccfs: mounted {} ({} interactions); Ctrl-C or `vccfs unmount {}` to stop",
            opts.mountpoint.display(),
            catalog.listed().len(),
            opts.mountpoint.display()
        );
        if let Some(b) = &opts.banner {
            println!("{b}");
        }
    }
    session.run().map_err(MountError::SessionEnded)?;
    tracing::info!("unmounted");
    Ok(())
}

/// Kernel read-ahead on a FUSE mount defaults to 128 KiB, which caps each read request
/// the kernel sends us at 128 KiB. Raise it (needs root; otherwise nothing changes) so
/// sequential readers get up to 1 MiB requests and more of them in flight.
fn tune_kernel_readahead(mountpoint: &Path) {
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
    let want = canon.to_string_lossy().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .rfind(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .and_then(|l| l.split(' ').nth(2))
        .map(str::to_string)
}

/// Say what a failure to list at start-up most likely means.
fn startup_error(api: &ApiConfig, e: ApiError) -> MountError {
    match e {
        ApiError::NotFound { .. } => MountError::NotAnApi {
            api_url: api.api_url.clone(),
        },
        ApiError::Transport { what, detail } | ApiError::Timeout { what, detail, .. } => {
            let url = if what.starts_with("POST token") {
                &api.auth_url
            } else {
                &api.api_url
            };
            MountError::Unreachable {
                url: url.clone(),
                detail,
            }
        }
        other => MountError::Api(other),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// Start this program again in the background and wait for its verdict.
fn spawn_daemon(opts: &MountOptions) -> Result<(), MountError> {
    let exe = std::env::current_exe().map_err(|source| MountError::Start {
        what: "find own executable",
        source,
    })?;
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--daemon")
        .collect();
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

/// After start-up, the daemon child stops writing to its parent's pipes.
fn detach_stdio(log_file: Option<&Path>) {
    use std::os::fd::AsRawFd;
    let target = log_file
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        })
        .or_else(|| {
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
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// Lazily detach a mount (works for dead FUSE mounts).
fn detach_unmount(path: &Path) -> bool {
    for (cmd, args) in [
        ("fusermount3", ["-uz"]),
        ("fusermount", ["-uz"]),
        ("umount", ["-l"]),
    ] {
        let ok = std::process::Command::new(cmd)
            .args(args)
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return true;
        }
    }
    false
}

/// `vccfs unmount`: release the mount; the serving process then exits.
pub fn unmount(path: &Path) -> Result<(), MountError> {
    let dead =
        matches!(std::fs::metadata(path), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
    if !dead && !is_mounted(path) {
        return Err(MountError::NotMounted(path.to_path_buf()));
    }
    let mut last_err = String::new();
    for (cmd, args) in [
        ("fusermount3", vec!["-u"]),
        ("fusermount", vec!["-u"]),
        ("umount", vec![]),
    ] {
        match std::process::Command::new(cmd)
            .args(&args)
            .arg(path)
            .output()
        {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => last_err = String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(_) => continue,
        }
    }
    if dead && detach_unmount(path) {
        return Ok(());
    }
    Err(MountError::CannotUnmount {
        path: path.to_path_buf(),
        reason: last_err,
    })
}
