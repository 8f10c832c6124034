//! Command-line interface: clap definitions, the commands they run, and [`CliError`],
//! the one error a command ends with (main prints it as `vccfs: error: {e}`).
//!
//! Dependencies point one way: `cli` uses `mount`, `emulator` and `api`; `mount` never
//! imports `cli` (it takes a validated [`mount::MountOptions`], built in `options` or by the
//! demo).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::api::{ApiError, Region};
use crate::emulator::{EmulatorArgs, EmulatorError};
use crate::mount::{self, MountError};
use crate::source::disk::DiskEncryption;
use crate::util::{parse_duration, parse_size};

mod demo;
mod fstab;
mod options;
mod owner;

pub use fstab::translate as fstab_args;
pub use options::{api_config, mount_options};

/// Why a command failed; each prints as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag's value is wrong (nothing was contacted or mounted).
    #[error("{0}")]
    Usage(String),
    /// Credentials or API configuration.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Mounting, serving or unmounting.
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error("emulator: {0}")]
    Emulator(#[from] EmulatorError),
    /// `vccfs status` found no live mount.
    #[error(transparent)]
    Status(#[from] crate::control::status::StatusError),
    /// `vccfs refresh` found no live mount, or the re-list failed.
    #[error(transparent)]
    Refresh(#[from] crate::control::refresh::RefreshError),
    /// `vccfs doctor` found that vccfs cannot work with the tenant.
    #[error(transparent)]
    Doctor(#[from] crate::doctor::DoctorError),
}

/// Mount Vonage Contact Center interaction content (call recordings, transcripts,
/// screen recordings, chats) as a read-only filesystem.
///
/// Files appear as <mountpoint>/interactions/<guid>/<contentKey> and are downloaded
/// lazily, only the bytes you read. Try it without an account: `vccfs demo /tmp/vcc`.
#[derive(Debug, Parser)]
#[command(name = "vccfs", version, propagate_version = true)]
pub struct Cli {
    /// More logging (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `--calls-name`: refused on the command line when it does not parse.
fn calls_name(s: &str) -> Result<String, String> {
    crate::catalog::views::Template::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount the Interaction Content API of your Vonage Contact Center account.
    ///
    /// Credentials: VCC_CLIENT_ID and VCC_CLIENT_SECRET in the environment, or
    /// --credentials FILE (lines VCC_CLIENT_ID=... and VCC_CLIENT_SECRET=..., mode 600).
    Mount(Box<MountArgs>),
    /// Unmount a vccfs mount.
    Unmount {
        /// The mountpoint to release.
        mountpoint: PathBuf,
    },
    /// Check how your tenant behaves (token, search, paging, ranges, validators,
    /// redirects, rate limits) with at most 10 requests, and print what vccfs will do
    /// about each finding (exit status 1 with a one-line reason if vccfs cannot work
    /// with it).
    ///
    /// Same connection flags and credentials as `mount`.
    Doctor(DoctorArgs),
    /// Mount a built-in synthetic contact center (no account needed) and show what to try.
    Demo(DemoArgs),
    /// Run the local Interaction Content API emulator (for tests, benchmarks, demos).
    Emulator(Box<EmulatorArgs>),
    /// Print the refresh policy's simulated idle cost (searches a minute) of a window
    /// of 30, 365 and 730 days, as `scripts/bench.sh window` reports it.
    #[command(hide = true)]
    PolicyCost,
    /// A short summary of a running mount: window, listing, budget, cache tiers,
    /// errors (exit status 1 if the mount is dead).
    Status {
        /// The mountpoint of the running mount.
        mountpoint: PathBuf,
        /// The full snapshot as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Re-list a running mount's recent tail now (as its next --refresh would), or the
    /// given days of its window whole, and print what changed per day.
    Refresh {
        /// The mountpoint of the running mount.
        mountpoint: PathBuf,
        /// Days to re-list whole (YYYY-MM-DD, each in the mount's window); none: the tail.
        #[arg(value_name = "DAY")]
        days: Vec<String>,
    },
    /// Fill a running mount's disk cache ahead of use (default: every JSON file —
    /// transcripts, categorisation, sentiment, summaries, chat transcripts), within
    /// half of its request budget; resumable, Ctrl-C safe.
    Warm {
        /// The mountpoint of the running mount.
        mountpoint: PathBuf,
        /// Only interactions that started at or after this time (same forms as mount).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// ...and before this time.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Only these content keys, e.g. transcript,chatTranscript.
        #[arg(long, value_name = "K1,K2,...", value_delimiter = ',')]
        keys: Vec<String>,
    },
    /// Erase interactions from every tier of a running mount (catalog, memory, kernel
    /// caches, disk; and the fleet's Redis once shared): prints what each tier removed.
    ///
    /// The API stays the source of truth: an interaction it still lists is listed
    /// again on its day's next re-list (or looked up again by name after 30 s) and is
    /// fetched again when read.
    Erase {
        /// The mountpoint of the running mount.
        mountpoint: PathBuf,
        /// The interactions to erase.
        #[arg(required = true, value_name = "GUID")]
        guids: Vec<String>,
    },
    /// The persistent cache on disk: how much it holds, or empty it.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `vccfs cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Bytes and files kept per tenant.
    Du {
        /// The cache directory (default: $XDG_CACHE_HOME/vccfs, else ~/.cache/vccfs).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Remove everything kept (tenants in use by a running mount are left alone).
    Clear {
        /// The cache directory (default: $XDG_CACHE_HOME/vccfs, else ~/.cache/vccfs).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
}

/// Where the tenant is and who we are: the connection flags `mount` and `doctor` share
/// (credentials come from VCC_CLIENT_ID / VCC_CLIENT_SECRET or --credentials).
#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// Your account's region: sets the API and token URLs.
    #[arg(long, value_enum, default_value = "emea")]
    pub region: Region,
    /// API base URL ending in /interaction-content (overrides --region).
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    /// OAuth2 token URL (default: from --region, or <api host>/Auth/connect/token with --api-url).
    #[arg(long, value_name = "URL")]
    pub auth_url: Option<String>,
    /// File with VCC_CLIENT_ID=... and VCC_CLIENT_SECRET=... lines (must be chmod 600).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
}

/// Options of `vccfs mount`.
#[derive(Debug, Args, Clone)]
pub struct MountArgs {
    /// Empty directory to mount on.
    pub mountpoint: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Show interactions that started at or after this time: ISO 8601 date or time
    /// (2026-11-01, 2026-11-01T08:00:00Z) or relative (30d, 12h, 2w).
    #[arg(long, default_value = "7d", value_name = "TIME")]
    pub from: String,
    /// ...and before this time (same forms; default now). With `now` the window's end
    /// follows the clock: interactions that start after the mount appear at the next
    /// --refresh, and the start stays where it was, so nothing disappears as time
    /// passes. Any other value lists a fixed window that never grows.
    #[arg(long, default_value = "now", value_name = "TIME")]
    pub to: String,
    /// Memory for cached content, e.g. 256M, 1G.
    #[arg(long, default_value = "256M", value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: u64,
    /// Memory for the catalog (the window's listing), whatever the window, e.g. 256M:
    /// days beyond it leave memory, least recently used first, and come back from the
    /// saved catalog on disk when a lookup, readdir or read needs them (a day is never
    /// searched again because it left memory). With --no-disk-cache there is no saved
    /// catalog: a day that left memory is listed again from the API when needed.
    #[arg(long, default_value = "256M", value_name = "SIZE", value_parser = parse_size)]
    pub catalog_memory: u64,
    /// Unit of caching and of the smallest ranged request, e.g. 256K, 1M.
    #[arg(long, default_value = "256K", value_name = "SIZE", value_parser = parse_size)]
    pub block_size: u64,
    /// Let every local user (and root) reach the mount; who may read what is then up to
    /// --uid/--gid and the modes: unless given, files are 0440 and directories 0550, so
    /// only the owner and the members of the group read recordings, .interaction.json
    /// and the phone numbers in xattrs (e.g. --allow-other --gid vccfs). Non-root mounts
    /// need user_allow_other in /etc/fuse.conf.
    #[arg(long, conflicts_with = "allow_root")]
    pub allow_other: bool,
    /// Let root, besides the mounting user, reach the mount (nobody else). Non-root
    /// mounts need user_allow_other in /etc/fuse.conf.
    #[arg(long)]
    pub allow_root: bool,
    /// Owner of every file and directory: a user name or number (default: the mounting
    /// user).
    #[arg(long, value_name = "UID")]
    pub uid: Option<String>,
    /// Group of every file and directory: a group name or number (default: the mounting
    /// user's group). With --allow-other its members may read, others may not.
    #[arg(long, value_name = "GID")]
    pub gid: Option<String>,
    /// Permission bits of files (content and .interaction.json; their xattrs follow
    /// them), octal, read-only: e.g. 0440 (owner and group), 0444 (everyone). Default
    /// 0444, or 0440 with --allow-other.
    #[arg(long, value_name = "MODE")]
    pub file_mode: Option<String>,
    /// Permission bits of directories, octal, read-only: e.g. 0550, 0555. Default: the
    /// file mode with search (x) wherever it reads (--file-mode 0444: 0555), else 0555,
    /// or 0550 with --allow-other. by-date symlinks are always 0777.
    #[arg(long, value_name = "MODE")]
    pub dir_mode: Option<String>,
    /// Return once the mount is live (or failed) and keep serving in the background.
    #[arg(long)]
    pub daemon: bool,
    /// Requests per minute for the whole mount (default 150 for real regions,
    /// unlimited for a loopback API URL).
    #[arg(long, value_name = "N")]
    pub max_rpm: Option<u32>,
    /// Give up on a failing read after this many seconds of retrying (it then fails with EIO).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub io_timeout: u64,
    /// Re-list the recent tail of the window this often (since the last tail; the last
    /// 2 hours every 15 minutes), to pick up new interactions and late content; whole
    /// days are re-listed by age (today and yesterday hourly, the next two days every 6
    /// hours, then daily, every 3 days after a week, weekly after a month, monthly
    /// after 90 days), within at most 3 searches a minute whatever the window. 0: never re-list (days are
    /// still listed once, on demand and in the background).
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub refresh: u64,
    /// With --daemon: write logs here instead of discarding them.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Append one JSON line per open of a file (who, what, from which tier, how many
    /// bytes, result) and per erase/refresh request to FILE (created mode 0600; a
    /// symlink is refused; reopened on SIGHUP). See "Access audit log" in the README.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Names of the directories of calls/<day>/: fields {date} {time} {direction}
    /// {from} {to} {agent} {guid} {guid8}; names that collide get ~2, ~3, ...
    #[arg(
        long,
        value_name = "TEMPLATE",
        default_value = crate::catalog::views::naming::DEFAULT_TEMPLATE,
        value_parser = calls_name
    )]
    pub calls_name: String,
    /// Keep fetched content and listings here across mounts, one subdirectory per
    /// tenant (mode 0700: it holds call recordings). Default: $XDG_CACHE_HOME/vccfs,
    /// else ~/.cache/vccfs.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Disk space for cached content, e.g. 10G; the cache also never leaves its
    /// filesystem less than 5% free.
    #[arg(long, default_value = "10G", value_name = "SIZE", value_parser = parse_size)]
    pub disk_cache_size: u64,
    /// Keep nothing on disk (every mount starts cold and fetches again).
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_disk_cache: bool,
    /// Serve every read through vccfs, even of files the disk cache holds whole
    /// (by default the kernel reads those itself, checked first: FUSE passthrough,
    /// Linux 6.9+ and root).
    #[arg(long)]
    pub no_passthrough: bool,
    /// How the disk cache keeps content at rest. `aead` (default): every file sealed
    /// (AES-256-GCM) under the tenant's key, so a reader of the cache directory or of
    /// its backups learns nothing of the calls, and tampering is detected (the block
    /// is fetched again); files are read through vccfs. `none`: plain files (still
    /// checksummed), which the kernel can read itself (FUSE passthrough), relying on
    /// the volume's own encryption (dm-crypt, fscrypt) against readers. Changing it
    /// discards the cache.
    #[arg(long, value_enum, default_value = "aead", value_name = "MODE")]
    pub disk_encryption: DiskEncryption,
    /// The cache's key: a file of 32 random bytes (mode 600, owned by this user), e.g.
    /// `head -c 32 /dev/urandom > key`, for sites that rotate client secrets. Default:
    /// derived from the client secret (a new secret, or a new key file, discards the
    /// cache: crypto-erasure).
    #[arg(long, value_name = "FILE")]
    pub cache_key_file: Option<PathBuf>,
    /// Drop cached content and listings unused for this long, e.g. 30d, 12h, 2w.
    #[arg(long, default_value = "30d", value_name = "DURATION", value_parser = parse_duration)]
    pub disk_cache_max_age: std::time::Duration,
    /// Share one request budget and one content cache with every mount of the same
    /// tenant that names this Redis (7+, or Valkey): rediss://HOST[:PORT][/DB] (TLS), or
    /// redis://… on loopback (elsewhere with --redis-allow-plaintext); the password
    /// comes from --redis-credentials. --max-rpm is then the whole fleet's budget.
    #[arg(long, value_name = "URL", env = "REDIS_URL", hide_env_values = true)]
    pub redis: Option<String>,
    /// File holding the Redis password (one line, `PASSWORD` or `REDIS_PASSWORD=...`;
    /// mode 600, owned by this user, not a symlink). A password inside a Redis URL is
    /// refused: the command line is readable by every local user.
    #[arg(long, value_name = "FILE", requires = "redis")]
    pub redis_credentials: Option<PathBuf>,
    /// A second Redis for the control keys — the request budget, leases and presence —
    /// so that they can live in a `noeviction` instance while --redis holds the cache
    /// (`allkeys-lru`). Same URL forms; --redis-credentials applies to both.
    #[arg(long, value_name = "URL", requires = "redis")]
    pub redis_control: Option<String>,
    /// With rediss://: trust the CA certificates (PEM) in FILE instead of the system's,
    /// for a Redis behind a private CA (applies to --redis-control too).
    #[arg(long, value_name = "FILE", requires = "redis")]
    pub redis_ca: Option<PathBuf>,
    /// Allow a plain redis:// URL to a host other than this one (default: refused; use
    /// rediss://). Without TLS, anyone on the network path reads the Redis password
    /// and, while values are sealed, the access pattern: which interactions are read,
    /// when, and from which host.
    #[arg(long, requires = "redis")]
    pub redis_allow_plaintext: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464). They have
    /// no authentication: an address other than loopback is warned about.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Requests per minute this host may send while Redis is out of reach (default:
    /// --max-rpm divided by the number of hosts last seen in Redis, at least 1).
    #[arg(long, value_name = "N", requires = "redis")]
    pub fallback_rpm: Option<u32>,
}

/// Options of `vccfs doctor`.
#[derive(Debug, Args, Clone)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Write the findings and every request (URLs redacted, no secret, no token) as
    /// one JSON document, e.g. to attach to a bug report.
    #[arg(long)]
    pub json: bool,
}

/// Options of `vccfs demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Empty directory to mount on.
    pub mountpoint: PathBuf,
    /// Interactions in the synthetic tenant.
    #[arg(long, default_value_t = 300)]
    pub interactions: usize,
    /// Add one screen recording of this many MiB (to try big sequential reads).
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub big_file_mib: u64,
    /// Memory for cached content.
    #[arg(long, default_value = "256M", value_name = "SIZE", value_parser = parse_size)]
    pub cache_size: u64,
}

/// Run the parsed command; errors come back as one-line messages.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Mount(args) => {
            let opts = mount_options(&args)?;
            if !mount::is_daemon_child() {
                for w in options::warnings(&opts) {
                    eprintln!("vccfs: warning: {w}");
                }
            }
            Ok(mount::run(opts)?)
        }
        Command::Doctor(args) => {
            let api = api_config(&args.connect)?;
            let rt = mount::runtime()?;
            Ok(rt.block_on(crate::doctor::run(&api, args.json))?)
        }
        Command::Unmount { mountpoint } => Ok(mount::unmount(&mountpoint)?),
        Command::Demo(args) => demo::demo(args),
        Command::Emulator(args) => {
            let rt = mount::runtime()?;
            Ok(rt.block_on(crate::emulator::run(*args))?)
        }
        Command::Cache(c) => cache_command(c),
        Command::Warm {
            mountpoint,
            from,
            to,
            keys,
        } => {
            let now = crate::util::now_secs();
            let time = |flag: &str, v: Option<String>| -> Result<_, CliError> {
                v.map(|s| crate::util::parse_time_spec(&s, now))
                    .transpose()
                    .map_err(|e| CliError::Usage(format!("{flag}: {e}")))
            };
            let plan = crate::control::warm::WarmPlan {
                mountpoint,
                from: time("--from", from)?,
                to: time("--to", to)?,
                keys,
            };
            let done = crate::control::warm::warm(&plan, interrupted())?;
            println!("{done}");
            if done.failed > 0 {
                return Err(CliError::Usage(format!(
                    "{} files could not be read",
                    done.failed
                )));
            }
            Ok(())
        }
        Command::Erase { mountpoint, guids } => {
            if let Some(bad) = guids.iter().find(|g| !crate::model::is_guid(g)) {
                return Err(CliError::Usage(format!(
                    "not a GUID: {bad} (usage: vccfs erase MOUNTPOINT GUID...)"
                )));
            }
            for g in &guids {
                let report = crate::control::erase::erase(&mountpoint, g)?;
                println!("{}", crate::control::erase::render(&report));
            }
            Ok(())
        }
        Command::Refresh { mountpoint, days } => {
            let answer = crate::control::refresh::refresh(&mountpoint, &days)?;
            print!(
                "{}",
                crate::control::refresh::render(&answer, days.is_empty())
            );
            Ok(())
        }
        Command::PolicyCost => {
            for window in [30, 365, 730] {
                let (mean, worst) = crate::catalog::policy::simulated_idle_cost(window);
                println!("{window} days: mean {mean:.2} searches a minute, worst minute {worst}");
            }
            Ok(())
        }
        Command::Status { mountpoint, json } => {
            let snapshot = crate::control::status::query(&mountpoint)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&snapshot).unwrap_or_default()
                );
            } else {
                print!("{}", crate::control::status::render(&snapshot));
            }
            Ok(())
        }
    }
}

/// `vccfs cache du` / `vccfs cache clear`.
fn cache_command(c: CacheCommand) -> Result<(), CliError> {
    use crate::source::disk;
    let root = |d: Option<PathBuf>| match d {
        Some(d) => Ok(d),
        None => disk::default_root().map_err(|e| CliError::Usage(e.to_string())),
    };
    let io = |root: &std::path::Path, e: std::io::Error| match e.get_ref() {
        // An unsafe directory: its own line names it.
        Some(inner) if inner.is::<crate::safe_fs::DirError>() => {
            CliError::Usage(format!("cache directory {inner}"))
        }
        _ => CliError::Usage(format!("cache directory {}: {e}", root.display())),
    };
    match c {
        CacheCommand::Du { cache_dir } => {
            let root = root(cache_dir)?;
            let tenants = disk::usage(&root).map_err(|e| io(&root, e))?;
            let (mut bytes, mut files) = (0, 0);
            for t in &tenants {
                println!(
                    "{:>12}  {:>8} files  {}",
                    crate::util::human_bytes(t.bytes),
                    t.files,
                    t.tenant
                );
                bytes += t.bytes;
                files += t.files;
            }
            println!(
                "{:>12}  {files:>8} files  total in {}",
                crate::util::human_bytes(bytes),
                root.display()
            );
        }
        CacheCommand::Clear { cache_dir } => {
            let root = root(cache_dir)?;
            let cleared = disk::clear(&root).map_err(|e| io(&root, e))?;
            println!(
                "removed {} in {} files from {}",
                crate::util::human_bytes(cleared.bytes),
                cleared.files,
                root.display()
            );
            for t in &cleared.busy {
                println!("left {t}: a running mount uses it (unmount it first)");
            }
        }
    }
    Ok(())
}

/// Set once SIGINT arrives (the handler only stores to an atomic).
fn interrupted() -> &'static std::sync::atomic::AtomicBool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FLAG: AtomicBool = AtomicBool::new(false);
    extern "C" fn on_sigint(_: libc::c_int) {
        FLAG.store(true, Ordering::Relaxed);
    }
    // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
    }
    &FLAG
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_and_doctor_share_the_connection_flags() {
        let flags = [
            "--region",
            "nam",
            "--api-url",
            "http://127.0.0.1:9/interaction-content",
            "--auth-url",
            "http://127.0.0.1:9/t",
            "--credentials",
            "/c",
        ];
        let mount = Cli::try_parse_from(["vccfs", "mount", "/m"].iter().chain(&flags));
        let doctor = Cli::try_parse_from(["vccfs", "doctor", "--json"].iter().chain(&flags));
        let (
            Ok(Cli {
                command: Command::Mount(m),
                ..
            }),
            Ok(Cli {
                command: Command::Doctor(d),
                ..
            }),
        ) = (mount, doctor)
        else {
            panic!("both parse");
        };
        assert!(d.json);
        for c in [&m.connect, &d.connect] {
            assert_eq!(c.region, Region::Nam);
            assert_eq!(c.auth_url.as_deref(), Some("http://127.0.0.1:9/t"));
            assert_eq!(c.credentials.as_deref(), Some(std::path::Path::new("/c")));
        }
        assert!(
            Cli::try_parse_from(["vccfs", "doctor", "/m"]).is_err(),
            "no mountpoint"
        );
    }
}
