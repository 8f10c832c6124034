//! Running a mount: validate everything first, then mount, serve until unmounted or
//! signalled, and unmount cleanly. `--daemon` runs the same in a child process and
//! returns only once the mount is live (or has failed).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::api::{ApiClient, ApiConfig, ApiError, Credentials};
use crate::cache::BlockCache;
use crate::catalog::Catalog;
use crate::cli::{DemoArgs, MountArgs};
use crate::fs::VccFs;
use crate::prefetch::{Prefetcher, ReadAheadConfig};
use crate::util::parse_time_spec;

/// Environment variable that marks the background child of `--daemon`.
const DAEMON_CHILD_ENV: &str = "VCCFS_DAEMON_CHILD";
/// What the child prints on stdout once the mount is live.
const READY_LINE: &str = "vccfs-ready";

/// Why a command failed; each prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Mountpoint(String),
    #[error("mount failed: {0}")]
    Mount(String),
    #[error("emulator: {0}")]
    Emulator(String),
    #[error("{0}")]
    Io(String),
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

impl MountOptions {
    /// Check and resolve the command-line options (no network yet).
    pub fn from_args(a: &MountArgs) -> Result<MountOptions, MountError> {
        let now = crate::util::now_secs();
        let from =
            parse_time_spec(&a.from, now).map_err(|e| MountError::Usage(format!("--from: {e}")))?;
        let to =
            parse_time_spec(&a.to, now).map_err(|e| MountError::Usage(format!("--to: {e}")))?;
        if from >= to {
            return Err(MountError::Usage(format!(
                "--from ({}) must be before --to ({})",
                crate::util::format_rfc3339(from),
                crate::util::format_rfc3339(to)
            )));
        }
        let (api_url, auth_url) = match (&a.api_url, &a.auth_url) {
            (Some(api), Some(auth)) => (api.clone(), auth.clone()),
            (Some(api), None) => (api.clone(), derived_auth_url(api)?),
            (None, Some(auth)) => (a.region.api_url(), auth.clone()),
            (None, None) => (a.region.api_url(), a.region.auth_url()),
        };
        if !api_url
            .trim_end_matches('/')
            .ends_with("/interaction-content")
        {
            return Err(MountError::Usage(format!(
                "--api-url {api_url:?} must end in /interaction-content (e.g. https://emea.api.newvoicemedia.com/interaction-content)"
            )));
        }
        let credentials = match &a.credentials {
            Some(path) => Credentials::from_file(path)?,
            None => Credentials::from_env().ok_or_else(|| {
                MountError::Usage(
                    "no credentials: set VCC_CLIENT_ID and VCC_CLIENT_SECRET, or pass --credentials FILE (try `vccfs demo` to run without an account)".into(),
                )
            })?,
        };
        let mut api = ApiConfig::new(&api_url, &auth_url, credentials)?;
        if let Some(rpm) = a.max_rpm {
            if rpm == 0 {
                return Err(MountError::Usage("--max-rpm must be at least 1".into()));
            }
            api.max_rpm = Some(rpm);
        }
        if a.io_timeout == 0 {
            return Err(MountError::Usage(
                "--io-timeout must be at least 1 second".into(),
            ));
        }
        api.retry_deadline = Duration::from_secs(a.io_timeout);
        // A stalled body is abandoned after a quarter of the retry time, so it can be retried.
        api.read_timeout = Duration::from_secs((a.io_timeout / 4).clamp(1, 10));
        check_sizes(a.cache_size, a.block_size)?;
        Ok(MountOptions {
            mountpoint: a.mountpoint.clone(),
            api,
            from,
            to,
            cache_size: a.cache_size,
            block_size: a.block_size,
            allow_other: a.allow_other,
            daemon: a.daemon,
            refresh: Duration::from_secs(a.refresh),
            log_file: a.log_file.clone(),
            banner: None,
        })
    }
}

/// `https://host/x/interaction-content` → `https://host/Auth/connect/token`.
fn derived_auth_url(api_url: &str) -> Result<String, MountError> {
    let url = url::Url::parse(api_url)
        .map_err(|e| MountError::Usage(format!("--api-url {api_url:?}: {e}")))?;
    let mut auth = url.clone();
    auth.set_path("/Auth/connect/token");
    auth.set_query(None);
    Ok(auth.to_string())
}

fn check_sizes(cache_size: u64, block_size: u64) -> Result<(), MountError> {
    if cache_size == 0 {
        return Err(MountError::Usage(
            "--cache-size must be more than 0 (e.g. 256M)".into(),
        ));
    }
    if let Some(mem) = physical_memory() {
        if cache_size > mem {
            return Err(MountError::Usage(format!(
                "--cache-size {} MiB is more than this machine's memory ({} MiB)",
                cache_size >> 20,
                mem >> 20
            )));
        }
    }
    if !(4096..=(64 << 20)).contains(&block_size) || !block_size.is_power_of_two() {
        return Err(MountError::Usage(
            "--block-size must be a power of two between 4K and 64M".into(),
        ));
    }
    if block_size > cache_size {
        return Err(MountError::Usage(
            "--block-size must not exceed --cache-size".into(),
        ));
    }
    Ok(())
}

fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && page > 0).then(|| pages as u64 * page as u64)
}

/// The multi-threaded tokio runtime every command runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime, MountError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .thread_name("vccfs-io")
        .build()
        .map_err(|e| MountError::Io(format!("cannot start the I/O runtime: {e}")))
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

fn serve(rt: &tokio::runtime::Runtime, opts: MountOptions) -> Result<(), MountError> {
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
    let mut session = fuser::Session::new(fs, &opts.mountpoint, &config)
        .map_err(|e| MountError::Mount(format!("{}: {e}", opts.mountpoint.display())))?;

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
            .map_err(|e| MountError::Io(format!("cannot start a thread: {e}")))?;
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
    session
        .run()
        .map_err(|e| MountError::Mount(format!("session ended with an error: {e}")))?;
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
        ApiError::NotFound { .. } => MountError::Usage(format!(
            "{} does not look like an Interaction Content API (searching it answered 404); check --api-url or --region",
            api.api_url
        )),
        ApiError::Transport { what, detail } | ApiError::Timeout { what, detail, .. } => {
            let url = if what.starts_with("POST token") { &api.auth_url } else { &api.api_url };
            MountError::Mount(format!("cannot reach {url}: {detail}"))
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
    let exe = std::env::current_exe()
        .map_err(|e| MountError::Io(format!("cannot find own executable: {e}")))?;
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
        .map_err(|e| MountError::Io(format!("cannot start the background process: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| MountError::Io("no pipe to the background process".into()))?;
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
    Err(MountError::Mount(if reason.is_empty() {
        "the background process exited before the mount was live".into()
    } else {
        reason
    }))
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
                return Err(MountError::Mountpoint(format!(
                    "{shown} is a dead FUSE mount; run `fusermount3 -uz {shown}` (or `umount -l {shown}` as root) and retry"
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MountError::Mountpoint(format!(
                "mountpoint {shown} does not exist (create it with mkdir -p {shown})"
            )))
        }
        Err(e) => return Err(MountError::Mountpoint(format!("mountpoint {shown}: {e}"))),
        Ok(m) if !m.is_dir() => {
            return Err(MountError::Mountpoint(format!(
                "mountpoint {shown} is not a directory"
            )))
        }
        Ok(_) => {}
    }
    if is_mounted(path) {
        return Err(MountError::Mountpoint(format!(
            "{shown} is already mounted; unmount it first (`vccfs unmount {shown}`)"
        )));
    }
    let mut entries = std::fs::read_dir(path)
        .map_err(|e| MountError::Mountpoint(format!("mountpoint {shown}: {e}")))?;
    if entries.next().is_some() {
        return Err(MountError::Mountpoint(format!(
            "mountpoint {shown} is not empty"
        )));
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
    let shown = path.display();
    let dead =
        matches!(std::fs::metadata(path), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
    if !dead && !is_mounted(path) {
        return Err(MountError::Mountpoint(format!("{shown} is not mounted")));
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
    Err(MountError::Mount(format!(
        "cannot unmount {shown}: {last_err}"
    )))
}

/// `vccfs demo`: the built-in emulator plus a mount of it, in one process.
pub fn demo(args: DemoArgs) -> Result<(), MountError> {
    check_mountpoint(&args.mountpoint)?;
    check_sizes(args.cache_size, 256 << 10)?;
    let rt = runtime()?;
    let emu_args = crate::emulator::EmulatorArgs {
        listen: "127.0.0.1:0"
            .parse()
            .map_err(|_| MountError::Usage("bad listen address".into()))?,
        interactions: args.interactions,
        big_file_mib: (args.big_file_mib > 0).then_some(args.big_file_mib),
        ..crate::emulator::EmulatorArgs::default()
    };
    let emu = rt
        .block_on(crate::emulator::start(emu_args))
        .map_err(|e| MountError::Emulator(e.to_string()))?;
    let credentials = Credentials {
        client_id: emu.client_id().to_string(),
        client_secret: emu.client_secret().to_string(),
    };
    let api = ApiConfig::new(&emu.api_url, &emu.auth_url, credentials)?;
    let now = crate::util::now_secs();
    let mnt = args.mountpoint.display().to_string();
    let banner = format!(
        "\nvccfs demo: a synthetic contact center is mounted at {mnt}\n\
         (emulator at {api}; request counts: curl -s {stats})\n\n\
         Try, in another terminal:\n\
         \x20 ls {mnt}/interactions | head\n\
         \x20 ls -l {mnt}/interactions/$(ls {mnt}/interactions | tail -1)\n\
         \x20 ls {mnt}/by-date/\n\
         \x20 ffprobe -hide_banner $(ls {mnt}/interactions/*/callRecording | tail -1)\n\
         \x20 grep -rl refund {mnt}/interactions --include=transcript | head\n\
         \x20 getfattr -d {mnt}/interactions/$(ls {mnt}/interactions | head -1)\n\
         \x20 rsync -a {mnt}/ /tmp/vcc-backup/\n\n\
         Press Ctrl-C here (or run `vccfs unmount {mnt}`) to stop.\n",
        api = emu.api_url,
        stats = emu.stats_url,
    );
    let opts = MountOptions {
        mountpoint: args.mountpoint.clone(),
        api,
        from: now - time::Duration::days(31),
        to: now + time::Duration::minutes(1),
        cache_size: args.cache_size,
        block_size: 256 << 10,
        allow_other: false,
        daemon: false,
        refresh: Duration::from_secs(600),
        log_file: None,
        banner: Some(banner),
    };
    let result = serve(&rt, opts);
    rt.block_on(emu.shutdown());
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
