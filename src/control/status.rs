//! `vccfs status MOUNTPOINT`: the running daemon answers one JSON [`Snapshot`] per
//! connection on a unix socket whose path is computed from the mountpoint, so the
//! command needs nothing but the mountpoint.
//!
//! Invariant: a connection is one request line of at most 4 KiB read within 5 s
//! (`request_line`: bounded with `take` before `read_line`, so a peer that never sends
//! a newline costs 4 KiB, not memory without end), then one answer line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Snapshot, Sources};

/// Directories the socket may live in, in order of preference.
fn socket_dirs() -> Vec<PathBuf> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if d.is_absolute() && d.is_dir() {
            dirs.push(d.join("vccfs"));
        }
    }
    let run = PathBuf::from(format!("/run/user/{uid}"));
    if run.is_dir() {
        dirs.push(run.join("vccfs"));
    }
    dirs.push(std::env::temp_dir().join(format!("vccfs-{uid}")));
    dirs
}

fn socket_name(mountpoint: &Path) -> String {
    let canon = std::fs::canonicalize(mountpoint).unwrap_or_else(|_| mountpoint.to_path_buf());
    let d = Sha256::digest(canon.as_os_str().as_encoded_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.sock")
}

/// The socket a mount at `mountpoint` serves: bound by [`serve`].
pub struct Listener {
    path: PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serve snapshots of `sources` on the mount's socket (on the current runtime) until
/// the returned guard is dropped (which removes the socket).
pub fn serve(sources: Arc<Sources>) -> std::io::Result<Listener> {
    let name = socket_name(&sources.mountpoint);
    let mut last = None;
    for dir in socket_dirs() {
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        if let Err(e) = made {
            last = Some(e);
            continue;
        }
        let path = dir.join(&name);
        let _ = std::fs::remove_file(&path);
        match tokio::net::UnixListener::bind(&path) {
            Ok(listener) => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                tokio::spawn(accept(listener, sources));
                return Ok(Listener { path });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no directory for the status socket")))
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
                    super::erase::answer(&sources, line.split_whitespace().skip(1)).await
                }
                (Some("refresh"), ..) => serde_json::to_vec(
                    &super::refresh::answer(&sources, line.split_whitespace().skip(1)).await,
                )
                .unwrap_or_default(),
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
    for dir in socket_dirs() {
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
    #[error("the status socket of {} answered nonsense: {detail}", path.display())]
    Garbled { path: PathBuf, detail: String },
}

/// Ask the mount at `mountpoint` for its snapshot.
pub fn query(mountpoint: &Path) -> Result<Snapshot, StatusError> {
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
