//! Counters of what the client sent, for logs, tests and the filesystem's stats.
//!
//! Every request names its purpose ([`RequestKind::purpose`]) in the
//! [`PURPOSE_HEADER`] it carries, so a server (the emulator) can count by purpose
//! too; the real API ignores unknown headers. `content_requests` counts content
//! requests of every purpose (demand, read-ahead, size probe), as it always has.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Token,
    Search,
    Interaction,
    /// Content a reader is waiting for (a whole small file, a head or tail probe).
    Content,
    /// Content fetched ahead of a sequential reader, or of a scan of siblings.
    ReadAhead,
    /// A size probe of content listed without a `contentLength`.
    Probe,
}

/// The header naming a request's purpose.
pub const PURPOSE_HEADER: &str = "x-vccfs-purpose";

/// Monotonic counters (attempts, not calls: a retried call counts each attempt).
#[derive(Debug, Default)]
pub struct ClientStats {
    token: AtomicU64,
    search: AtomicU64,
    interaction: AtomicU64,
    content: AtomicU64,
    read_ahead: AtomicU64,
    probe: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    status_429: AtomicU64,
    refused_redirects: AtomicU64,
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
            RequestKind::ReadAhead => "read-ahead",
            RequestKind::Probe => "probe",
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStatsSnapshot {
    pub token_requests: u64,
    pub search_requests: u64,
    pub interaction_requests: u64,
    /// Content requests of every purpose (demand, read-ahead, probes).
    pub content_requests: u64,
    /// Of those, read-ahead.
    pub read_ahead_requests: u64,
    /// Of those, size probes.
    pub probe_requests: u64,
    pub bytes_received: u64,
    pub retries: u64,
    pub status_429: u64,
    /// Content redirects refused (to plain http; see `util::wire`).
    pub refused_redirects: u64,
}

impl ClientStats {
    pub(crate) fn count_request(&self, kind: RequestKind) {
        let c = match kind {
            RequestKind::Token => &self.token,
            RequestKind::Search => &self.search,
            RequestKind::Interaction => &self.interaction,
            RequestKind::Content => &self.content,
            RequestKind::ReadAhead => &self.read_ahead,
            RequestKind::Probe => &self.probe,
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
    pub(crate) fn count_refused_redirect(&self) {
        self.refused_redirects.fetch_add(1, Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> ClientStatsSnapshot {
        ClientStatsSnapshot {
            token_requests: self.token.load(Relaxed),
            search_requests: self.search.load(Relaxed),
            interaction_requests: self.interaction.load(Relaxed),
            content_requests: self.content.load(Relaxed)
                + self.read_ahead.load(Relaxed)
                + self.probe.load(Relaxed),
            read_ahead_requests: self.read_ahead.load(Relaxed),
            probe_requests: self.probe.load(Relaxed),
            bytes_received: self.bytes.load(Relaxed),
            retries: self.retries.load(Relaxed),
            status_429: self.status_429.load(Relaxed),
            refused_redirects: self.refused_redirects.load(Relaxed),
        }
    }
}

impl ClientStatsSnapshot {
    /// One line for the log: requests by purpose.
    pub fn by_purpose(&self) -> String {
        format!(
            "token {}, listing {}, lookup {}, content {}, read-ahead {}, probe {} ({} bytes)",
            self.token_requests,
            self.search_requests,
            self.interaction_requests,
            self.content_requests - self.read_ahead_requests - self.probe_requests,
            self.read_ahead_requests,
            self.probe_requests,
            self.bytes_received
        )
    }
}
