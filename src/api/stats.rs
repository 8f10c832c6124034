//! Counters of what the client sent, for logs, tests and the filesystem's stats.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Token,
    Search,
    Interaction,
    Content,
}

/// Monotonic counters (attempts, not calls: a retried call counts each attempt).
#[derive(Debug, Default)]
pub struct ClientStats {
    token: AtomicU64,
    search: AtomicU64,
    interaction: AtomicU64,
    content: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    status_429: AtomicU64,
    /// Answers by (purpose, HTTP status; 0: no answer).
    statuses: parking_lot::Mutex<std::collections::BTreeMap<(&'static str, u16), u64>>,
    /// Time requests spent waiting for the budget.
    budget_wait_micros: AtomicU64,
}

impl RequestKind {
    /// The purpose, as metrics name it.
    pub fn purpose(self) -> &'static str {
        match self {
            RequestKind::Token => "token",
            RequestKind::Search => "listing",
            RequestKind::Interaction => "lookup",
            RequestKind::Content => "content",
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStatsSnapshot {
    pub token_requests: u64,
    pub search_requests: u64,
    pub interaction_requests: u64,
    pub content_requests: u64,
    pub bytes_received: u64,
    pub retries: u64,
    pub status_429: u64,
}

impl ClientStats {
    pub(crate) fn count_request(&self, kind: RequestKind) {
        let c = match kind {
            RequestKind::Token => &self.token,
            RequestKind::Search => &self.search,
            RequestKind::Interaction => &self.interaction,
            RequestKind::Content => &self.content,
        };
        c.fetch_add(1, Relaxed);
    }
    pub(crate) fn count_status(&self, kind: RequestKind, status: u16) {
        *self
            .statuses
            .lock()
            .entry((kind.purpose(), status))
            .or_default() += 1;
    }
    pub(crate) fn count_budget_wait(&self, waited: std::time::Duration) {
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.budget_wait_micros.fetch_add(us, Relaxed);
    }
    /// Answers so far by (purpose, HTTP status; 0 when none came).
    pub fn by_status(&self) -> Vec<(&'static str, u16, u64)> {
        self.statuses
            .lock()
            .iter()
            .map(|(&(p, s), &n)| (p, s, n))
            .collect()
    }
    /// Seconds requests have waited for the budget, in all.
    pub fn budget_wait_seconds(&self) -> f64 {
        self.budget_wait_micros.load(Relaxed) as f64 / 1e6
    }
    pub(crate) fn count_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Relaxed);
    }
    pub(crate) fn count_retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn count_429(&self) {
        self.status_429.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ClientStatsSnapshot {
        ClientStatsSnapshot {
            token_requests: self.token.load(Relaxed),
            search_requests: self.search.load(Relaxed),
            interaction_requests: self.interaction.load(Relaxed),
            content_requests: self.content.load(Relaxed),
            bytes_received: self.bytes.load(Relaxed),
            retries: self.retries.load(Relaxed),
            status_429: self.status_429.load(Relaxed),
        }
    }
}
