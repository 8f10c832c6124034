//! The operator's view of a running mount: one [`Snapshot`] of what it is doing
//! (window, listing, budget, requests, each tier's use and hit rate, degraded tiers,
//! the last error, whether the API still accepts the client), served as JSON on a unix socket for `vccfs status` ([`status`]),
//! and as Prometheus metrics at `--metrics ADDR` ([`metrics`]).
//!
//! Invariants:
//! - Reading a snapshot only reads counters: it never sends a request, never waits
//!   on a lock held across I/O, and cannot slow the read path down.
//! - The socket is the mount's own (mode 0600 in a 0700 directory), found from the
//!   mountpoint alone, and removed when the mount ends.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::api::{Access, ApiClient};
use crate::cache::BlockCache;
use crate::catalog::Catalog;
use crate::fleet::Fleet;
use crate::fs::{FsCounters, LastError};
use crate::source::disk::DiskStore;
use crate::util::format_rfc3339;

mod audited;
pub mod erase;
pub mod metrics;
pub mod refresh;
pub mod status;
pub mod warm;

/// Handles on everything a snapshot reads.
#[derive(Debug, Clone)]
pub struct Sources {
    pub mountpoint: PathBuf,
    pub started: SystemTime,
    pub max_rpm: Option<u32>,
    pub client: ApiClient,
    pub catalog: Arc<Catalog>,
    pub cache: Arc<BlockCache>,
    pub disk: Option<Arc<DiskStore>>,
    pub shared: Option<Fleet>,
    pub fs: Arc<FsCounters>,
    /// The mount's one erasure path (`erase GUID...` on the status socket).
    pub eraser: Arc<crate::erase::Eraser>,
    /// `--audit-log`: erase and refresh requests are logged there; its counters.
    pub audit: Option<Arc<crate::audit::AuditLog>>,
}

/// One tier's use.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TierUse {
    pub tier: String,
    pub bytes: u64,
    pub capacity: Option<u64>,
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    /// Stored data found damaged or foreign (refused, refetched).
    pub rejected: u64,
    pub healthy: bool,
}

impl TierUse {
    pub fn hit_rate(&self) -> Option<f64> {
        let total = self.hits + self.misses;
        (total > 0).then(|| self.hits as f64 / total as f64)
    }
}

/// Requests by purpose and HTTP status (0: no answer).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Requests {
    pub purpose: String,
    pub status: u16,
    pub count: u64,
}

/// What `vccfs status` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub mountpoint: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub window_from: String,
    pub window_to: String,
    pub interactions_listed: u64,
    pub days_listed: u64,
    /// Days shown from the saved catalog, not yet re-listed.
    pub days_pending: u64,
    /// Days with a part in the window.
    pub days_in_window: u64,
    /// Days of the window not listed yet (listed on demand and in the background).
    pub days_unlisted: u64,
    /// Listed days whose entries are in memory (`--catalog-memory`).
    #[serde(default)]
    pub catalog_days_in_memory: u64,
    /// Listed days that left memory (on the saved catalog only).
    #[serde(default)]
    pub catalog_days_on_disk_only: u64,
    /// Estimated bytes of the catalog's days in memory.
    #[serde(default)]
    pub catalog_memory_bytes: u64,
    /// `--catalog-memory`.
    #[serde(default)]
    pub catalog_memory_budget_bytes: u64,
    /// Days that left memory since the mount.
    #[serde(default)]
    pub catalog_day_evictions: u64,
    /// Days brought back into memory from the saved catalog.
    #[serde(default)]
    pub catalog_day_reloads: u64,
    /// Days listed again from the API because they were neither in memory nor saved.
    #[serde(default)]
    pub catalog_day_relists: u64,
    /// Inodes the kernel holds (it forgets them as it evicts its caches).
    #[serde(default)]
    pub nodes: u64,
    /// Opens the kernel serves itself from a disk-tier file (FUSE passthrough).
    #[serde(default)]
    pub passthrough_opens: u64,
    pub max_rpm: Option<u32>,
    pub requests_last_minute: u64,
    /// Requests the budget allows in the coming minute (with a fleet: this host's view).
    pub slots_left: Option<u64>,
    pub fleet: bool,
    pub budget_wait_seconds: f64,
    pub requests: Vec<Requests>,
    pub status_429: u64,
    /// Content redirects refused because they led to plain http.
    #[serde(default)]
    pub refused_redirects: u64,
    pub retries: u64,
    pub bytes_fetched: u64,
    pub tiers: Vec<TierUse>,
    pub degraded: Vec<String>,
    pub reader_errors: BTreeMap<String, u64>,
    pub last_error: Option<LastError>,
    /// Interactions erased (by `vccfs erase`, deletions at the API, the fleet).
    #[serde(default)]
    pub erasures: u64,
    /// `"ok"`, or `"revoked"` while the API refuses this client (then nothing of the
    /// tenant is served, cached or not, until it accepts it again).
    #[serde(default = "access_ok")]
    pub access: String,
    /// While revoked: since when (RFC 3339) and what refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_reason: Option<String>,
    /// `--audit-log`: the file (absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<String>,
    /// Audit lines written to the file.
    #[serde(default)]
    pub audit_lines: u64,
    /// Audit lines dropped because the queue was full.
    #[serde(default)]
    pub audit_dropped: u64,
}

fn access_ok() -> String {
    "ok".into()
}

impl Sources {
    /// Is every block of file `key` of interaction `guid` on disk?
    pub fn cached(&self, guid: &str, key: &str) -> &'static str {
        let (Some(disk), Some(entry)) = (&self.disk, self.catalog.known(guid)) else {
            return "unknown";
        };
        match self.catalog.file(&entry, key) {
            Some(f) if disk.holds(&f.version) => "yes",
            Some(_) => "no",
            None => "unknown",
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let api = self.client.stats();
        let counters = self.client.counters();
        let sent = self.client.sent_last_minute() as u64;
        let days = self.catalog.day_counts();
        let memory = self.catalog.memory();
        let (from, to) = self.catalog.window();
        let mem = self.cache.stats();
        let mut tiers = vec![TierUse {
            tier: "memory".into(),
            bytes: mem.cached_bytes,
            capacity: Some(mem.capacity),
            hits: mem.hits,
            misses: mem.misses,
            evictions: mem.evictions,
            rejected: 0,
            healthy: true,
        }];
        if let Some(d) = &self.disk {
            let s = d.stats();
            tiers.push(TierUse {
                tier: "disk".into(),
                bytes: s.used_bytes,
                capacity: Some(s.cap_bytes),
                hits: s.hits,
                misses: s.misses,
                evictions: s.evictions,
                rejected: s.corrupt,
                healthy: s.write_errors == 0 || s.writes > s.write_errors,
            });
        }
        if let Some(sh) = &self.shared {
            let s = sh.stats();
            tiers.push(TierUse {
                tier: "shared".into(),
                bytes: 0,
                capacity: None,
                hits: s.hits,
                misses: s.misses,
                evictions: 0,
                rejected: s.rejected,
                healthy: s.healthy,
            });
        }
        let degraded = tiers
            .iter()
            .filter(|t| !t.healthy)
            .map(|t| t.tier.clone())
            .collect();
        let (access, access_since, access_reason) = match self.client.access() {
            Access::Ok => (access_ok(), None, None),
            Access::Revoked { since, reason } => (
                "revoked".to_string(),
                time::OffsetDateTime::from_unix_timestamp(since as i64)
                    .ok()
                    .map(format_rfc3339),
                Some(reason),
            ),
        };
        Snapshot {
            mountpoint: self.mountpoint.display().to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().map_or(0, |d| d.as_secs()),
            window_from: format_rfc3339(from),
            window_to: format_rfc3339(to),
            interactions_listed: self.catalog.listed_len() as u64,
            days_listed: (days.listed + days.saved) as u64,
            days_pending: days.saved as u64,
            days_in_window: days.window as u64,
            days_unlisted: days.window.saturating_sub(days.listed + days.saved) as u64,
            catalog_days_in_memory: memory.days_in_memory,
            catalog_days_on_disk_only: memory.days_on_disk_only,
            catalog_memory_bytes: memory.bytes,
            catalog_memory_budget_bytes: memory.budget,
            catalog_day_evictions: memory.evictions,
            catalog_day_reloads: memory.reloads,
            catalog_day_relists: memory.relists,
            nodes: self.fs.nodes(),
            passthrough_opens: self.fs.passthrough_opens(),
            max_rpm: self.max_rpm,
            requests_last_minute: sent,
            slots_left: self.max_rpm.map(|r| u64::from(r).saturating_sub(sent)),
            fleet: self.shared.is_some() && self.max_rpm.is_some(),
            budget_wait_seconds: counters.budget_wait_seconds(),
            requests: counters
                .by_status()
                .into_iter()
                .map(|(p, s, n)| Requests {
                    purpose: p.into(),
                    status: s,
                    count: n,
                })
                .collect(),
            status_429: api.status_429,
            refused_redirects: api.refused_redirects,
            retries: api.retries,
            bytes_fetched: api.bytes_received,
            tiers,
            degraded,
            reader_errors: self.fs.errors(),
            last_error: self.fs.last_error(),
            erasures: self.eraser.erasures(),
            access,
            access_since,
            access_reason,
            audit_log: self.audit.as_ref().map(|a| a.path().display().to_string()),
            audit_lines: self.audit.as_ref().map_or(0, |a| a.counters().lines()),
            audit_dropped: self.audit.as_ref().map_or(0, |a| a.counters().dropped()),
        }
    }
}
