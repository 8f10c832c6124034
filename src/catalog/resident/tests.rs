//! The memory budget over the scriptable API (`meta::mock`), with and without a saved
//! catalog: days leave memory least recently used first, come back exactly as they
//! were without a search (from disk), or with one counted apart (no disk, or a saved
//! day gone), and erasure, pages of `/interactions` and lookups reach days out of
//! memory.

use std::sync::Arc;

use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

use crate::catalog::{Catalog, CatalogStore};
use crate::meta::mock::{self, Call, MockMeta};
use crate::model::Interaction;

const FROM: OffsetDateTime = datetime!(2026-11-16 00:00 UTC);
const TO: OffsetDateTime = datetime!(2026-11-20 00:00 UTC);
const PER_DAY: u32 = 200;

fn days() -> Vec<Date> {
    vec![
        date!(2026 - 11 - 16),
        date!(2026 - 11 - 17),
        date!(2026 - 11 - 18),
        date!(2026 - 11 - 19),
    ]
}

/// `PER_DAY` interactions on each day, every 5 minutes from midnight.
fn tenant() -> Vec<Interaction> {
    let mut out = Vec::new();
    for (d, day) in days().into_iter().enumerate() {
        for i in 0..PER_DAY {
            let n = d as u32 * PER_DAY + i + 1;
            let start = day.midnight().assume_utc() + time::Duration::minutes(5 * i64::from(i));
            out.push(mock::interaction(&mock::guid(n), start));
        }
    }
    out
}

fn guids_of(items: &[Interaction], day: Date) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.start.date() == day)
        .map(|i| i.guid.clone())
        .collect()
}

fn store(dir: &std::path::Path) -> CatalogStore {
    let tenant = crate::version::TenantId::new("https://api.example", "client");
    let sealer =
        crate::seal::RootKey::from_secret(&[7; 32], tenant).sealer(crate::seal::Purpose::Catalog);
    CatalogStore::open(&dir.join("catalog"), sealer).expect("a store")
}

/// A catalog of the whole window listed (with a saved catalog in `dir`, if given),
/// then held to a budget of about two and a half days.
async fn listed(api: &Arc<MockMeta>, dir: Option<&std::path::Path>) -> Catalog {
    let mut c = Catalog::with_mock(FROM, TO, Arc::clone(api));
    c.store = dir.map(store);
    c.list_window().await.expect("listed");
    let day = c.listing.read().day(days()[0]).map_or(0, |d| d.bytes);
    assert!(day > 0);
    c.set_memory_budget(day * 5 / 2);
    c
}

#[tokio::test]
async fn days_beyond_the_budget_leave_memory_and_come_back_from_disk_without_a_search() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let c = listed(&api, Some(dir.path())).await;
    let m = c.memory();
    assert_eq!((m.days_in_memory, m.days_on_disk_only), (2, 2), "{m:?}");
    assert!(m.bytes <= m.budget, "{m:?}");
    assert_eq!(c.listed_len(), items.len());
    let searches = api.calls(Call::Search);
    // Twice over every day: exactly as listed, never searched again.
    for _ in 0..2 {
        for day in days() {
            assert_eq!(*c.day(day).await.expect("a day"), guids_of(&items, day));
            let m = c.memory();
            assert!(m.days_in_memory <= 2 && m.bytes <= m.budget, "{m:?}");
        }
    }
    // A guid of a day out of memory, by name: from disk, no lookup.
    let first = &items[0].guid;
    assert!(c.listing.read().away_day_of(first).is_some());
    let e = c.known(first).expect("known from disk");
    assert_eq!(e.guid().to_string(), *first);
    assert!(c
        .lookup(&items[PER_DAY as usize].guid)
        .await
        .expect("lookup")
        .is_some());
    // Every page of /interactions, day by day, in the listing's order.
    let mut all = Vec::new();
    while all.len() < items.len() {
        let page = c.listed_page(all.len(), 150).await.expect("a page");
        assert!(!page.is_empty());
        all.extend(page.iter().map(|e| e.guid().to_string()));
        assert!(c.memory().days_in_memory <= 2);
    }
    let want: Vec<String> = items.iter().map(|i| i.guid.clone()).collect();
    assert_eq!(all, want);
    assert_eq!(
        api.calls(Call::Search),
        searches,
        "a day was searched again"
    );
    assert_eq!(api.calls(Call::Interaction), 0);
    let m = c.memory();
    assert!(
        m.reloads >= 8 && m.relists == 0 && m.evictions >= 8,
        "{m:?}"
    );
    assert_eq!(c.totals().1, 3 * items.len() as u64);
}

#[tokio::test]
async fn the_least_recently_used_day_leaves_first() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let c = listed(&api, Some(dir.path())).await;
    let [d0, d1, d2, d3] = days()[..] else {
        unreachable!()
    };
    let in_memory = |d: Date| !c.listing.read().is_away(d);
    c.day(d0).await.expect("d0");
    c.day(d1).await.expect("d1");
    assert!(in_memory(d0) && in_memory(d1));
    // d0 used again (a lookup of one of its guids): d1 is now the colder one.
    c.known(&guids_of(&items, d0)[3]).expect("known");
    c.day(d2).await.expect("d2");
    assert!(in_memory(d0) && !in_memory(d1) && in_memory(d2));
    c.day(d3).await.expect("d3");
    assert!(!in_memory(d0) && in_memory(d2) && in_memory(d3));
}

#[tokio::test]
async fn without_a_disk_cache_a_day_out_of_memory_is_listed_again_when_needed() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let c = listed(&api, None).await;
    assert_eq!(c.memory().days_on_disk_only, 2);
    let searches = api.calls(Call::Search);
    // Newest first: the two days in memory answer, the two that left are listed again.
    for day in days().into_iter().rev() {
        assert_eq!(*c.day(day).await.expect("a day"), guids_of(&items, day));
    }
    let m = c.memory();
    assert!(m.bytes <= m.budget && m.days_in_memory <= 2, "{m:?}");
    assert_eq!(m.relists, 2, "{m:?}");
    assert_eq!(api.calls(Call::Search) - searches, 2);
    // A guid of a day out of memory is found by listing its day, not looking it up.
    let first = &items[0].guid;
    assert!(c.known_async(first).await.expect("known").is_some());
    assert_eq!(api.calls(Call::Interaction), 0);
}

#[tokio::test]
async fn a_saved_day_gone_from_disk_is_listed_again_and_counted_apart() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let c = listed(&api, Some(dir.path())).await;
    let day = days()[0];
    assert!(c.listing.read().is_away(day));
    std::fs::remove_file(dir.path().join("catalog").join(format!("{day}.day"))).expect("rm");
    let searches = api.calls(Call::Search);
    assert_eq!(*c.day(day).await.expect("the day"), guids_of(&items, day));
    assert_eq!(api.calls(Call::Search) - searches, 1);
    assert_eq!(c.memory().relists, 1);
}

#[tokio::test]
async fn an_interaction_of_a_day_out_of_memory_is_erased_from_it_and_from_disk() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let c = listed(&api, Some(dir.path())).await;
    let day = days()[0];
    assert!(c.listing.read().is_away(day));
    let victim = guids_of(&items, day)[7].clone();
    let forgotten = c.forget(&victim, None).await;
    assert_eq!(forgotten.day, Some(day));
    assert_eq!(forgotten.records, 2, "listing and saved day");
    // Evicted again (the other days used), then back from disk: still without it.
    for d in days() {
        c.day(d).await.expect("a day");
    }
    assert!(c.listing.read().is_away(day));
    let guids = c.day(day).await.expect("the day");
    assert!(!guids.contains(&victim));
    assert_eq!(guids.len(), PER_DAY as usize - 1);
    assert_eq!(c.listed_len(), items.len() - 1);
}

/// With room for about one day, a walk of `/interactions` in pages that straddle days
/// (each asked for again from every offset in it, as the kernel does when a reply
/// holds only part of a page) brings each day back once, lists every interaction
/// once in order, and never needs two days at once.
#[tokio::test]
async fn a_walk_with_room_for_one_day_brings_each_day_back_once() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let c = listed(&api, Some(dir.path())).await;
    let day = {
        let l = c.listing.read();
        days()
            .into_iter()
            .filter_map(|d| l.day(d).map(|d| d.bytes))
            .max()
            .unwrap_or(0)
    };
    assert!(day > 0);
    c.set_memory_budget(day * 6 / 5);
    let before = c.memory();
    assert_eq!(before.days_in_memory, 1, "{before:?}");
    let searches = api.calls(Call::Search);
    // Pages of 150 (days hold 200), each consumed 20 at a time: the pages from 60 to
    // 180 of each day straddle it and the next.
    let (mut at, mut seen) = (0, Vec::new());
    loop {
        let page = c.listed_page(at, 150).await.expect("a page");
        if page.is_empty() {
            break;
        }
        let took = page.len().min(20);
        seen.extend(page[..took].iter().map(|e| e.guid().to_string()));
        at += took;
    }
    let want: Vec<String> = days()
        .into_iter()
        .flat_map(|d| guids_of(&items, d))
        .collect();
    assert_eq!(seen, want, "every interaction once, in order");
    let after = c.memory();
    assert!(
        after.reloads - before.reloads <= days().len() as u64,
        "each day came back at most once: {after:?}"
    );
    assert_eq!(api.calls(Call::Search), searches, "no search");
}

/// A page of `by-date/<day>` is the part of the day asked for, brought back from disk.
#[tokio::test]
async fn a_day_page_is_the_part_asked_for() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let c = listed(&api, Some(dir.path())).await;
    let searches = api.calls(Call::Search);
    for day in days() {
        let all = guids_of(&items, day);
        assert_eq!(c.day_page(day, 0, usize::MAX).await.expect("all"), all);
        assert_eq!(c.day_page(day, 190, 50).await.expect("tail"), all[190..]);
        assert_eq!(c.day_page(day, 10, 5).await.expect("part"), all[10..15]);
        assert!(c.day_page(day, 500, 5).await.expect("past").is_empty());
    }
    assert_eq!(api.calls(Call::Search), searches, "no search");
}

/// A catalog opened on saved days reads only the indexes of the window's whole days:
/// every day is on disk only, nothing is searched, and the listing (length, totals,
/// pages, lookups by guid) is the one saved.
#[tokio::test]
async fn a_reopened_catalog_reads_only_the_indexes_of_whole_days() {
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let first = listed(&api, Some(dir.path())).await;
    let totals = first.totals();
    drop(first);
    let searches = api.calls(Call::Search);
    let source: Arc<dyn crate::meta::MetaSource> = api.clone();
    let (c, opened) = Catalog::open_within(source, FROM, TO, Some(store(dir.path())), u64::MAX)
        .await
        .expect("open");
    assert_eq!(opened, crate::catalog::Opened::Saved { days: 4 });
    let m = c.memory();
    assert_eq!(
        (m.days_in_memory, m.days_on_disk_only, m.bytes),
        (0, 4, 0),
        "{m:?}"
    );
    assert_eq!(c.listed_len(), items.len());
    assert_eq!(c.totals(), totals);
    let guid = &items[PER_DAY as usize + 7].guid;
    assert_eq!(c.known(guid).expect("known").guid().to_string(), *guid);
    let mut all = Vec::new();
    while all.len() < items.len() {
        let page = c.listed_page(all.len(), 150).await.expect("a page");
        assert!(!page.is_empty());
        all.extend(page.iter().map(|e| e.guid().to_string()));
    }
    let want: Vec<String> = items.iter().map(|i| i.guid.clone()).collect();
    assert_eq!(all, want);
    assert_eq!(api.calls(Call::Search), searches, "nothing searched");
    assert_eq!(api.calls(Call::Interaction), 0);
}

/// An index that does not match its day file (another size: the day was written
/// since), or does not open, is ignored and removed, and the day is read whole.
#[tokio::test]
async fn a_stale_or_damaged_index_is_ignored() {
    let items = tenant();
    let dir = tempfile::tempdir().expect("a dir");
    let s = store(dir.path());
    s.save(FROM, TO, &items, TO).expect("save");
    let (first, day) = (days()[0], days()[1]);
    let ix = s.day_index(day).expect("an index");
    assert_eq!(ix.len, PER_DAY as usize);
    let mut want: Vec<u64> = guids_of(&items, day)
        .iter()
        .map(|g| crate::catalog::ino::interaction(g))
        .collect();
    want.sort_unstable();
    assert_eq!(&*ix.hashes, &want[..]);
    assert_eq!(ix.totals.1, 3 * u64::from(PER_DAY));
    assert_eq!(ix.listed, Some(TO), "listed whole when saved");
    let path = |d: Date| dir.path().join("catalog").join(format!("{d}.idx"));
    let old = std::fs::read(path(first)).expect("the first day's index");
    // The first day written again with one interaction fewer: a new index.
    let fewer: Vec<Interaction> = items.iter().skip(1).cloned().collect();
    s.save(FROM, TO, &fewer, TO).expect("save");
    assert_eq!(
        s.day_index(first).map(|ix| ix.len),
        Some(PER_DAY as usize - 1)
    );
    // The old index put back beside the new day file: stale.
    std::fs::write(path(first), &old).expect("put back");
    assert_eq!(s.day_index(first), None, "a stale index");
    assert!(!path(first).exists(), "removed");
    let mut bad = std::fs::read(path(day)).expect("an index");
    let at = bad.len() - 5;
    bad[at] ^= 1;
    std::fs::write(path(day), &bad).expect("damage");
    assert_eq!(s.day_index(day), None, "a damaged index");
    assert!(!path(day).exists(), "removed");
    assert_eq!(
        s.load_day_in(day, FROM, TO).map(|v| v.len()),
        Some(PER_DAY as usize),
        "the day itself still opens"
    );
}

/// A remount re-lists a saved day only once its saved listing is stale by the age
/// policy, as if the mount had never stopped: days listed whole a moment ago open
/// with their listing time and cost the background no search; a policy under which
/// that time is stale (or `--refresh 0`, no policy) lists them as before.
#[tokio::test]
async fn a_reopened_catalog_relists_a_saved_day_only_once_it_is_stale() {
    use crate::catalog::listing::DayState;
    use crate::catalog::Policy;
    use std::time::Duration;
    let items = tenant();
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let before = crate::util::now_secs() - time::Duration::SECOND;
    drop(listed(&api, Some(dir.path())).await);
    let reopen = || async {
        let source: Arc<dyn crate::meta::MetaSource> = api.clone();
        Catalog::open_within(source, FROM, TO, Some(store(dir.path())), u64::MAX)
            .await
            .expect("open")
            .0
    };
    let c = reopen().await;
    for day in days() {
        match c.state(day) {
            Some(DayState::Saved { listed: Some(at) }) => assert!(at >= before, "{day}: {at}"),
            other => panic!("{day}: {other:?}"),
        }
    }
    let searches = api.calls(Call::Search);
    let policy = Policy::new(Some(Duration::from_secs(60)));
    assert!(c.list_next_unlisted(None, &policy).await.is_none());
    assert_eq!(c.due_day(&policy), None);
    assert_eq!(
        api.calls(Call::Search),
        searches,
        "fresh saved days: no search"
    );

    // Stale at once: every day is listed again, newest first, then none is due.
    let stale = Policy {
        ages: Vec::new(),
        old: Duration::ZERO,
        ..Policy::new(Some(Duration::ZERO))
    };
    let mut lists = 0;
    while let Some(r) = c.list_next_unlisted(None, &stale).await {
        r.expect("listed");
        lists += 1;
        assert!(lists <= days().len(), "listing never ends");
    }
    assert!(lists >= 1);
    assert!(api.calls(Call::Search) > searches);
    for day in days() {
        assert!(
            matches!(c.state(day), Some(DayState::Listed { .. })),
            "{day}"
        );
    }

    // Without a tail refresh (`--refresh 0`), saved days are listed once, as before.
    let c = reopen().await;
    let searches = api.calls(Call::Search);
    assert!(c
        .list_next_unlisted(None, &Policy::new(None))
        .await
        .is_some());
    assert!(api.calls(Call::Search) > searches);
}

/// Which days have an agent or a number, over a window held to about two and a half
/// days of four: exact; a day out of memory answers from the hashes of its agents and
/// numbers once it has been in memory (no day brought back); a day opened from its
/// index is brought back once, one at a time; the budget holds throughout.
#[tokio::test]
async fn days_of_an_agent_or_a_number_are_found_within_the_budget() {
    use crate::catalog::views::Facet;
    use crate::model::IdRef;
    let mut items = tenant();
    let (d0, d2, d3) = (days()[0], days()[2], days()[3]);
    for i in items.iter_mut() {
        let day = i.start.date();
        if (day == d0 || day == d2) && i.start.minute() == 5 {
            i.handling_agents = vec![IdRef { id: "7".into() }];
        }
        if day == d3 && i.start.hour() == 9 {
            i.connect_from = Some("+442000000001".into());
        }
    }
    let api = Arc::new(MockMeta::new(items.clone()));
    let dir = tempfile::tempdir().expect("a dir");
    let c = listed(&api, Some(dir.path())).await;
    let budget = c.memory().budget;
    let searches = api.calls(Call::Search);
    let check = |c: &Catalog| {
        let m = c.memory();
        assert!(m.bytes <= m.budget, "{m:?}");
    };
    let reloads = c.memory().reloads;
    assert_eq!(
        c.facet_days(Facet::Agent, "7").await.expect("agent"),
        [d0, d2]
    );
    assert_eq!(
        c.facet_days(Facet::Number, "+442000000001")
            .await
            .expect("number"),
        [d3]
    );
    assert!(c
        .facet_days(Facet::Agent, "8")
        .await
        .expect("none")
        .is_empty());
    assert_eq!(c.memory().reloads, reloads, "answered from the hashes");
    check(&c);
    let keys = c.window_facet_keys(Facet::Agent).await.expect("agents");
    assert_eq!(*keys, ["7"]);
    check(&c);
    // Kept for the next page of the same listing: no day walked again.
    let reloads = c.memory().reloads;
    let again = c.window_facet_keys(Facet::Agent).await.expect("agents");
    assert!(Arc::ptr_eq(&keys, &again));
    assert_eq!(c.memory().reloads, reloads);
    assert_eq!(api.calls(Call::Search), searches, "nothing searched");
    // Until a day's listing changes.
    let mut new = mock::interaction(&mock::guid(9999), d3.midnight().assume_utc());
    new.handling_agents = vec![IdRef { id: "9".into() }];
    api.put(new);
    c.relist(&[d3]).await.expect("relist");
    let searches = api.calls(Call::Search);
    let keys = c.window_facet_keys(Facet::Agent).await.expect("agents");
    assert_eq!(*keys, ["7", "9"]);
    check(&c);
    drop(c);

    // Opened from the indexes: the days' facets are not known until each has been in
    // memory; the first walk brings them back one at a time, the second none.
    let source: Arc<dyn crate::meta::MetaSource> = api.clone();
    let (c, _) = Catalog::open_within(source, FROM, TO, Some(store(dir.path())), budget)
        .await
        .expect("open");
    assert_eq!(c.memory().days_on_disk_only, 4);
    assert_eq!(
        c.facet_days(Facet::Agent, "7").await.expect("agent"),
        [d0, d2]
    );
    check(&c);
    let reloads = c.memory().reloads;
    assert!(reloads >= 2, "{:?}", c.memory());
    assert_eq!(
        c.facet_days(Facet::Number, "+442000000001")
            .await
            .expect("number"),
        [d3]
    );
    assert_eq!(c.memory().reloads, reloads, "answered from the hashes");
    assert_eq!(api.calls(Call::Search), searches, "nothing searched");
}
