//! Unit tests of the block cache: LRU by bytes, single-flight, budgets, dying fetches.

use super::*;

#[test]
fn idle_pool_memory_counts_against_the_capacity() {
    const B: usize = 256 << 10;
    let c = BlockCache::new(8 * B as u64, B as u64);
    let content = ContentId(1);
    for (i, mut buf) in c.pool().run(8).into_iter().enumerate() {
        assert!(buf.is_pooled());
        buf.extend_from_slice(&[i as u8; B]);
        c.insert(
            BlockId {
                content,
                index: i as u64,
            },
            buf.freeze(),
        );
    }
    assert_eq!(c.stats().cached_bytes, 8 * B as u64);
    c.forget(content, 0..8);
    assert_eq!(c.pool().idle_resident_bytes(), 8 * B, "kept for reuse");
    // Small files (heap blocks) now fill the cache: the idle pool memory makes
    // room instead of adding up with them.
    for i in 0..6u64 {
        c.insert(id(100 + i), Bytes::from(vec![1u8; B]));
        let used = c.stats().cached_bytes as usize;
        assert!(used + c.pool().idle_resident_bytes() <= 8 * B, "after {i}");
    }
    assert_eq!(c.stats().cached_blocks, 6, "nothing cached was evicted");
    assert_eq!(c.pool().idle_resident_bytes(), 2 * B);
}

fn id(i: u64) -> BlockId {
    BlockId {
        content: ContentId(1),
        index: i,
    }
}

#[test]
fn lru_evicts_by_bytes() {
    let c = BlockCache::new(10, 4);
    c.insert(id(0), Bytes::from_static(b"aaaa"));
    c.insert(id(1), Bytes::from_static(b"bbbb"));
    assert!(matches!(c.lookup(id(0)), Lookup::Hit(_)));
    c.insert(id(2), Bytes::from_static(b"cccc"));
    // 12 > 10: the least recently used (block 1) goes.
    assert!(matches!(c.lookup(id(1)), Lookup::Miss));
    assert!(matches!(c.lookup(id(0)), Lookup::Hit(_)));
    assert_eq!(c.stats().cached_bytes, 8);
}

/// `blocks` of an 8-block, 4-byte-block file as `want`.
fn want(blocks: Range<u64>, max_run: u64, budget: Option<u64>) -> Want {
    Want {
        content: ContentId(1),
        file_size: 30,
        blocks,
        max_run,
        budget,
    }
}

/// A fetch serving `run` of a file whose byte i is i, after `delay` ms, recording
/// the runs asked for.
fn serve(
    asked: &Arc<Mutex<Vec<Run>>>,
    delay: u64,
) -> impl Fn(Run) -> BoxFuture<'static, Result<Vec<Bytes>, SourceError>> + '_ {
    move |run| {
        asked.lock().push(run);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            Ok((run.offset..run.offset + run.len)
                .collect::<Vec<u64>>()
                .chunks(4)
                .map(|c| Bytes::from(c.iter().map(|&b| b as u8).collect::<Vec<u8>>()))
                .collect())
        }
        .boxed()
    }
}

#[tokio::test]
async fn concurrent_lookups_share_one_fetch() {
    let c = BlockCache::new(1 << 20, 4);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Handle::current();
    c.fetch_missing(&rt, want(0..2, 8, None), serve(&asked, 20));
    let (Lookup::Pending { fetch: a, index: 0 }, Lookup::Pending { fetch: b, index: 1 }) =
        (c.lookup(id(0)), c.lookup(id(1)))
    else {
        panic!("blocks 0 and 1 must be pending in one fetch");
    };
    let (a, b) = tokio::join!(a, b);
    assert_eq!(&a.expect("fetch")[0][..], &[0, 1, 2, 3]);
    assert_eq!(&b.expect("fetch")[1][..], &[4, 5, 6, 7]);
    assert_eq!(asked.lock().len(), 1);
    assert!(matches!(c.lookup(id(1)), Lookup::Hit(_)));
    assert_eq!(c.stats().inflight_bytes, 0);
}

#[tokio::test]
async fn blocks_cached_or_in_flight_are_never_fetched_again() {
    let c = BlockCache::new(1 << 20, 4);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Handle::current();
    c.insert(id(1), Bytes::from_static(&[4, 5, 6, 7]));
    c.fetch_missing(&rt, want(0..5, 2, None), serve(&asked, 50));
    // Overlapping: only blocks 5..8 are new (the last one is 2 bytes: 28..30).
    c.fetch_missing(&rt, want(3..8, 2, None), serve(&asked, 50));
    let run = |first, count, offset, len| Run {
        first,
        count,
        offset,
        len,
    };
    assert_eq!(
        *asked.lock(),
        [
            run(0, 1, 0, 4),
            run(2, 2, 8, 8),
            run(4, 1, 16, 4),
            run(5, 2, 20, 8),
            run(7, 1, 28, 2)
        ]
    );
    assert_eq!(c.stats().inflight_bytes, 26);
    let Lookup::Pending { fetch, index: 1 } = c.lookup(id(6)) else {
        panic!("block 6 must be pending, second of its run");
    };
    assert_eq!(&fetch.await.expect("fetch")[1][..], &[24, 25, 26, 27]);
    let last = match c.lookup(id(7)) {
        Lookup::Hit(b) => b,
        Lookup::Pending { fetch, index: 0 } => fetch.await.expect("fetch")[0].clone(),
        other => panic!("block 7: {other:?}"),
    };
    assert_eq!(&last[..], &[28, 29], "the file's last 2 bytes");
}

#[tokio::test]
async fn read_ahead_stops_at_its_budget() {
    let c = BlockCache::new(1 << 20, 4);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Handle::current();
    c.fetch_missing(&rt, want(0..8, 2, Some(16)), serve(&asked, 50));
    let started = c.fetch_missing(&rt, want(0..8, 2, Some(16)), serve(&asked, 50));
    assert_eq!(started.runs.len(), 0, "all in flight or over budget");
    assert_eq!(started.stopped_at, Some(4));
    assert_eq!(asked.lock().len(), 2, "two 8-byte runs fit 16 bytes");
    assert_eq!(c.stats().inflight_bytes, 16);
    assert!(matches!(c.lookup(id(4)), Lookup::Miss));
}

#[tokio::test]
async fn runs_stop_at_the_end_of_the_file() {
    let c = BlockCache::new(1 << 20, 4);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Handle::current();
    let started = c.fetch_missing(&rt, want(6..12, 8, None), serve(&asked, 0));
    let runs: Vec<Run> = started.runs.iter().map(|(r, _)| *r).collect();
    assert_eq!(
        runs,
        [Run {
            first: 6,
            count: 2,
            offset: 24,
            len: 6
        }]
    );
}

#[tokio::test]
async fn blocks_asked_for_again_are_kept_over_older_ones() {
    let c = BlockCache::new(8, 4);
    let rt = tokio::runtime::Handle::current();
    c.insert(id(0), Bytes::from_static(b"aaaa"));
    c.insert(id(1), Bytes::from_static(b"bbbb"));
    // A read of block 0 (already cached) marks it used...
    let started = c.fetch_missing(&rt, want(0..1, 8, None), |_| async { Ok(Vec::new()) });
    assert!(started.runs.is_empty());
    // ...so the next block in evicts block 1.
    c.insert(id(2), Bytes::from_static(b"cccc"));
    assert!(matches!(c.lookup(id(0)), Lookup::Hit(_)));
    assert!(matches!(c.lookup(id(1)), Lookup::Miss));
}

#[tokio::test]
async fn a_fetch_that_dies_leaves_its_blocks_to_be_fetched_again() {
    let c = BlockCache::new(1 << 20, 4);
    let rt = tokio::runtime::Handle::current();
    c.fetch_missing(&rt, want(0..2, 8, None), |_| async {
        panic!("fetch panicked (expected by this test)")
    });
    let Lookup::Pending { fetch, .. } = c.lookup(id(0)) else {
        panic!("block 0 must be pending");
    };
    assert!(fetch.await.is_err(), "waiters get an error");
    assert!(
        matches!(c.lookup(id(0)), Lookup::Miss),
        "not pending forever"
    );
    assert_eq!(c.stats().inflight_bytes, 0);
    let asked = Arc::new(Mutex::new(Vec::new()));
    c.fetch_missing(&rt, want(0..2, 8, None), serve(&asked, 0));
    assert_eq!(asked.lock().len(), 1, "fetched again");
}

#[tokio::test]
async fn wrong_length_is_an_error_not_a_block() {
    let c = BlockCache::new(1 << 20, 4);
    let rt = tokio::runtime::Handle::current();
    c.fetch_missing(&rt, want(0..2, 8, None), |_| async {
        Ok(vec![Bytes::from_static(b"short")])
    });
    let Lookup::Pending { fetch, .. } = c.lookup(id(0)) else {
        panic!("block 0 must be pending");
    };
    assert!(fetch.await.is_err());
    assert!(matches!(c.lookup(id(0)), Lookup::Miss));
    assert_eq!(c.stats().inflight_bytes, 0);
}
