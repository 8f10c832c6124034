//! Request counters served at `GET /_emulator/stats` (reset by `DELETE`). Tests and
//! benchmarks count requests with them. Control routes (`/_emulator/...`) are never
//! counted. Requests that name their purpose in an `X-Vccfs-Purpose` header (vccfs
//! sends `listing`, `lookup`, `content`, `read-ahead`, `probe`; the real API ignores
//! it) are also counted by it: `requests_by_purpose` over every route,
//! `content_requests_by_purpose` over the content route. The older fields never change
//! meaning (scripts depend on them); new ones are only ever added.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Live counters.
        #[derive(Default, Debug)]
        pub(crate) struct Counters { $( pub $name: AtomicU64, )* }

        /// A snapshot of the counters, as served by `GET /_emulator/stats`.
        #[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
        pub struct StatsSnapshot {
            $( $(#[$doc])* #[serde(default)] pub $name: u64, )*
            /// `content_requests` that named an existing item, by its `type` (`callRecording`, ...).
            #[serde(default)]
            pub content_requests_by_type: BTreeMap<String, u64>,
            /// Requests by their `X-Vccfs-Purpose` header, any route (token included).
            #[serde(default)]
            pub requests_by_purpose: BTreeMap<String, u64>,
            /// `content_requests` by their `X-Vccfs-Purpose` header.
            #[serde(default)]
            pub content_requests_by_purpose: BTreeMap<String, u64>,
        }

        impl Counters {
            fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                    content_requests_by_type: BTreeMap::new(),
                    requests_by_purpose: BTreeMap::new(),
                    content_requests_by_purpose: BTreeMap::new(),
                }
            }
            fn reset(&self) { $( self.$name.store(0, Ordering::Relaxed); )* }
        }
    };
}

counters! {
    /// `POST /Auth/connect/token` requests (any outcome).
    token_requests,
    /// `GET /interaction-content/interactions` requests (any outcome).
    search_requests,
    /// `GET /interaction-content/interactions/{guid}` requests (any outcome).
    interaction_requests,
    /// `GET`/`HEAD` requests to the API content route
    /// `/interaction-content/interactions/{guid}/content/{key}`, any outcome (served,
    /// redirected, or refused with 4xx/5xx). Storage-host hops are not counted here.
    content_requests,
    /// `content_requests` that carried a `Range` header.
    range_requests,
    /// Requests to the storage host of `--redirect` (any outcome).
    storage_requests,
    /// Storage-host requests that carried a `Range` header.
    storage_range_requests,
    /// Content body bytes handed to the HTTP layer (API content route and storage host).
    bytes_sent,
    /// Responses with a 2xx status (all non-control routes, like the other `status_*`).
    status_2xx,
    /// Responses with a 3xx status (redirects, 304).
    status_3xx,
    /// Responses with a 4xx status, 429 included.
    status_4xx,
    /// Responses with a 5xx status.
    status_5xx,
    /// Responses with status 429 (rate limit and `burst_429`).
    status_429,
    /// Content responses whose connection was reset mid-body (`reset_rate`).
    resets,
    /// Content responses cut short: fewer bytes than `Content-Length`, then close (`short_body_rate`).
    short_bodies,
    /// Ranged responses whose body ran past the announced range (`long_body_rate`).
    long_bodies,
    /// Content responses that paused mid-body (`stall_rate`).
    stalls,
    /// Ranged content requests answered with the full body (`ignore_range_rate`).
    ignored_ranges,
    /// Ranged content requests answered with a shifted range (`wrong_range_rate`).
    wrong_ranges,
    /// Requests whose connection was dropped without a response while `down`.
    dropped_connections,
    /// Storage-host requests that carried an `Authorization` header (must stay 0).
    auth_leaked,
}

/// All counters.
#[derive(Default, Debug)]
pub(crate) struct Stats {
    pub c: Counters,
    by_type: Mutex<BTreeMap<String, u64>>,
    /// (all routes, content route) by purpose.
    by_purpose: Mutex<(BTreeMap<String, u64>, BTreeMap<String, u64>)>,
}

/// The header a client names a request's purpose in.
pub(crate) const PURPOSE_HEADER: &str = "x-vccfs-purpose";

/// Longest purpose name counted (anything longer is a client bug, not a new purpose).
const PURPOSE_MAX: usize = 32;

impl Stats {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a content request for an item of type `kind`.
    pub fn count_type(&self, kind: &str) {
        *self.by_type.lock().entry(kind.to_string()).or_default() += 1;
    }

    /// Counts a request by the purpose it names (`content` when it is a content request).
    pub fn count_purpose(&self, purpose: &str, content: bool) {
        let purpose = purpose.trim();
        if purpose.is_empty() || purpose.len() > PURPOSE_MAX {
            return;
        }
        let mut m = self.by_purpose.lock();
        *m.0.entry(purpose.to_string()).or_default() += 1;
        if content {
            *m.1.entry(purpose.to_string()).or_default() += 1;
        }
    }

    /// Counts one response by its status.
    pub fn count_status(&self, status: StatusCode) {
        let c = &self.c;
        match status.as_u16() {
            200..=299 => Self::inc(&c.status_2xx),
            300..=399 => Self::inc(&c.status_3xx),
            400..=499 => Self::inc(&c.status_4xx),
            500..=599 => Self::inc(&c.status_5xx),
            _ => {}
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            Self::inc(&c.status_429);
        }
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut s = self.c.snapshot();
        s.content_requests_by_type = self.by_type.lock().clone();
        let m = self.by_purpose.lock();
        s.requests_by_purpose = m.0.clone();
        s.content_requests_by_purpose = m.1.clone();
        s
    }

    /// Sets every counter to zero.
    pub fn reset(&self) {
        self.c.reset();
        self.by_type.lock().clear();
        *self.by_purpose.lock() = Default::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let s = Stats::default();
        Stats::inc(&s.c.content_requests);
        Stats::add(&s.c.bytes_sent, 10);
        s.count_status(StatusCode::TOO_MANY_REQUESTS);
        s.count_type("callRecording");
        s.count_purpose("read-ahead", true);
        s.count_purpose("listing", false);
        s.count_purpose(&"x".repeat(100), true);
        let snap = s.snapshot();
        assert_eq!(snap.content_requests, 1);
        assert_eq!(snap.bytes_sent, 10);
        assert_eq!((snap.status_429, snap.status_4xx), (1, 1));
        assert_eq!(snap.content_requests_by_type.get("callRecording"), Some(&1));
        let json = serde_json::to_value(&snap).expect("json");
        assert!(json.get("auth_leaked").is_some());
        assert_eq!(json["requests_by_purpose"]["listing"], 1);
        assert_eq!(json["requests_by_purpose"]["read-ahead"], 1);
        assert_eq!(json["content_requests_by_purpose"]["read-ahead"], 1);
        assert!(json["content_requests_by_purpose"].get("listing").is_none());
        assert_eq!(
            snap.requests_by_purpose.len(),
            2,
            "an overlong purpose is not one"
        );
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
    }
}
