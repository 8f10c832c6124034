//! The access audit log (`--audit-log FILE`): one JSON line per open of a content or
//! metadata file (written at its release), per `vccfs erase` and per `vccfs refresh`
//! request — who (uid, gid, pid, process), what (guid, key), from where (tier), how
//! much (bytes) and how it ended (result). The line format is in [`line`].
//!
//! Invariants:
//! - **Never in the reader's way.** Callers only format a line and push it onto a
//!   bounded queue ([`QUEUE_LINES`]) without waiting ([`AuditLog::push`]); a full
//!   queue drops the line and counts it (`audit_dropped`). All file I/O happens on
//!   one dedicated thread, so a slow or stuck log device delays lines, never reads.
//! - **The file is the operator's.** It is opened `O_WRONLY | O_APPEND | O_CREAT |
//!   O_NOFOLLOW | O_CLOEXEC`, created mode 0600 (an existing file keeps its mode); a
//!   symlink, or anything but a regular file, is refused with a one-line error at
//!   mount ([`AuditError`]).
//! - **Flushed at least every second**, and when the writer ends; lines written are
//!   counted (`audit_lines`) once they reach the file.
//! - **Reopened on request** ([`AuditLog::reopen`], wired to `SIGHUP`): the logrotate
//!   `create` style — move the file, send HUP, and the next lines go to a new file of
//!   the same name. A reopen that fails keeps writing to the old file (and says so).
//! - **Shutdown is bounded.** [`AuditLog::finish`] closes the queue and waits at most
//!   [`FINISH_WAIT`] for the writer to drain it; the mount never hangs on its log.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub mod line;
#[cfg(test)]
mod tests;

pub use line::{Caller, Tier};

/// Lines the queue holds before new ones are dropped.
pub const QUEUE_LINES: usize = 65_536;
/// The longest the file goes without a flush while lines wait.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long [`AuditLog::finish`] waits for the writer to drain the queue.
pub const FINISH_WAIT: Duration = Duration::from_secs(5);

/// Why the audit log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("--audit-log {}: is a symbolic link (refused; name the file itself)", .0.display())]
    Symlink(PathBuf),
    #[error("--audit-log {}: not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("--audit-log {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the audit log writer: {0}")]
    Thread(std::io::Error),
}

/// Open `path` for appending the log (see the essay for the flags and mode).
pub fn open_file(path: &Path) -> Result<File, AuditError> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => AuditError::Symlink(path.to_path_buf()),
            _ => AuditError::Open {
                path: path.to_path_buf(),
                source,
            },
        })?;
    let meta = file.metadata().map_err(|source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let kind = meta.file_type();
    if !kind.is_file() || kind.is_fifo() || kind.is_socket() {
        return Err(AuditError::NotAFile(path.to_path_buf()));
    }
    Ok(file)
}

/// Lines written and dropped, for status and metrics.
#[derive(Debug, Default)]
pub struct AuditCounters {
    lines: AtomicU64,
    dropped: AtomicU64,
    /// Writes or flushes that failed (only the first is logged).
    write_errors: AtomicU64,
}

impl AuditCounters {
    /// Lines that reached the file.
    pub fn lines(&self) -> u64 {
        self.lines.load(Relaxed)
    }
    /// Lines dropped because the queue was full (or the writer gone).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// The running audit log: a bounded queue in front of a writer thread.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    tx: Mutex<Option<SyncSender<String>>>,
    counters: Arc<AuditCounters>,
    reopen: Arc<AtomicBool>,
    done: Mutex<Option<Receiver<()>>>,
}

impl AuditLog {
    /// Open `path` and start the writer (queue of [`QUEUE_LINES`]).
    pub fn start(path: &Path) -> Result<Arc<AuditLog>, AuditError> {
        Self::with_queue(path, QUEUE_LINES)
    }

    /// [`AuditLog::start`] with a queue of `lines`.
    pub fn with_queue(path: &Path, lines: usize) -> Result<Arc<AuditLog>, AuditError> {
        let file = open_file(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(lines.max(1));
        let (done_tx, done) = std::sync::mpsc::channel();
        let counters = Arc::new(AuditCounters::default());
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            path: path.to_path_buf(),
            out: std::io::BufWriter::with_capacity(64 << 10, file),
            counters: Arc::clone(&counters),
            reopen: Arc::clone(&reopen),
            pending: 0,
        };
        std::thread::Builder::new()
            .name("vccfs-audit".into())
            .spawn(move || {
                writer.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(AuditError::Thread)?;
        Ok(Arc::new(AuditLog {
            path: path.to_path_buf(),
            tx: Mutex::new(Some(tx)),
            counters,
            reopen,
            done: Mutex::new(Some(done)),
        }))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn counters(&self) -> &Arc<AuditCounters> {
        &self.counters
    }

    /// Queue `line` (one JSON line with its newline) without waiting: `false` (and
    /// counted as dropped) when the queue is full or the log finished.
    pub fn push(&self, line: String) -> bool {
        let sent = match &*self.tx.lock() {
            Some(tx) => tx.try_send(line),
            None => Err(TrySendError::Disconnected(line)),
        };
        match sent {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Relaxed);
                false
            }
        }
    }

    /// Queue `line` formatted by [`line::to_line`].
    pub fn log(&self, line: &impl serde::Serialize) {
        if let Some(l) = line::to_line(line) {
            self.push(l);
        }
    }

    /// Reopen the file by its name (after logrotate moved it): done by the writer
    /// before its next write, within [`FLUSH_EVERY`].
    pub fn reopen(&self) {
        self.reopen.store(true, Relaxed);
    }

    /// No more lines: the writer drains the queue, flushes and ends; waits for that at
    /// most `FINISH_WAIT`. Later pushes are dropped (and counted).
    pub fn finish(&self) {
        drop(self.tx.lock().take());
        if let Some(done) = self.done.lock().take() {
            if done.recv_timeout(FINISH_WAIT).is_err() {
                tracing::warn!(path = %self.path.display(), "audit log writer did not finish in time; lines may be lost");
            }
        }
    }
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    out: std::io::BufWriter<File>,
    counters: Arc<AuditCounters>,
    reopen: Arc<AtomicBool>,
    /// Lines in the buffer, not yet flushed.
    pending: u64,
}

impl Writer {
    fn run(mut self, rx: Receiver<String>) {
        let mut flushed = Instant::now();
        loop {
            let wait = FLUSH_EVERY.saturating_sub(flushed.elapsed());
            let got = rx.recv_timeout(wait.max(Duration::from_millis(1)));
            if self.reopen.swap(false, Relaxed) {
                self.reopen_file();
            }
            match got {
                Ok(line) => self.write(&line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if self.pending > 0 && flushed.elapsed() >= FLUSH_EVERY {
                self.flush();
            }
            if flushed.elapsed() >= FLUSH_EVERY {
                flushed = Instant::now();
            }
        }
        self.flush();
    }

    fn write(&mut self, line: &str) {
        match self.out.write_all(line.as_bytes()) {
            Ok(()) => self.pending += 1,
            Err(e) => self.failed(&e),
        }
    }

    fn flush(&mut self) {
        match self.out.flush() {
            Ok(()) => {
                self.counters.lines.fetch_add(self.pending, Relaxed);
            }
            Err(e) => self.failed(&e),
        }
        self.pending = 0;
    }

    fn failed(&mut self, e: &std::io::Error) {
        if self.counters.write_errors.fetch_add(1, Relaxed) == 0 {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the audit log");
        }
    }

    /// Flush what the old file is owed, then write to a file opened anew by name.
    fn reopen_file(&mut self) {
        self.flush();
        match open_file(&self.path) {
            Ok(file) => {
                self.out = std::io::BufWriter::with_capacity(64 << 10, file);
                tracing::info!(path = %self.path.display(), "audit log reopened");
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reopen the audit log; still writing to the old file")
            }
        }
    }
}
