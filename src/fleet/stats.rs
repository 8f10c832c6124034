//! What the shared tier has done: counters, and their snapshot for the stats file.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the shared tier has done, for the stats file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FleetStats {
    /// A connection exists (it may still be failing).
    pub connected: bool,
    /// Connected and the breaker closed.
    pub healthy: bool,
    pub breaker_open: bool,
    pub breaker_trips: u64,
    /// Blocks found intact in Redis.
    pub hits: u64,
    /// Blocks not in Redis.
    pub misses: u64,
    /// Values refused: do not open (tampered, moved, another key), other tenant or
    /// identity, corrupt or truncated.
    pub rejected: u64,
    /// Operations that failed (connection errors, server errors).
    pub errors: u64,
    pub timeouts: u64,
    /// Operations not tried because the tier was unavailable.
    pub skipped: u64,
    /// Blocks written to Redis.
    pub stored: u64,
    /// Blocks not written because too many writes were in flight.
    pub puts_dropped: u64,
    /// Control keys found corrupt and reset.
    pub resets: u64,
    pub budget_reserved: u64,
    /// Reservations that had to wait before sending.
    pub budget_waits: u64,
    /// Reservations that failed: the caller used its local limiter.
    pub budget_fallbacks: u64,
    pub push_backs: u64,
    /// Leases on missing blocks won (this host fetched them).
    pub leases_won: u64,
    /// Blocks waited for while another host fetched them.
    pub lease_waits: u64,
    /// Blocks fetched after waiting, because their holder let go without storing them.
    pub lease_takeovers: u64,
    /// Fetches that went straight to the next source because Redis was unhealthy.
    pub bypassed: u64,
    /// Block keys removed by `erase_guid`.
    pub erased: u64,
    /// Erasures this host announced.
    pub erasures_announced: u64,
    /// Erasures delivered to this host's subscribers (repeats included).
    pub erasures_received: u64,
    /// Tombstones (in the set or on the channel) that did not open: ignored.
    pub erasures_rejected: u64,
    /// Hosts seen by the last presence check.
    pub hosts: Option<u32>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) timeouts: AtomicU64,
    pub(super) skipped: AtomicU64,
    pub(super) stored: AtomicU64,
    pub(super) puts_dropped: AtomicU64,
    pub(super) resets: AtomicU64,
    pub(super) budget_reserved: AtomicU64,
    pub(super) budget_waits: AtomicU64,
    pub(super) budget_fallbacks: AtomicU64,
    pub(super) push_backs: AtomicU64,
    pub(super) leases_won: AtomicU64,
    pub(super) lease_waits: AtomicU64,
    pub(super) lease_takeovers: AtomicU64,
    pub(super) bypassed: AtomicU64,
    pub(super) erased: AtomicU64,
    pub(super) erasures_announced: AtomicU64,
    pub(super) erasures_received: AtomicU64,
    pub(super) erasures_rejected: AtomicU64,
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(super) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
