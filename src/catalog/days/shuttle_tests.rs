//! Model-checked day listing (issue 26): listings of one day, the background
//! listing of unlisted days and readers race under shuttle's scheduler through the
//! production code (`list`, `list_day`, `list_next_unlisted`, `apply_day`: the diff
//! under the listing's and `extra`'s read locks, the splice under the listing's write
//! lock, the save lock from choosing pieces to applying them), over the scriptable
//! API. The catalog's `RwLock`s and `Mutex`es are shuttle's; the day and save locks
//! are tokio's, awaited in shuttle's `block_on`.
//!
//! Invariants checked on every schedule:
//! - no deadlock, and no thread takes the listing lock it already holds (shuttle
//!   refuses a recursive read outright: the deadlock that once reached CI);
//! - a reader never sees a torn day: the day holds nothing, or one listing's whole
//!   result, and the listing's length matches it;
//! - the later-begun listing's result stands: the API changes before the second
//!   listing begins, so whichever order they apply in, the day ends as the API is;
//! - on-demand listing of a day is single-flight: concurrent readers make one search.

use std::sync::Arc;

use time::macros::{date, datetime};
use time::{Date, OffsetDateTime};

use crate::catalog::Catalog;
use crate::meta::mock::{self, Call, MockMeta};

const DAY: Date = date!(2026 - 11 - 20);
const FROM: OffsetDateTime = datetime!(2026-11-19 00:00 UTC);
const TO: OffsetDateTime = datetime!(2026-11-22 00:00 UTC);

fn at(hour: u8) -> OffsetDateTime {
    DAY.midnight().assume_utc() + time::Duration::hours(hour.into())
}

/// The guids `DAY` lists, and the listing's length, read under one guard.
fn listed(c: &Catalog) -> (Vec<String>, usize) {
    let l = c.listing.read();
    let guids = l
        .day(DAY)
        .map(|d| d.entries.iter().map(|e| e.guid().to_string()).collect())
        .unwrap_or_default();
    (guids, l.len())
}

fn spawn(f: impl FnOnce() + Send + 'static) -> shuttle::thread::JoinHandle<()> {
    shuttle::thread::spawn(f)
}

fn listings() {
    let (x, y, z) = (mock::guid(1), mock::guid(2), mock::guid(3));
    let api = Arc::new(MockMeta::new(vec![
        mock::interaction(&x, at(8)),
        mock::interaction(&y, at(9)),
    ]));
    let c = Arc::new(Catalog::with_mock(FROM, TO, Arc::clone(&api)));
    let mut threads = Vec::new();
    {
        let c = Arc::clone(&c);
        threads.push(spawn(move || {
            let part = c.part(DAY);
            shuttle::future::block_on(c.list(part, None)).expect("the first listing");
        }));
    }
    {
        let (c, api, y, z) = (Arc::clone(&c), Arc::clone(&api), y.clone(), z.clone());
        threads.push(spawn(move || {
            // The API changes, then the second listing begins.
            api.remove(&y);
            api.put(mock::interaction(&z, at(10)));
            let part = c.part(DAY);
            shuttle::future::block_on(c.list(part, None)).expect("the second listing");
        }));
    }
    {
        let c = Arc::clone(&c);
        threads.push(spawn(move || {
            let listed = shuttle::future::block_on(
                c.list_next_unlisted(None, &crate::catalog::Policy::new(None)),
            );
            listed
                .expect("a day to list")
                .expect("the background listing");
        }));
    }
    {
        let (c, x, y, z) = (Arc::clone(&c), x.clone(), y.clone(), z.clone());
        threads.push(spawn(move || {
            let whole = [vec![], vec![x.clone(), y.clone()], vec![x, z]];
            for _ in 0..3 {
                let (guids, len) = listed(&c);
                assert!(whole.contains(&guids), "a torn day: {guids:?}");
                assert_eq!(len, guids.len(), "the listing's length");
                shuttle::thread::yield_now();
            }
        }));
    }
    for t in threads {
        t.join().expect("a thread panicked");
    }
    assert_eq!(listed(&c).0, [x, z], "an earlier listing's result stands");
    assert!(c.known(&y).is_none(), "y came back");
}

fn on_demand() {
    let api = Arc::new(MockMeta::new(vec![mock::interaction(
        &mock::guid(1),
        at(8),
    )]));
    let c = Arc::new(Catalog::with_mock(FROM, TO, Arc::clone(&api)));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let c = Arc::clone(&c);
            spawn(move || {
                let guids = shuttle::future::block_on(c.day(DAY)).expect("the day");
                assert_eq!(*guids, [mock::guid(1)]);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a reader panicked");
    }
    assert_eq!(api.calls(Call::Search), 1, "one search for two readers");
}

#[test]
fn shuttle_day_listings_apply_in_order_and_readers_see_whole_days() {
    shuttle::check_random(listings, crate::sync::iterations(1000));
}

#[test]
fn shuttle_on_demand_day_listing_is_single_flight() {
    shuttle::check_random(on_demand, crate::sync::iterations(1000));
}
