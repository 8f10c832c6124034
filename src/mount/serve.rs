//! Serving one mount in this process: the runtime every command runs on, the wiring of
//! catalog → block cache → prefetcher → FUSE adapter, the FUSE session with its options,
//! the signal handler, the refresh loop, and the "mounted" line (or the daemon's ready
//! line). Returns when the session ends.
//!
//! Invariants: the catalog is opened before the session is created (a saved listing
//! or one short search checks the credentials and the API; days are listed on demand
//! and in the background afterwards), so a start-up failure leaves nothing mounted; the ready line is printed only after the session is
//! live; kernel invalidations run on their own thread, never on a runtime worker
//! (queued from the start, sent once the session exists); every erasure — by command,
//! or of what the API no longer has — goes through the one [`Eraser`].

use std::path::PathBuf;
use std::sync::Arc;

use tokio::runtime::Runtime;

use crate::api::{ApiClient, ApiConfig, ApiError};
use crate::audit::{AuditLog, Tier};
use crate::cache::BlockCache;
use crate::catalog::{spawn_refresher, Catalog, CatalogError, CatalogStore, Change, Policy};
use crate::control::{self, Sources};
use crate::erase::{Eraser, Inval};
use crate::fleet::{Fleet, FleetBudget, FleetConfig, FleetSource};
use crate::fs::{FsAudit, VccFs};
use crate::prefetch::Prefetcher;
use crate::seal::{Purpose, RootKey};
use crate::source::disk::{DiskConfig, DiskEncryption, DiskError, DiskStore};
use crate::source::{BlockSource, BlockStore, Served, TaggedSource, TaggedStore, Tiered};

use super::memory_plan::memory_plan;
use super::{daemon, mountpoint, MountError, MountOptions};

/// What is kept across mounts, when the disk cache is on and this mount manages it,
/// and the fleet's Redis.
struct Tiers {
    disk: Option<Arc<DiskStore>>,
    catalog: Option<CatalogStore>,
    shared: Option<Fleet>,
}

impl Tiers {
    /// Open the tiers of `opts` (inside the runtime: Redis connects in the background).
    /// An unsafe cache directory (a link, another owner, writable by others) refuses
    /// the mount; any other disk trouble only leaves the disk tier out.
    fn open(opts: &MountOptions) -> Result<Tiers, MountError> {
        let tenant = opts.api.tenant();
        // One root key seals the disk, the saved catalog and Redis (each under its own
        // derived key): the key file's (checked when the flags were read) or the secret's.
        let root = match &opts.cache_key_file {
            Some(path) => match RootKey::from_key_file(path, tenant) {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("vccfs: --cache-key-file: {e}; nothing is kept on disk or in Redis");
                    None
                }
            },
            None => Some(RootKey::from_secret(
                opts.api.credentials.client_secret.as_bytes(),
                tenant,
            )),
        };
        let shared = match (&opts.redis, &root) {
            (Some(r), Some(key)) => {
                let mut cfg = FleetConfig::new(r.url.clone(), tenant, key.clone());
                cfg.control_url = r.control_url.clone().map(zeroize::Zeroizing::new);
                cfg.ca_pem = r.ca_pem.clone();
                Some(Fleet::connect(cfg))
            }
            _ => None,
        };
        let none = Tiers {
            disk: None,
            catalog: None,
            shared: shared.clone(),
        };
        let (Some(disk), Some(key)) = (&opts.disk, &root) else {
            return Ok(none);
        };
        if disk.encryption == DiskEncryption::None {
            eprintln!(
                "vccfs: warning: --disk-encryption none: cached recordings and transcripts are plain files in {}; only the volume's own encryption protects them",
                disk.root.display()
            );
        }
        let cfg = DiskConfig {
            max_bytes: disk.max_bytes,
            block_size: opts.block_size,
            // Queued writes hold their buffers: keep that small next to the memory cache.
            queue_bytes: (opts.cache_size / 4).clamp(8 << 20, 128 << 20),
            encryption: disk.encryption,
            max_age: disk.max_age,
            ..DiskConfig::new(key.clone())
        };
        let store = match DiskStore::open(&disk.root, tenant, cfg) {
            Ok(s) => s,
            Err(DiskError::Locked { dir }) => {
                eprintln!(
                    "vccfs: {} is in use by another mount; this one runs without the disk cache",
                    dir.display()
                );
                return Ok(none);
            }
            Err(DiskError::Unsafe(e)) => {
                return Err(MountError::UnsafeDir(format!("cache directory {e}")))
            }
            Err(e) => {
                eprintln!("vccfs: no disk cache: {e}");
                return Ok(none);
            }
        };
        let sealer = key.sealer(Purpose::Catalog);
        let catalog = match CatalogStore::open(&store.dir().join("catalog"), sealer) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(dir = %store.dir().display(), error = %e, "no saved catalog");
                None
            }
        };
        Ok(Tiers {
            disk: Some(store),
            catalog,
            shared,
        })
    }

    /// The block source: the disk tier (if any) in front of the shared tier (if any) in
    /// front of the API; with `served` (`--audit-log`), each tier records the blocks it
    /// delivers there.
    fn source(&self, client: &ApiClient, served: Option<&Arc<Served>>) -> Arc<dyn BlockSource> {
        let tag = |inner: Arc<dyn BlockSource>, tier: Tier| -> Arc<dyn BlockSource> {
            match served {
                Some(s) => Arc::new(TaggedSource {
                    inner,
                    tier,
                    served: Arc::clone(s),
                }),
                None => inner,
            }
        };
        let mut origin = tag(Arc::new(client.clone()), Tier::Api);
        if let Some(shared) = &self.shared {
            origin = tag(
                Arc::new(FleetSource::new(shared.clone(), origin)),
                Tier::Redis,
            );
        }
        let Some(d) = &self.disk else {
            return origin;
        };
        let store: Arc<dyn BlockStore> = match served {
            Some(s) => Arc::new(TaggedStore {
                inner: Arc::clone(d) as Arc<dyn BlockStore>,
                served: Arc::clone(s),
            }),
            None => Arc::clone(d) as Arc<dyn BlockStore>,
        };
        Arc::new(Tiered::new(store, origin))
    }
}

/// The multi-threaded tokio runtime every command runs on.
pub fn runtime() -> Result<Runtime, MountError> {
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

/// Mount and serve on `rt` until unmounted (or SIGINT/SIGTERM); never daemonises.
pub fn serve(rt: &Runtime, opts: MountOptions) -> Result<(), MountError> {
    mountpoint::check_mountpoint(&opts.mountpoint)?;
    // The audit log first: a file it cannot use is a one-line error before anything else.
    let audit = match &opts.audit_log {
        Some(path) => {
            let log = AuditLog::start(path)?;
            Some(Arc::new(FsAudit::new(log, Arc::default())))
        }
        None => None,
    };
    let client = ApiClient::new(opts.api.clone())?;
    let tiers = {
        let _rt = rt.enter();
        Tiers::open(&opts)?
    };
    if let (Some(shared), Some(rpm)) = (&tiers.shared, opts.api.max_rpm) {
        // --max-rpm is the fleet's: every request takes its turn in the shared schedule.
        let fallback = opts.redis.as_ref().and_then(|r| r.fallback_rpm);
        let budget = FleetBudget::new(shared.clone(), rpm, fallback);
        client.join_fleet(Arc::new(budget));
    }
    let (catalog, opened) = rt
        .block_on(Catalog::open_within(
            Arc::new(client.clone()),
            opts.from,
            opts.to,
            tiers.catalog.clone(),
            opts.catalog_memory,
        ))
        .map_err(|e| startup_error(&opts.api, e))?;
    catalog.set_rolling(opts.rolling);
    catalog.set_calls_name(opts.calls_name.clone());
    let catalog = Arc::new(catalog);
    tracing::info!(
        interactions = catalog.listed_len(),
        ?opened,
        "catalog ready"
    );
    let source = tiers.source(&client, audit.as_ref().map(|a| a.served()));
    let (fs, cache) = wire(rt, source, Arc::clone(&catalog), &opts);
    let fs = match &audit {
        Some(a) => fs.with_audit(Arc::clone(a)),
        None => fs,
    };
    if let Some(a) = &audit {
        reopen_on_hangup(rt, Arc::clone(a.log()));
    }
    let (invalidate, invalidations) = invalidation_queue();
    let eraser = {
        let invalidate = Arc::clone(&invalidate);
        Arc::new(Eraser::new(
            Arc::clone(&catalog),
            Arc::clone(&cache),
            move |i| invalidate(i),
            super::erase_tiers::tiers(tiers.disk.as_ref(), tiers.shared.as_ref()),
            super::erase_tiers::broadcast(tiers.shared.as_ref()),
        ))
    };
    let sources = Arc::new(Sources {
        mountpoint: opts.mountpoint.clone(),
        started: std::time::SystemTime::now(),
        max_rpm: opts.api.max_rpm,
        client: client.clone(),
        catalog: Arc::clone(&catalog),
        cache,
        disk: tiers.disk.clone(),
        shared: tiers.shared.clone(),
        fs: fs.counters(),
        eraser: Arc::clone(&eraser),
        audit: audit.as_ref().map(|a| Arc::clone(a.log())),
    });
    if let Some(addr) = opts.metrics {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .map_err(|source| MountError::Metrics { addr, source })?;
        let _rt = rt.enter();
        control::metrics::serve(listener, Arc::clone(&sources));
    }
    let _status = {
        let _rt = rt.enter();
        control::status::serve(Arc::clone(&sources))
            .map_err(|e| MountError::UnsafeDir(format!("status socket directory {e}")))?
    };

    // Watched before the mount exists, so a signal never meets the default action.
    let stop = {
        let _rt = rt.enter();
        Stop::watch()
    };
    let config = fuse_config(opts.allow_other, opts.allow_root);
    let mut session = fuser::Session::new(fs, &opts.mountpoint, &config).map_err(|source| {
        MountError::Session {
            path: opts.mountpoint.clone(),
            source,
        }
    })?;
    mountpoint::tune_kernel_readahead(&opts.mountpoint);
    unmount_on_signal(
        rt,
        stop,
        session.unmount_callable(),
        opts.mountpoint.clone(),
    );
    let every = (!opts.refresh.is_zero()).then_some(opts.refresh);
    if let Some(shared) = &tiers.shared {
        let seen = tiers.disk.as_ref().map(|d| d.dir().join("erasures-seen"));
        super::erase_tiers::listen(rt.handle(), shared.clone(), Arc::clone(&eraser), seen);
    }
    {
        spawn_invalidator(session.notifier(), invalidations)?;
        let disk = tiers.disk.clone();
        let rt = rt.handle().clone();
        catalog.on_change(move |change| match change {
            Change::Invalidate(ino) => invalidate(Inval::Inode(ino)),
            Change::Entry { parent, name } => invalidate(Inval::Entry { parent, name }),
            // A new version of one file: only the old version goes.
            Change::Purge(key) => {
                if let Some(d) = &disk {
                    d.purge(key);
                }
            }
            // The API no longer has it: erased from every tier.
            Change::Gone { guid, entry } => {
                let eraser = Arc::clone(&eraser);
                rt.spawn(async move { eraser.erase_gone(&guid, entry).await });
            }
            Change::ContentGone { guid, key, version } => {
                let eraser = Arc::clone(&eraser);
                rt.spawn(async move { eraser.erase_content(&guid, &key, version).await });
            }
        });
    }
    // Days not listed yet are listed in the background (saved ones re-listed), newest
    // first; the tail every --refresh; whole days by age.
    spawn_refresher(
        rt.handle(),
        Arc::clone(&catalog),
        Policy::new(every),
        opts.api.max_rpm,
    );

    // The session is live: say so.
    if daemon::is_child() {
        daemon::announce_ready(opts.log_file.as_deref());
    } else {
        eprintln!(
            "vccfs: mounted {} ({} days; {} interactions listed so far, the rest on demand and in the background); Ctrl-C or `vccfs unmount {}` to stop",
            opts.mountpoint.display(),
            catalog.window_days().len(),
            catalog.listed_len(),
            opts.mountpoint.display()
        );
        if let Some(b) = &opts.banner {
            println!("{b}");
        }
    }
    let ended = session.run().map_err(MountError::SessionEnded);
    if let Some(a) = &audit {
        // Handles still open get their lines; the log drains (bounded wait).
        a.finish();
    }
    if let Some(d) = &tiers.disk {
        // Blocks still queued for the disk land before the process goes.
        d.flush();
    }
    // Requests by purpose, for the operator (and benchmarks) to see what reads cost.
    tracing::info!(requests = %client.stats().by_purpose(), "API requests by purpose");
    ended?;
    tracing::info!("unmounted");
    Ok(())
}

/// Catalog → block cache → prefetcher → FUSE adapter: the one place they are built.
fn wire(
    rt: &Runtime,
    source: Arc<dyn BlockSource>,
    catalog: Arc<Catalog>,
    opts: &MountOptions,
) -> (VccFs, Arc<BlockCache>) {
    let plan = memory_plan(opts.cache_size, opts.block_size);
    let cache = Arc::new(BlockCache::new(plan.block_budget, opts.block_size));
    let ra = plan.read_ahead;
    let prefetcher = Arc::new(Prefetcher::new(
        source,
        Arc::clone(&cache),
        ra,
        rt.handle().clone(),
    ));
    let fs = VccFs::new(catalog, prefetcher, rt.handle().clone(), opts.access);
    let fs = match &opts.disk {
        Some(d) if d.passthrough => fs,
        _ => fs.without_passthrough(),
    };
    (fs, cache)
}

/// A read-only mount named `vccfs`, checked by the kernel's own permission rules (the
/// owner and modes of `fs::Access`), served by 4 threads each with its own /dev/fuse
/// descriptor. Who may reach it at all: the mounting user; everyone with `allow_other`;
/// the mounting user and root with `allow_root` (the kernel is told `allow_other`, and
/// fuser refuses the requests of anyone else).
fn fuse_config(allow_other: bool, allow_root: bool) -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("vccfs".into()),
        fuser::MountOption::Subtype("vccfs".into()),
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoDev,
        fuser::MountOption::DefaultPermissions,
    ];
    config.acl = match (allow_other, allow_root) {
        (true, _) => fuser::SessionACL::All,
        (false, true) => fuser::SessionACL::RootAndOwner,
        (false, false) => fuser::SessionACL::Owner,
    };
    config.n_threads = Some(4);
    config.clone_fd = true;
    config
}

/// Unmount on SIGINT/SIGTERM; `session.run()` then returns.
///
/// `stop` is watched before the mount exists, not from when this task first runs: a
/// signal sent as soon as the mount appears would otherwise meet the default action and
/// kill the daemon with the mount still in place.
fn unmount_on_signal(
    rt: &Runtime,
    stop: Stop,
    mut unmounter: fuser::SessionUnmounter,
    mnt: PathBuf,
) {
    rt.spawn(async move {
        stop.wait().await;
        tracing::info!("signal received: unmounting");
        if let Err(e) = unmounter.unmount() {
            // Busy (a shell inside it, an open file): detach it lazily and stop anyway;
            // closing /dev/fuse as we exit ends the connection, so nothing hangs.
            eprintln!(
                "vccfs: {} is busy ({e}); detaching it and stopping",
                mnt.display()
            );
            mountpoint::detach_unmount(&mnt);
            std::process::exit(0);
        }
    });
}

type Invalidate = Arc<dyn Fn(Inval) + Send + Sync>;

/// The queue of kernel invalidations: the (non-blocking) callback that queues one, and
/// what [`spawn_invalidator`] sends once the session exists.
fn invalidation_queue() -> (Invalidate, std::sync::mpsc::Receiver<Inval>) {
    let (inval, invalidations) = std::sync::mpsc::channel::<Inval>();
    let queue: Invalidate = Arc::new(move |i| {
        let _ = inval.send(i);
    });
    (queue, invalidations)
}

/// The thread that drops the kernel's cached pages, attributes and listings of changed
/// inodes, and the directory entries of erased names.
///
/// Invalidations go through their own thread: the kernel may hold one until reads of the
/// inode in flight are answered, and those answers come from runtime workers, which must
/// never be the ones waiting (that deadlocked).
fn spawn_invalidator(
    notifier: fuser::Notifier,
    invalidations: std::sync::mpsc::Receiver<Inval>,
) -> Result<(), MountError> {
    std::thread::Builder::new()
        .name("vccfs-inval".into())
        .spawn(move || {
            for i in invalidations {
                let _ = match i {
                    Inval::Inode(ino) => notifier.inval_inode(fuser::INodeNo(ino), 0, 0),
                    Inval::Entry { parent, name } => {
                        notifier.inval_entry(fuser::INodeNo(parent), std::ffi::OsStr::new(&name))
                    }
                    Inval::Barrier(done) => {
                        done.fire();
                        Ok(())
                    }
                };
            }
        })
        .map_err(|source| MountError::Start {
            what: "start a thread",
            source,
        })?;
    Ok(())
}

/// Say what a failure to list at start-up most likely means.
fn startup_error(api: &ApiConfig, e: CatalogError) -> MountError {
    let e = match e {
        CatalogError::Api(e) => e,
        other => return MountError::Catalog(other),
    };
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

/// Reopen the audit log on each SIGHUP (logrotate's `create` style: move, then HUP).
fn reopen_on_hangup(rt: &Runtime, log: Arc<AuditLog>) {
    use tokio::signal::unix::{signal, SignalKind};
    let _rt = rt.enter();
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            rt.spawn(async move {
                while hup.recv().await.is_some() {
                    log.reopen();
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP: the audit log is not reopened"),
    }
}

/// SIGTERM and SIGINT, watched from the moment [`Stop::watch`] returns.
enum Stop {
    Watched {
        term: tokio::signal::unix::Signal,
        int: tokio::signal::unix::Signal,
    },
    Unwatched,
}

impl Stop {
    /// Install the handlers now (needs the runtime entered).
    fn watch() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Stop::Watched { term, int },
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM/SIGINT: only `vccfs unmount` stops this mount");
                Stop::Unwatched
            }
        }
    }

    /// Until SIGTERM or SIGINT (forever if they cannot be watched).
    async fn wait(self) {
        match self {
            Stop::Watched { mut term, mut int } => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            Stop::Unwatched => std::future::pending::<()>().await,
        }
    }
}
