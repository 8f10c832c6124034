//! What readers saw: errors by errno, the last error, and how long reads took, and
//! how many inodes the kernel holds. Kept by the FUSE adapter, read by `control`
//! (status and metrics).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Upper bounds of the read latency buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// The last error a reader saw.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LastError {
    /// Seconds since the epoch.
    pub at: u64,
    pub errno: String,
    pub what: String,
}

/// Counters of one mount's requests.
#[derive(Debug, Default)]
pub struct FsCounters {
    errors: Mutex<BTreeMap<&'static str, u64>>,
    last: Mutex<Option<LastError>>,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    reads: AtomicU64,
    read_micros: AtomicU64,
    /// Inodes the kernel holds (the node table's size, fixed directories aside).
    nodes: AtomicU64,
    passthrough_opens: AtomicU64,
}

/// A read latency histogram: cumulative counts per bucket, total, sum in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl FsCounters {
    /// A read took `took`.
    pub fn read(&self, took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.reads.fetch_add(1, Relaxed);
        self.read_micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// A reader got `errno` because of `what` (only failures of the layers below are
    /// remembered as the last error).
    pub fn error(&self, errno: &'static str, what: Option<String>) {
        *self.errors.lock().entry(errno).or_default() += 1;
        if let Some(what) = what {
            let at = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            *self.last.lock() = Some(LastError {
                at,
                errno: errno.to_string(),
                what,
            });
        }
    }

    /// The node table now holds `n` inodes.
    pub fn set_nodes(&self, n: usize) {
        self.nodes
            .store(u64::try_from(n).unwrap_or(u64::MAX), Relaxed);
    }

    /// Inodes the kernel holds, as last set.
    pub fn nodes(&self) -> u64 {
        self.nodes.load(Relaxed)
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }

    /// An open the kernel serves from a local file.
    pub fn passthrough_open(&self) {
        self.passthrough_opens.fetch_add(1, Relaxed);
    }

    pub fn passthrough_opens(&self) -> u64 {
        self.passthrough_opens.load(Relaxed)
    }

    pub fn last_error(&self) -> Option<LastError> {
        self.last.lock().clone()
    }

    pub fn latency(&self) -> Latency {
        let mut total = 0;
        let buckets = LATENCY_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(b, c)| {
                total += c.load(Relaxed);
                (*b, total)
            })
            .collect();
        Latency {
            buckets,
            count: self.reads.load(Relaxed),
            sum_seconds: self.read_micros.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// The name of an errno, for labels.
pub fn errno_name(code: i32) -> &'static str {
    match code {
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::ESTALE => "ESTALE",
        libc::EACCES => "EACCES",
        libc::EROFS => "EROFS",
        libc::EBADF => "EBADF",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENODATA => "ENODATA",
        libc::ERANGE => "ERANGE",
        libc::EBUSY => "EBUSY",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_their_buckets_and_errors_are_counted() {
        let c = FsCounters::default();
        c.read(Duration::from_micros(30));
        c.read(Duration::from_millis(3));
        c.read(Duration::from_millis(3));
        let l = c.latency();
        assert_eq!(l.count, 3);
        assert_eq!(l.buckets[0], (0.000_05, 1));
        assert_eq!(l.buckets[5], (0.002_5, 1), "3 ms is above 2.5 ms");
        assert_eq!(l.buckets[6], (0.005, 3));
        assert!((l.sum_seconds - 0.006_03).abs() < 1e-9);
        c.error("ENOENT", None);
        c.error("EIO", Some("GET …: timed out".into()));
        c.error("EIO", None);
        assert_eq!(c.errors()["EIO"], 2);
        assert_eq!(c.last_error().map(|e| e.errno), Some("EIO".to_string()));
        assert_eq!(errno_name(libc::ESTALE), "ESTALE");
        c.set_nodes(7);
        assert_eq!(c.nodes(), 7);
    }
}
