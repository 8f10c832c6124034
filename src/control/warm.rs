//! `vccfs warm MOUNTPOINT`: fill the disk cache ahead of use by reading files through
//! the running mount, so morning searches cost no requests.
//!
//! - **Through the daemon.** Files are read through the mount itself: the daemon
//!   fetches them with its own budget, tiers and version checks, and keeps them on
//!   disk. Nothing here talks to the API.
//! - **Within the budget, without starving readers.** With a per-minute budget, warm
//!   takes at most half of it ([`SHARE`]), pacing itself between files; readers get
//!   the rest.
//! - **Resumable.** A file whose every block is on disk already (the daemon says so
//!   on its status socket) is skipped; an interrupted run loses nothing, since each
//!   block lands on disk whole or not at all.
//! - **Ctrl-C safe.** Ctrl-C stops after the file being read, then prints the final
//!   line like a finished run.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::status::{ask, query, StatusError};

/// Share of the per-minute budget warm uses.
pub const SHARE: f64 = 0.5;

/// What to warm.
#[derive(Debug, Clone)]
pub struct WarmPlan {
    pub mountpoint: PathBuf,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Content keys to fetch; empty: every JSON file (transcripts, categorisation,
    /// sentiment, summaries, chat transcripts).
    pub keys: Vec<String>,
}

/// How a warm run went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Warmed {
    pub fetched: u64,
    pub bytes: u64,
    pub skipped: u64,
    pub failed: u64,
    pub interrupted: bool,
}

impl std::fmt::Display for Warmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "warm: {} files fetched ({} bytes), {} skipped (already cached), {} failed{}",
            self.fetched,
            self.bytes,
            self.skipped,
            self.failed,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )
    }
}

/// One file to consider.
struct Candidate {
    guid: String,
    key: String,
    path: PathBuf,
}

fn content_type(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: both pointers are valid for the lengths given; getxattr writes at most
    // `buf.len()` bytes.
    let n = unsafe {
        libc::getxattr(
            c_path.as_ptr(),
            c"user.vcc.contentType".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    let n = usize::try_from(n).ok()?;
    String::from_utf8(buf.get(..n)?.to_vec()).ok()
}

/// The files of `plan` in the mount, oldest interactions first.
fn candidates(plan: &WarmPlan) -> std::io::Result<Vec<Candidate>> {
    let root = plan.mountpoint.join("interactions");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root)? {
        let dir = dir?;
        let guid = dir.file_name().to_string_lossy().to_string();
        let meta = std::fs::read(dir.path().join(".interaction.json")).unwrap_or_default();
        let start = serde_json::from_slice::<crate::model::Interaction>(&meta)
            .map(|i| i.start)
            .ok();
        let inside =
            start.is_none_or(|s| plan.from.is_none_or(|f| s >= f) && plan.to.is_none_or(|t| s < t));
        if !inside {
            continue;
        }
        for file in std::fs::read_dir(dir.path())? {
            let file = file?;
            let key = file.file_name().to_string_lossy().to_string();
            if key.starts_with('.') {
                continue;
            }
            let path = file.path();
            let wanted = if plan.keys.is_empty() {
                content_type(&path).is_some_and(|t| t.starts_with("application/json"))
            } else {
                plan.keys.contains(&key)
            };
            if wanted {
                out.push(Candidate {
                    guid: guid.clone(),
                    key,
                    path,
                });
            }
        }
    }
    Ok(out)
}

/// Warm `plan`, showing progress on stderr; `stop` is set by Ctrl-C.
pub fn warm(plan: &WarmPlan, stop: &AtomicBool) -> Result<Warmed, StatusError> {
    let status = query(&plan.mountpoint)?;
    let files = candidates(plan).map_err(|e| StatusError::Garbled {
        path: plan.mountpoint.clone(),
        detail: format!("cannot list the mount: {e}"),
    })?;
    // Requests per second warm may spend (one per file at most: files are fetched whole).
    let pace = status
        .max_rpm
        .map(|rpm| (f64::from(rpm) * SHARE / 60.0).max(0.01));
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} files, {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut done = Warmed::default();
    let started = Instant::now();
    for (i, c) in files.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            done.interrupted = true;
            break;
        }
        let cached = ask(&plan.mountpoint, &format!("cached {} {}", c.guid, c.key));
        if cached.as_deref().map(str::trim) == Some("yes") {
            done.skipped += 1;
        } else {
            if let Some(per_sec) = pace {
                // Keep to the share: the n-th fetch no sooner than n / pace seconds in.
                let due = Duration::from_secs_f64(done.fetched as f64 / per_sec);
                // In short naps, so Ctrl-C is seen at once.
                while let Some(wait) = due.checked_sub(started.elapsed()) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(wait.min(Duration::from_millis(100)));
                }
                if stop.load(Ordering::Relaxed) {
                    done.interrupted = true;
                    break;
                }
            }
            match std::fs::read(&c.path) {
                Ok(bytes) => {
                    done.fetched += 1;
                    done.bytes += bytes.len() as u64;
                }
                Err(e) => {
                    done.failed += 1;
                    bar.println(format!("{}: {e}", c.path.display()));
                }
            }
        }
        let left = (files.len() - i - 1) as f64;
        let eta = match pace {
            Some(p) => format!("~{:.0} s left at {:.1} files/s", left / p, p),
            None => "no budget limit".to_string(),
        };
        let mib = done.bytes as f64 / f64::from(1u32 << 20);
        bar.set_message(format!(
            "{mib:.1} MiB fetched, {} skipped, {eta}",
            done.skipped
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(done)
}
