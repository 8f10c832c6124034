//! `vccfs status MOUNTPOINT`: the running daemon answers one JSON [`Snapshot`] per
//! connection on a unix socket whose path is computed from the mountpoint, so the
//! command needs nothing but the mountpoint.
//!
//! Invariants: the socket lives in the first of
//! [`crate::safe_fs::defaults::socket_dirs`] that can be had (never under `/tmp`; with
//! none, the mount has no socket and says so); that directory is created 0700 or, if
//! it exists, must be private (not a link, ours, not writable by group or others:
//! [`crate::safe_fs::create_private`]) or the mount is refused. The socket is bound
//! under `umask 0177` (mode 0600 from the start, no `chmod` by path afterwards) and
//! removed through the directory's descriptor.
//!
//! Invariant: a connection is one request line of at most 4 KiB read within 5 s
//! (`request_line`: bounded with `take` before `read_line`, so a peer that never sends
//! a newline costs 4 KiB, not memory without end), then one answer line.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::fs::{AtFlags, Mode};
use sha2::{Digest, Sha256};

use super::{Snapshot, Sources};
use crate::safe_fs::{self, DirError};

fn socket_name(mountpoint: &Path) -> String {
    let canon = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    let d = Sha256::digest(canon.as_os_str().as_encoded_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.sock")
}

/// The socket a mount at `mountpoint` serves: bound by [`serve`].
pub struct Listener {
    dir: OwnedFd,
    name: String,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = rustix::fs::unlinkat(&self.dir, self.name.as_str(), AtFlags::empty());
    }
}

/// Serve snapshots of `sources` on the mount's socket (on the current runtime) until
/// the returned guard is dropped (which removes the socket). `Ok(None)` (warned) when
/// no directory can hold it; an existing directory that is not private is an error
/// (the mount is refused).
pub fn serve(sources: Arc<Sources>) -> Result<Option<Listener>, DirError> {
    let name = socket_name(&sources.mountpoint);
    let dirs = safe_fs::defaults::socket_dirs();
    if dirs.is_empty() {
        tracing::warn!("no status socket: XDG_RUNTIME_DIR is unset and /run/user/<uid> does not exist; `vccfs status` will not see this mount");
        return Ok(None);
    }
    for dir in dirs {
        let fd = match safe_fs::create_private(&dir) {
            Ok(fd) => fd,
            Err(e @ DirError::Io { .. }) => {
                tracing::debug!(error = %e, "status socket: directory unusable");
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = rustix::fs::unlinkat(&fd, name.as_str(), AtFlags::empty());
        let path = dir.join(&name);
        // umask is per process: 0177 only for the bind, so the socket is 0600 from the
        // start (a socket is made 0777 less the umask).
        let old = rustix::process::umask(Mode::from_raw_mode(0o177));
        let bound = tokio::net::UnixListener::bind(&path);
        rustix::process::umask(old);
        match bound {
            Ok(listener) => {
                tokio::spawn(accept(listener, sources));
                return Ok(Some(Listener { dir: fd, name }));
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "status socket: cannot bind");
            }
        }
    }
    tracing::warn!("no status socket: no directory for it could be used; `vccfs status` will not see this mount");
    Ok(None)
}

/// One request line, one answer line: `status` → the snapshot as JSON; `cached GUID
/// KEY` → `yes`, `no` or `unknown` (is every block of that file on disk?); `erase
/// GUID...` → what was erased, as JSON (`control::erase`); `refresh [DAY...]` → what
/// re-listing changed, as JSON (`refresh.rs`).
async fn accept(listener: tokio::net::UnixListener, sources: Arc<Sources>) {
    use tokio::io::AsyncWriteExt;
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        // Who asks, for the audit log (erase, refresh): only read when it is kept.
        let caller = match &sources.audit {
            Some(_) => super::audited::peer(&conn),
            None => crate::audit::Caller::of(0, 0, 0),
        };
        let sources = Arc::clone(&sources);
        tokio::spawn(async move {
            let mut conn = tokio::io::BufReader::new(conn);
            let Some(line) = request_line(&mut conn).await else {
                return;
            };
            let mut words = line.split_whitespace();
            let mut body: Vec<u8> = match (words.next(), words.next(), words.next()) {
                (Some("cached"), Some(guid), Some(key)) => sources.cached(guid, key).into(),
                (Some("erase"), ..) => {
                    super::erase::answer(&sources, line.split_whitespace().skip(1), &caller).await
                }
                (Some("refresh"), ..) => {
                    let days: Vec<&str> = line.split_whitespace().skip(1).collect();
                    let answer = super::refresh::answer(&sources, days.iter().copied()).await;
                    super::audited::refresh(&sources, &caller, &days, &answer);
                    serde_json::to_vec(&answer).unwrap_or_default()
                }
                _ => serde_json::to_vec(&sources.snapshot()).unwrap_or_default(),
            };
            body.push(b'\n');
            let mut conn = conn.into_inner();
            let _ = conn.write_all(&body).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// The longest request line read (a `erase` of a hundred guids fits).
const MAX_REQUEST_LINE: u64 = 4096;

/// One request line of at most [`MAX_REQUEST_LINE`] bytes, within 5 s; `None` for a
/// longer, slower, broken or non-UTF-8 one (the connection is then dropped unanswered;
/// nothing past the limit is ever buffered).
async fn request_line<R>(conn: &mut R) -> Option<String>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = String::new();
    let mut bounded = conn.take(MAX_REQUEST_LINE);
    let read = tokio::time::timeout(Duration::from_secs(5), bounded.read_line(&mut line));
    match read.await {
        Ok(Ok(n)) if line.ends_with('\n') || (n as u64) < MAX_REQUEST_LINE => Some(line),
        _ => None,
    }
}

/// Ask the mount at `mountpoint` one question of [`accept`]'s: the first socket that
/// answers does.
pub(crate) fn ask(mountpoint: &Path, question: &str) -> Option<String> {
    ask_within(mountpoint, question, Duration::from_secs(10))
}

/// [`ask`], waiting up to `wait` for the answer.
pub(crate) fn ask_within(mountpoint: &Path, question: &str, wait: Duration) -> Option<String> {
    let name = socket_name(mountpoint);
    for dir in safe_fs::defaults::socket_dirs() {
        let Ok(mut conn) = std::os::unix::net::UnixStream::connect(dir.join(&name)) else {
            continue;
        };
        let _ = conn.set_read_timeout(Some(wait));
        if conn.write_all(format!("{question}\n").as_bytes()).is_err() {
            continue;
        }
        let mut line = String::new();
        if BufReader::new(conn).read_line(&mut line).is_ok() && !line.is_empty() {
            return Some(line);
        }
    }
    None
}

/// Why `vccfs status` could not tell.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{} is not a running vccfs mount (no status socket answers for it)", .0.display())]
    Dead(PathBuf),
    /// No directory where sockets live (never `/tmp`): mounts have none either.
    #[error("cannot ask {}: no directory for status sockets (as root: /run/vccfs; otherwise XDG_RUNTIME_DIR or /run/user/<uid>); a mount started without one has no status socket", .0.display())]
    NoSocketDir(PathBuf),
    #[error("the status socket of {} answered nonsense: {detail}", path.display())]
    Garbled { path: PathBuf, detail: String },
}

/// Ask the mount at `mountpoint` for its snapshot.
pub fn query(mountpoint: &Path) -> Result<Snapshot, StatusError> {
    if safe_fs::defaults::socket_dirs().is_empty() {
        return Err(StatusError::NoSocketDir(mountpoint.to_path_buf()));
    }
    let dead = || StatusError::Dead(mountpoint.to_path_buf());
    let line = ask(mountpoint, "status").ok_or_else(dead)?;
    serde_json::from_str(&line).map_err(|e| StatusError::Garbled {
        path: mountpoint.to_path_buf(),
        detail: e.to_string(),
    })
}

/// The snapshot as a short summary for people.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<13}{v}\n"));
    let up = s.uptime_secs;
    line(
        "mount",
        format!(
            "{} (pid {}, up {}h {:02}m)",
            s.mountpoint,
            s.pid,
            up / 3600,
            up / 60 % 60
        ),
    );
    line("window", format!("{} .. {}", s.window_from, s.window_to));
    line(
        "access",
        match (&s.access_since, &s.access_reason) {
            (Some(since), Some(why)) if s.access == "revoked" => {
                format!("REVOKED since {since}: {why} (nothing is served until the API accepts the client again)")
            }
            _ => s.access.clone(),
        },
    );
    line(
        "listed",
        format!(
            "{} interactions over {} of {} days{}{}",
            s.interactions_listed,
            s.days_listed,
            s.days_in_window,
            if s.days_pending > 0 {
                format!(
                    " ({} days from the saved catalog, re-listing)",
                    s.days_pending
                )
            } else {
                String::new()
            },
            if s.days_unlisted > 0 {
                format!(" ({} days not listed yet)", s.days_unlisted)
            } else {
                String::new()
            }
        ),
    );
    if s.catalog_memory_budget_bytes > 0 {
        line(
            "catalog",
            format!(
                "{} KiB of {} KiB in memory: {} days in memory, {} on disk only",
                s.catalog_memory_bytes >> 10,
                s.catalog_memory_budget_bytes >> 10,
                s.catalog_days_in_memory,
                s.catalog_days_on_disk_only
            ),
        );
    }
    line("nodes", format!("{} inodes held by the kernel", s.nodes));
    let budget = match s.max_rpm {
        Some(rpm) => format!(
            "{} requests in the last minute of {rpm}/min{}; waited {:.1} s in all",
            s.requests_last_minute,
            if s.fleet {
                " (the fleet's, via Redis)"
            } else {
                ""
            },
            s.budget_wait_seconds
        ),
        None => format!(
            "{} requests in the last minute (no limit)",
            s.requests_last_minute
        ),
    };
    line("budget", budget);
    let mut by_purpose: std::collections::BTreeMap<&str, u64> = Default::default();
    for r in &s.requests {
        *by_purpose.entry(r.purpose.as_str()).or_default() += r.count;
    }
    let reqs: Vec<String> = by_purpose.iter().map(|(p, n)| format!("{p} {n}")).collect();
    line(
        "requests",
        format!(
            "{} ({} × 429, {} retries, {} received)",
            if reqs.is_empty() {
                "none".into()
            } else {
                reqs.join(", ")
            },
            s.status_429,
            s.retries,
            crate::util::human_bytes(s.bytes_fetched)
        ),
    );
    for t in &s.tiers {
        let rate = t.hit_rate().map_or("no reads yet".into(), |r| {
            format!("hit rate {:.0}%", r * 100.0)
        });
        let size = match t.capacity {
            Some(c) => format!(
                "{} of {}, ",
                crate::util::human_bytes(t.bytes),
                crate::util::human_bytes(c)
            ),
            None => String::new(),
        };
        let health = if t.healthy { "" } else { ", DEGRADED" };
        line(
            &t.tier,
            format!(
                "{size}{rate} ({} hits, {} misses, {} rejected){health}",
                t.hits, t.misses, t.rejected
            ),
        );
    }
    line(
        "degraded",
        if s.degraded.is_empty() {
            "none".into()
        } else {
            s.degraded.join(", ")
        },
    );
    let errors: Vec<String> = s
        .reader_errors
        .iter()
        .map(|(e, n)| format!("{e} {n}"))
        .collect();
    line(
        "errors",
        if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        },
    );
    if let Some(path) = &s.audit_log {
        let dropped = match s.audit_dropped {
            0 => String::new(),
            n => format!(", {n} DROPPED (queue full)"),
        };
        line("audit", format!("{path}: {} lines{dropped}", s.audit_lines));
    }
    if let Some(e) = &s.last_error {
        let at = time::OffsetDateTime::from_unix_timestamp(e.at as i64)
            .map(crate::util::format_rfc3339)
            .unwrap_or_default();
        line("last error", format!("{at} {}: {}", e.errno, e.what));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn line_of(input: &[u8]) -> Option<String> {
        let mut r = tokio::io::BufReader::new(input);
        request_line(&mut r).await
    }

    #[tokio::test]
    async fn the_request_line_is_bounded() {
        assert_eq!(line_of(b"status\n").await.as_deref(), Some("status\n"));
        assert_eq!(line_of(b"status").await.as_deref(), Some("status"));
        assert_eq!(line_of(b"").await.as_deref(), Some(""));
        let mut long = vec![b'a'; 4095];
        long.push(b'\n');
        assert_eq!(line_of(&long).await.map(|l| l.len()), Some(4096));
        let mut longer = vec![b'a'; 5000];
        longer.push(b'\n');
        assert_eq!(line_of(&longer).await, None, "past 4 KiB: dropped");
        assert_eq!(line_of(&vec![b'a'; 1 << 20]).await, None);
    }
}
