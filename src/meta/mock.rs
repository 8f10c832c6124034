//! Test metadata sources: a scriptable in-memory API ([`MockMeta`]) and a
//! fault-injecting wrapper of any source ([`FaultyMeta`]), for the catalog's tests
//! without HTTP (as `source::mock` is for blocks).
//!
//! Invariants of [`MockMeta`]:
//! - **Answers are snapshots taken when the call is made**, as a server answers what
//!   it had when the request came: a page, a lookup or a probe reflects the tenant at
//!   the moment the method was called, however long its latency or gate holds it.
//! - **Pages are the API's**: the items of one window in start order, at most
//!   `page_size` a page, the next page named by an opaque continuation token.
//! - **Calls are counted before they can fail**, so a test can tell a failed search
//!   from one never sent; searches are numbered from 1 in the order they are made, and
//!   search `n` waits for its [`Gate`] (if one was set for it) before it answers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use time::OffsetDateTime;

use super::{MetaSource, Window};
use crate::api::{ApiError, Probe};
use crate::model::{Interaction, SearchMeta, SearchPage};
use crate::version::{TenantId, Validator};

/// Which kind of call (for latency, failures and counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Search,
    Interaction,
    Probe,
}

/// Holds a call until opened; opened once, it lets every waiter through for good.
#[derive(Debug, Clone)]
pub struct Gate(Arc<tokio::sync::Semaphore>);

impl Gate {
    fn new() -> Gate {
        Gate(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    /// Let the held call (and any later waiter) go on.
    pub fn open(&self) {
        // A closed semaphore fails every acquire at once: that is the open gate.
        self.0.close();
    }

    async fn wait(&self) {
        let _ = self.0.acquire().await;
    }
}

/// An interaction of the mock tenant starting at `start`, with one 1,000-byte
/// `transcript` last modified at its start.
pub fn interaction(guid: &str, start: OffsetDateTime) -> Interaction {
    let start = crate::util::format_rfc3339(start);
    serde_json::from_value(serde_json::json!({
        "guid": guid,
        "start": start,
        "direction": "Inbound",
        "content": [
            {"contentKey": "transcript", "type": "TRANSCRIPT",
             "contentType": "application/json", "contentLength": 1000,
             "lastModified": start}
        ]
    }))
    .expect("a valid mock interaction")
}

/// A guid for mock interaction `n`.
pub fn guid(n: u32) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

#[derive(Debug, Default)]
struct State {
    items: Vec<Interaction>,
    page_size: usize,
    unreachable: bool,
    revoked: bool,
    latency: HashMap<Call, Duration>,
    failures: HashMap<Call, VecDeque<ApiError>>,
    /// Search number (from 1) → the gate it waits for.
    gates: HashMap<u64, Gate>,
    calls: HashMap<Call, u64>,
    access_probes: u64,
    /// Sizes of items listed without `contentLength`, for probes.
    sizes: HashMap<(String, String), u64>,
}

/// A scriptable in-memory Interaction Content API (see the module essay).
#[derive(Debug)]
pub struct MockMeta {
    state: Mutex<State>,
    /// How many searches have been made (their snapshots taken).
    begun: tokio::sync::watch::Sender<u64>,
}

fn transport(what: String) -> ApiError {
    ApiError::Transport {
        what,
        detail: "connection refused (mock API unreachable)".into(),
    }
}

impl MockMeta {
    /// An API listing `items`, 1,000 a page.
    pub fn new(items: Vec<Interaction>) -> MockMeta {
        MockMeta {
            state: Mutex::new(State {
                items,
                page_size: 1000,
                ..State::default()
            }),
            begun: tokio::sync::watch::Sender::new(0),
        }
    }

    /// An API nobody reaches: every call fails at once (as with nothing listening).
    pub fn unreachable() -> MockMeta {
        let m = MockMeta::new(Vec::new());
        m.state.lock().unreachable = true;
        m
    }

    /// At most `n` items a page.
    pub fn with_page_size(self, n: usize) -> MockMeta {
        self.state.lock().page_size = n.max(1);
        self
    }

    /// Every `call` takes `latency` from now on.
    pub fn set_latency(&self, call: Call, latency: Duration) {
        self.state.lock().latency.insert(call, latency);
    }

    /// The next `call` (after those already queued) fails with `error`.
    pub fn fail_next(&self, call: Call, error: ApiError) {
        let mut s = self.state.lock();
        s.failures.entry(call).or_default().push_back(error);
    }

    /// Search number `n` (from 1, counting every search made so far) answers only once
    /// the returned gate is opened.
    pub fn hold_search(&self, n: u64) -> Gate {
        let gate = Gate::new();
        self.state.lock().gates.insert(n, gate.clone());
        gate
    }

    /// Wait until `n` searches have been made (their answers taken).
    pub async fn searches_begun(&self, n: u64) {
        let mut rx = self.begun.subscribe();
        let _ = rx.wait_for(|b| *b >= n).await;
    }

    /// How many `call`s were made.
    pub fn calls(&self, call: Call) -> u64 {
        self.state.lock().calls.get(&call).copied().unwrap_or(0)
    }

    /// How many access probes were made.
    pub fn access_probes(&self) -> u64 {
        self.state.lock().access_probes
    }

    /// The API refuses (or accepts again) this client.
    pub fn set_revoked(&self, revoked: bool) {
        self.state.lock().revoked = revoked;
    }

    /// `interaction` exists from now on (replacing one of the same guid).
    pub fn put(&self, interaction: Interaction) {
        let mut s = self.state.lock();
        s.items.retain(|i| i.guid != interaction.guid);
        s.items.push(interaction);
    }

    /// Interaction `guid` no longer exists.
    pub fn remove(&self, guid: &str) {
        self.state.lock().items.retain(|i| i.guid != guid);
    }

    /// Content `key` of `guid` changes: its `lastModified` moves `secs` later.
    pub fn mutate(&self, guid: &str, key: &str, secs: i64) -> bool {
        let mut s = self.state.lock();
        let item = s
            .items
            .iter_mut()
            .find(|i| i.guid == guid)
            .and_then(|i| i.content.iter_mut().find(|c| c.content_key == key));
        match item {
            Some(c) => {
                let lm = c.last_modified.unwrap_or(OffsetDateTime::UNIX_EPOCH);
                c.last_modified = Some(lm + time::Duration::seconds(secs));
                true
            }
            None => false,
        }
    }

    /// A probe of `guid`'s `key` finds `size` bytes (items listed without a size).
    pub fn set_size(&self, guid: &str, key: &str, size: u64) {
        let mut s = self.state.lock();
        s.sizes.insert((guid.to_string(), key.to_string()), size);
    }

    /// Count a `call`; its latency, queued failure (unreachable: always one).
    fn begin(s: &mut State, call: Call, what: &str) -> (Duration, Option<ApiError>) {
        *s.calls.entry(call).or_default() += 1;
        let latency = s.latency.get(&call).copied().unwrap_or_default();
        if s.unreachable {
            return (latency, Some(transport(what.to_string())));
        }
        let failure = s.failures.get_mut(&call).and_then(VecDeque::pop_front);
        (latency, failure)
    }

    fn page(s: &State, (a, b): Window, continuation: Option<&str>) -> Result<SearchPage, ApiError> {
        let mut items: Vec<&Interaction> = s
            .items
            .iter()
            .filter(|i| i.start >= a && i.start < b)
            .collect();
        items.sort_by_key(|i| i.start);
        let offset = match continuation {
            None => 0,
            Some(t) => t
                .strip_prefix("after-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| ApiError::BadRequest {
                    what: "GET interactions".into(),
                    status: 400,
                    detail: format!("unknown continuation token {t:?}"),
                })?,
        };
        let end = offset.saturating_add(s.page_size).min(items.len());
        let page = items.get(offset.min(end)..end).unwrap_or_default();
        let next = (end < items.len()).then(|| format!("after-{end}"));
        Ok(SearchPage {
            items: page.iter().map(|i| (*i).clone()).collect(),
            meta: SearchMeta {
                next_continuation_token: next,
                ..SearchMeta::default()
            },
        })
    }
}

/// The answer after `latency` and `gate`, unless `failure` says otherwise.
fn answer<T: Send + 'static>(
    latency: Duration,
    gate: Option<Gate>,
    failure: Option<ApiError>,
    answer: Result<T, ApiError>,
) -> BoxFuture<'static, Result<T, ApiError>> {
    async move {
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if let Some(g) = gate {
            g.wait().await;
        }
        match failure {
            Some(e) => Err(e),
            None => answer,
        }
    }
    .boxed()
}

impl MetaSource for MockMeta {
    fn tenant(&self) -> TenantId {
        TenantId::new("http://mock/interaction-content", "test")
    }

    fn search_page(
        &self,
        window: Window,
        continuation: Option<String>,
    ) -> BoxFuture<'static, Result<SearchPage, ApiError>> {
        let (latency, failure, gate, page) = {
            let mut s = self.state.lock();
            let (latency, failure) = MockMeta::begin(&mut s, Call::Search, "GET interactions");
            let n = s.calls.get(&Call::Search).copied().unwrap_or(0);
            let gate = s.gates.remove(&n);
            (
                latency,
                failure,
                gate,
                MockMeta::page(&s, window, continuation.as_deref()),
            )
        };
        self.begun.send_modify(|b| *b += 1);
        answer(latency, gate, failure, page)
    }

    fn interaction(&self, guid: &str) -> BoxFuture<'static, Result<Interaction, ApiError>> {
        let what = format!("GET interactions/{guid}");
        let mut s = self.state.lock();
        let (latency, failure) = MockMeta::begin(&mut s, Call::Interaction, &what);
        let found = s.items.iter().find(|i| i.guid == guid).cloned();
        answer(
            latency,
            None,
            failure,
            found.ok_or(ApiError::NotFound { what }),
        )
    }

    fn probe(
        &self,
        guid: &str,
        key: &str,
        head: u64,
    ) -> BoxFuture<'static, Result<Probe, ApiError>> {
        let what = format!("GET interactions/{guid}/content/{key} (size probe)");
        let mut s = self.state.lock();
        let (latency, failure) = MockMeta::begin(&mut s, Call::Probe, &what);
        let item = s
            .items
            .iter()
            .find(|i| i.guid == guid)
            .and_then(|i| i.item(key));
        let known = s.sizes.get(&(guid.to_string(), key.to_string())).copied();
        let probe = match (item, known) {
            (Some(c), known) => {
                let size = known.or(c.content_length).unwrap_or(0);
                Ok(Probe {
                    size,
                    head: Bytes::from(vec![0u8; head.max(1).min(size) as usize]),
                    validator: Some(Validator::ETag("\"mock\"".into())),
                })
            }
            (None, _) => Err(ApiError::NotFound { what }),
        };
        answer(latency, None, failure, probe)
    }

    fn is_revoked(&self) -> bool {
        self.state.lock().revoked
    }

    fn probe_access(&self) -> BoxFuture<'static, ()> {
        self.state.lock().access_probes += 1;
        futures::future::ready(()).boxed()
    }
}

/// When a fault applies, by the 1-based count of calls of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The `n`th call only.
    Nth(u64),
    /// The `n`th call and every later one.
    From(u64),
    /// Every `n`th call.
    Every(u64),
}

impl When {
    fn applies(self, count: u64) -> bool {
        match self {
            When::Nth(n) => count == n,
            When::From(n) => count >= n,
            When::Every(n) => n > 0 && count % n == 0,
        }
    }
}

/// What a fault does to a call.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this error instead (the inner source is not asked).
    Fail(ApiError),
    /// Answer this much later.
    Delay(Duration),
}

/// Wraps any [`MetaSource`] and injects faults on a schedule (per kind of call).
#[derive(Debug)]
pub struct FaultyMeta {
    inner: Arc<dyn MetaSource>,
    rules: Vec<(Call, When, Fault)>,
    counts: Mutex<HashMap<Call, u64>>,
}

impl FaultyMeta {
    pub fn new(inner: Arc<dyn MetaSource>) -> FaultyMeta {
        FaultyMeta {
            inner,
            rules: Vec::new(),
            counts: Mutex::default(),
        }
    }

    /// Apply `fault` to the `call`s `when` says.
    pub fn with(mut self, call: Call, when: When, fault: Fault) -> FaultyMeta {
        self.rules.push((call, when, fault));
        self
    }

    /// Count one `call`: the delay and the failure its rules give it.
    fn faults(&self, call: Call) -> (Duration, Option<ApiError>) {
        let count = {
            let mut counts = self.counts.lock();
            let c = counts.entry(call).or_default();
            *c += 1;
            *c
        };
        let mut delay = Duration::ZERO;
        let mut failure = None;
        for (c, when, fault) in &self.rules {
            if *c == call && when.applies(count) {
                match fault {
                    Fault::Fail(e) => failure = failure.or_else(|| Some(e.clone())),
                    Fault::Delay(d) => delay += *d,
                }
            }
        }
        (delay, failure)
    }

    fn wrap<T: Send + 'static>(
        &self,
        call: Call,
        inner: impl FnOnce() -> BoxFuture<'static, Result<T, ApiError>>,
    ) -> BoxFuture<'static, Result<T, ApiError>> {
        let (delay, failure) = self.faults(call);
        let asked = match failure {
            Some(e) => Err(e),
            None => Ok(inner()),
        };
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            asked?.await
        }
        .boxed()
    }
}

impl MetaSource for FaultyMeta {
    fn tenant(&self) -> TenantId {
        self.inner.tenant()
    }

    fn search_page(
        &self,
        window: Window,
        continuation: Option<String>,
    ) -> BoxFuture<'static, Result<SearchPage, ApiError>> {
        self.wrap(Call::Search, || {
            self.inner.search_page(window, continuation)
        })
    }

    fn interaction(&self, guid: &str) -> BoxFuture<'static, Result<Interaction, ApiError>> {
        self.wrap(Call::Interaction, || self.inner.interaction(guid))
    }

    fn probe(
        &self,
        guid: &str,
        key: &str,
        head: u64,
    ) -> BoxFuture<'static, Result<Probe, ApiError>> {
        self.wrap(Call::Probe, || self.inner.probe(guid, key, head))
    }

    fn is_revoked(&self) -> bool {
        self.inner.is_revoked()
    }

    fn probe_access(&self) -> BoxFuture<'static, ()> {
        self.inner.probe_access()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Meta;
    use time::macros::datetime;

    #[tokio::test]
    async fn the_mock_pages_waits_and_fails_as_told() {
        let t = datetime!(2026-11-20 08:00 UTC);
        let items = (1..=3)
            .map(|n| interaction(&guid(n), t + time::Duration::minutes(n.into())))
            .collect();
        let api = Arc::new(MockMeta::new(items).with_page_size(2));
        let meta = Meta::mock(Arc::clone(&api));
        let mut pager = meta.search(t, t + time::Duration::hours(1));
        let mut got = Vec::new();
        while let Some(page) = pager.next_page().await.expect("a page") {
            got.extend(page.into_iter().map(|i| i.guid));
        }
        assert_eq!(got, [guid(1), guid(2), guid(3)]);
        assert_eq!(api.calls(Call::Search), 2);

        api.set_latency(Call::Interaction, Duration::from_millis(20));
        let began = std::time::Instant::now();
        assert!(meta.interaction(&guid(1)).await.is_ok());
        assert!(began.elapsed() >= Duration::from_millis(20));
        let e = meta.interaction(&guid(9)).await.expect_err("no such guid");
        assert!(matches!(e, ApiError::NotFound { .. }), "{e:?}");
        meta.probe_access().await;
        assert_eq!(api.access_probes(), 1);

        let bad = ApiError::Protocol {
            what: "x".into(),
            detail: "injected".into(),
        };
        let faulty =
            FaultyMeta::new(api.clone()).with(Call::Interaction, When::Every(2), Fault::Fail(bad));
        let results: Vec<bool> =
            futures::future::join_all((0..4).map(|_| faulty.interaction(&guid(1))))
                .await
                .iter()
                .map(Result::is_ok)
                .collect();
        assert_eq!(results, [true, false, true, false]);
        assert_eq!(
            api.calls(Call::Interaction),
            4,
            "failed calls never reach the API"
        );
    }
}
