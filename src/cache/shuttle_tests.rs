//! Model-checked single-flight (issue 26): readers of overlapping ranges of one file
//! race under shuttle's scheduler through the production code — `start_missing`
//! (what `fetch_missing` runs before it spawns), the `Filling` sink, `finish` and the
//! drop guard — with shuttle's `Mutex` at every lock.
//!
//! Invariants checked on every schedule:
//! - each block is handed over by a fetch exactly once (no block fetched twice by
//!   readers that both saw it missing), and every reader gets the file's bytes;
//! - when the first fetch dies (fails after one block, is dropped before it runs,
//!   or is aborted at any await point), its blocks are fetched again, no reader hangs
//!   (shuttle fails a schedule in which every thread waits), and no reader hears of
//!   that failure twice (its registrations are gone before anyone hears of it);
//! - nothing is left in flight at the end.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::{BlockCache, BlockId, ContentId, FetchError, Lookup, Run, Want};
use crate::source::SourceError;

/// Blocks of 4 bytes; the file has 3 (the last one short).
const BLOCK: u64 = 4;
const FILE: u64 = 11;
const BLOCKS: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// Every fetch succeeds.
    None,
    /// The first fetch hands over its first block, then fails.
    Fails,
    /// The first fetch's task is dropped before it runs (the runtime shut down).
    Dropped,
    /// The first fetch's task is aborted (cancelled at whichever await it reached).
    Aborted,
}

/// What the fetches did, across all readers of one schedule.
#[derive(Default)]
struct Log {
    fetches: AtomicUsize,
    /// Blocks handed over, by index.
    handed: [AtomicUsize; BLOCKS as usize],
    /// The fetch tasks spawned, to be joined before the schedule ends (shuttle drops
    /// a task left running then, and a destructor may not take a lock).
    tasks: std::sync::Mutex<Vec<shuttle::future::JoinHandle<()>>>,
}

fn byte(i: u64) -> u8 {
    (i * 7 + 1) as u8
}

fn block_bytes(index: u64) -> Bytes {
    let end = ((index + 1) * BLOCK).min(FILE);
    Bytes::from((index * BLOCK..end).map(byte).collect::<Vec<u8>>())
}

fn want(blocks: std::ops::Range<u64>) -> Want {
    Want {
        content: ContentId(1),
        file_size: FILE,
        blocks,
        max_run: 2,
        budget: None,
        align: false,
    }
}

/// Start what `blocks` misses, as `fetch_missing` does, on shuttle tasks.
fn start(cache: &BlockCache, log: &Arc<Log>, blocks: std::ops::Range<u64>, death: Death) {
    let doomed = RefCell::new(Vec::new());
    let (_, tasks) = cache.start_missing(want(blocks), |run: Run, sink| {
        let dies = death != Death::None && log.fetches.fetch_add(1, Ordering::SeqCst) == 0;
        doomed.borrow_mut().push(dies);
        let log = Arc::clone(log);
        async move {
            for index in run.first..run.first + run.count {
                // Counted first: the put wakes its readers, who may finish at once.
                log.handed[index as usize].fetch_add(1, Ordering::SeqCst);
                sink.put(index, block_bytes(index));
                if dies && death == Death::Fails {
                    return Err(SourceError::Tier {
                        tier: "test",
                        detail: "the first fetch fails".into(),
                    });
                }
                shuttle::future::yield_now().await;
            }
            Ok(())
        }
    });
    for (task, dies) in tasks.into_iter().zip(doomed.into_inner()) {
        let handle = match (dies, death) {
            (true, Death::Dropped) => {
                drop(task);
                continue;
            }
            (true, Death::Aborted) => {
                let handle = shuttle::future::spawn(task);
                handle.abort();
                handle
            }
            _ => shuttle::future::spawn(task),
        };
        log.tasks.lock().expect("tasks").push(handle);
    }
}

/// Read `blocks` as a reader does: start what is missing, then take each block as
/// cached or wait for its fetch; a failed fetch means starting again. Returns the
/// bytes and how many failures the reader heard of.
fn read(cache: &BlockCache, log: &Arc<Log>, blocks: std::ops::Range<u64>, death: Death) -> usize {
    let mut heard = 0;
    'attempt: for _ in 0..4 {
        start(cache, log, blocks.clone(), death);
        for index in blocks.clone() {
            let id = BlockId {
                content: ContentId(1),
                index,
            };
            let got = match cache.lookup(id) {
                Lookup::Hit(b) => Ok(b),
                Lookup::Pending(fetch) => shuttle::future::block_on(fetch),
                Lookup::Miss => Err(FetchError::Abandoned),
            };
            match got {
                Ok(b) => assert_eq!(b, block_bytes(index), "block {index}"),
                Err(_) => {
                    heard += 1;
                    continue 'attempt;
                }
            }
        }
        return heard;
    }
    panic!("a reader of {blocks:?} got no bytes after 4 attempts ({heard} failures heard)");
}

fn readers(death: Death) {
    let cache = Arc::new(BlockCache::new(1 << 20, BLOCK));
    let log = Arc::new(Log::default());
    let ranges = [0..2, 1..3, 0..3];
    let handles: Vec<_> = ranges
        .into_iter()
        .map(|blocks| {
            let (cache, log) = (Arc::clone(&cache), Arc::clone(&log));
            shuttle::thread::spawn(move || read(&cache, &log, blocks, death))
        })
        .collect();
    for h in handles {
        let heard = h.join().expect("a reader panicked");
        assert!(heard <= 1, "a reader heard of one dead fetch {heard} times");
    }
    let tasks = std::mem::take(&mut *log.tasks.lock().expect("tasks"));
    for task in tasks {
        let _ = shuttle::future::block_on(task); // an aborted one ends in an error
    }
    for (index, n) in log.handed.iter().enumerate() {
        let n = n.load(Ordering::SeqCst);
        assert_eq!(n, 1, "block {index} was handed over {n} times");
    }
    let stats = cache.stats();
    assert_eq!(stats.inflight_bytes, 0, "bytes left in flight");
    for index in 0..BLOCKS {
        let id = BlockId {
            content: ContentId(1),
            index,
        };
        assert!(matches!(cache.lookup(id), Lookup::Hit(_)), "block {index}");
    }
}

#[test]
fn shuttle_concurrent_readers_fetch_each_block_once() {
    shuttle::check_random(|| readers(Death::None), crate::sync::iterations(1000));
}

#[test]
fn shuttle_a_fetch_that_fails_is_fetched_again() {
    shuttle::check_random(|| readers(Death::Fails), crate::sync::iterations(1000));
}

#[test]
fn shuttle_a_fetch_dropped_unrun_is_fetched_again() {
    shuttle::check_random(|| readers(Death::Dropped), crate::sync::iterations(1000));
}

#[test]
fn shuttle_an_aborted_fetch_is_fetched_again() {
    shuttle::check_random(|| readers(Death::Aborted), crate::sync::iterations(1000));
}
