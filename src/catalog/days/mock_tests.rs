//! The catalog over the scriptable API (`meta::mock`), without HTTP: overlapping
//! listings of one day finishing in both orders (the later-begun listing's result
//! stands), paging, failed searches, lookups, size probes and revocation.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

use super::Range;
use crate::api::ApiError;
use crate::catalog::{Catalog, CatalogError, Change, DayState};
use crate::meta::mock::{self, Call, Fault, FaultyMeta, MockMeta, When};
use crate::meta::{Meta, MetaSource};
use crate::model::Interaction;

const DAY: Date = date!(2026 - 11 - 20);

fn at(hour: u8) -> OffsetDateTime {
    DAY.midnight().assume_utc() + time::Duration::hours(hour.into())
}

const FROM: OffsetDateTime = datetime!(2026-11-19 00:00 UTC);
const TO: OffsetDateTime = datetime!(2026-11-22 00:00 UTC);

fn catalog(api: &Arc<MockMeta>) -> Arc<Catalog> {
    Arc::new(Catalog::with_mock(FROM, TO, Arc::clone(api)))
}

/// The guids `day` lists, in order.
fn listed(c: &Catalog, day: Date) -> Vec<String> {
    let l = c.listing.read();
    l.day(day)
        .map(|d| d.entries.iter().map(|e| e.guid().to_string()).collect())
        .unwrap_or_default()
}

/// A listing of `range`, begun now on a task of its own.
fn begin(c: &Arc<Catalog>, range: Range) -> tokio::task::JoinHandle<Result<(), CatalogError>> {
    let c = Arc::clone(c);
    tokio::spawn(async move { c.list(range, None).await.map(|_| ()) })
}

/// The guids the hook was told are gone.
fn gone_seen(c: &Catalog) -> Arc<Mutex<Vec<String>>> {
    let gone = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&gone);
    c.on_change(move |change| {
        if let Change::Gone { guid, .. } = change {
            seen.lock().push(guid);
        }
    });
    gone
}

fn guids() -> (String, String, String) {
    (mock::guid(1), mock::guid(2), mock::guid(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_begun_earlier_that_finishes_last_does_not_overwrite_a_later_one() {
    let (x, y, z) = guids();
    let api = Arc::new(MockMeta::new(vec![
        mock::interaction(&x, at(8)),
        mock::interaction(&y, at(9)),
    ]));
    let c = catalog(&api);
    let gone = gone_seen(&c);
    let first = api.hold_search(1);
    let earlier = begin(&c, c.part(DAY));
    api.searches_begun(1).await;
    // The API changes after the earlier listing's answer was taken: y deleted, z new.
    api.remove(&y);
    api.put(mock::interaction(&z, at(10)));
    // Listing times are whole seconds: the later listing begins a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later_began = crate::util::now_secs();
    c.list(c.part(DAY), None).await.expect("the later listing");
    assert_eq!(listed(&c, DAY), [x.clone(), z.clone()]);
    first.open();
    earlier.await.expect("join").expect("the earlier listing");
    assert_eq!(
        listed(&c, DAY),
        [x.clone(), z.clone()],
        "the earlier listing overwrote the later one"
    );
    assert!(c.known(&y).is_none(), "y came back");
    assert!(
        gone.lock().is_empty(),
        "nothing was listed before: {gone:?}"
    );
    assert!(
        matches!(c.state(DAY), Some(DayState::Listed { at }) if at >= later_began),
        "the day's listing time went back: {:?}",
        c.state(DAY)
    );
    assert_eq!(api.calls(Call::Search), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_begun_later_that_finishes_last_replaces_the_earlier_one() {
    let (x, y, z) = guids();
    let api = Arc::new(MockMeta::new(vec![
        mock::interaction(&x, at(8)),
        mock::interaction(&y, at(9)),
    ]));
    let c = catalog(&api);
    let gone = gone_seen(&c);
    let (first, second) = (api.hold_search(1), api.hold_search(2));
    let earlier = begin(&c, c.part(DAY));
    api.searches_begun(1).await;
    api.remove(&y);
    api.put(mock::interaction(&z, at(10)));
    let later = begin(&c, c.part(DAY));
    api.searches_begun(2).await;
    first.open();
    earlier.await.expect("join").expect("the earlier listing");
    assert_eq!(
        listed(&c, DAY),
        [x.clone(), y.clone()],
        "what the API had first"
    );
    second.open();
    later.await.expect("join").expect("the later listing");
    assert_eq!(
        listed(&c, DAY),
        [x.clone(), z.clone()],
        "what the API has now"
    );
    assert_eq!(*gone.lock(), [y], "y is erased once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_whole_day_listing_keeps_only_what_no_later_range_listed() {
    // A slow whole-day re-list begins; a quick tail re-list of the afternoon begins
    // later and finishes first. The day's morning is the whole-day listing's (nobody
    // listed it later), its afternoon the tail's.
    let (m1, p1, p2) = guids();
    let api = Arc::new(MockMeta::new(vec![
        mock::interaction(&m1, at(3)),
        mock::interaction(&p1, at(15)),
    ]));
    let c = catalog(&api);
    let first = api.hold_search(1);
    let day = begin(&c, c.part(DAY));
    api.searches_begun(1).await;
    api.remove(&p1);
    api.remove(&m1);
    api.put(mock::interaction(&p2, at(16)));
    c.list((at(12), at(24)), None).await.expect("the tail");
    assert_eq!(listed(&c, DAY), std::slice::from_ref(&p2));
    assert_eq!(c.state(DAY), Some(DayState::Partial));
    first.open();
    day.await.expect("join").expect("the whole day");
    // m1 is shown once more (its deletion came after the day's search began): the
    // next re-list erases it.
    assert_eq!(listed(&c, DAY), [m1.clone(), p2.clone()]);
    assert!(matches!(c.state(DAY), Some(DayState::Listed { .. })));
}

#[tokio::test]
async fn pages_are_followed_to_the_end() {
    let items: Vec<Interaction> = (1..=5)
        .map(|n| mock::interaction(&mock::guid(n), at(n as u8)))
        .collect();
    let api = Arc::new(MockMeta::new(items).with_page_size(2));
    let c = catalog(&api);
    c.list_day(DAY, None, false).await.expect("list");
    let want: Vec<String> = (1..=5).map(mock::guid).collect();
    assert_eq!(listed(&c, DAY), want);
    assert_eq!(api.calls(Call::Search), 3, "three pages");
    // Listed whole: not listed again on demand.
    c.day(DAY).await.expect("the day");
    assert_eq!(api.calls(Call::Search), 3);
}

#[tokio::test]
async fn a_failed_search_changes_nothing_and_the_next_one_lists() {
    let (x, y, _) = guids();
    let api = Arc::new(
        MockMeta::new(vec![
            mock::interaction(&x, at(8)),
            mock::interaction(&y, at(9)),
        ])
        .with_page_size(1),
    );
    let timeout = ApiError::Timeout {
        what: "GET interactions".into(),
        waited: Duration::from_secs(30),
        detail: "injected".into(),
    };
    let faulty: Arc<dyn MetaSource> = Arc::new(
        FaultyMeta::new(api.clone())
            .with(Call::Search, When::Nth(2), Fault::Fail(timeout))
            .with(
                Call::Search,
                When::From(1),
                Fault::Delay(Duration::from_millis(5)),
            ),
    );
    let c = Catalog::empty(Meta::from(faulty), FROM, TO);
    let e = c
        .list_day(DAY, None, false)
        .await
        .expect_err("page 2 fails");
    assert!(
        matches!(e, CatalogError::Api(ApiError::Timeout { .. })),
        "{e:?}"
    );
    assert!(listed(&c, DAY).is_empty(), "the first page was applied");
    assert_eq!(c.state(DAY), None);
    c.list_day(DAY, None, false).await.expect("listed");
    assert_eq!(listed(&c, DAY), [x, y]);
    assert_eq!(
        api.calls(Call::Search),
        3,
        "the failed page never reached the API"
    );
}

#[tokio::test]
async fn lookups_cost_one_request_and_a_missing_guid_is_remembered() {
    let (x, y, z) = guids();
    let api = Arc::new(MockMeta::new(vec![mock::interaction(&x, at(8))]));
    let c = catalog(&api);
    let gone = gone_seen(&c);
    let e = c.lookup(&x).await.expect("lookup").expect("x exists");
    assert_eq!(e.guid().to_string(), x);
    assert!(c.lookup(&x).await.expect("known").is_some());
    assert_eq!(
        api.calls(Call::Interaction),
        1,
        "a known guid costs nothing"
    );
    assert!(c.lookup(&y).await.expect("lookup").is_none());
    assert!(c.lookup(&y).await.expect("lookup").is_none());
    assert_eq!(
        api.calls(Call::Interaction),
        2,
        "no such guid is remembered"
    );
    assert_eq!(
        *gone.lock(),
        std::slice::from_ref(&y),
        "a 404 erases what tiers keep"
    );
    api.fail_next(
        Call::Interaction,
        ApiError::Forbidden {
            what: "GET interactions/z".into(),
            detail: "injected".into(),
        },
    );
    let e = c.lookup(&z).await.expect_err("forbidden");
    assert!(
        matches!(e, CatalogError::Api(ApiError::Forbidden { .. })),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_size_left_out_is_probed_once() {
    let x = mock::guid(1);
    let mut i = mock::interaction(&x, at(8));
    for c in &mut i.content {
        c.content_length = None;
    }
    let api = Arc::new(MockMeta::new(vec![i]));
    api.set_size(&x, "transcript", 5000);
    let c = catalog(&api);
    c.list_day(DAY, None, false).await.expect("list");
    let e = c.known(&x).expect("listed");
    let f = c.file(&e, "transcript").expect("the file");
    assert!(!f.size_known);
    let (sized, head) = c.sized(&x, &f, 64).await.expect("probed");
    assert_eq!(sized.size, 5000);
    assert_eq!(head.map(|h| h.len()), Some(64), "block 0 comes back");
    let (again, head) = c.sized(&x, &f, 64).await.expect("learned");
    assert_eq!((again.size, head), (5000, None));
    assert_eq!(api.calls(Call::Probe), 1);
}

#[tokio::test]
async fn revocation_is_the_sources() {
    let api = Arc::new(MockMeta::new(Vec::new()));
    let c = catalog(&api);
    assert!(!c.is_revoked());
    c.set_revoked(true);
    assert!(c.is_revoked());
    c.set_revoked(false);
    assert!(!c.is_revoked());
    let unreachable = Catalog::in_memory(FROM, TO, Vec::new());
    let e = unreachable
        .lookup(&mock::guid(9))
        .await
        .expect_err("nothing answers");
    assert!(
        matches!(e, CatalogError::Api(ApiError::Transport { .. })),
        "{e:?}"
    );
}
