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
        align: false,
    }
}

/// A fetch serving `run` of a file whose byte i is i, after `delay` ms, recording
/// the runs asked for.
fn serve(
    asked: &Arc<Mutex<Vec<Run>>>,
    delay: u64,
) -> impl Fn(Run, Arc<dyn BlockSink>) -> BoxFuture<'static, Result<(), SourceError>> + '_ {
    move |run, sink| {
        asked.lock().push(run);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            sink.put_all(run.first, run.count, bytes_of(run));
            Ok(())
        }
        .boxed()
    }
}

/// The blocks of `run` of the file whose byte i is i.
fn bytes_of(run: Run) -> Vec<Bytes> {
    (run.offset..run.offset + run.len)
        .collect::<Vec<u64>>()
        .chunks(4)
        .map(|c| Bytes::from(c.iter().map(|&b| b as u8).collect::<Vec<u8>>()))
        .collect()
}

#[tokio::test]
async fn concurrent_lookups_share_one_fetch() {
    let c = BlockCache::new(1 << 20, 4);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Handle::current();
    c.fetch_missing(&rt, want(0..2, 8, None), serve(&asked, 20));
    let (Lookup::Pending(a), Lookup::Pending(b)) = (c.lookup(id(0)), c.lookup(id(1))) else {
        panic!("blocks 0 and 1 must be pending in one fetch");
    };
    let (a, b) = tokio::join!(a, b);
    assert_eq!(&a.expect("fetch")[..], &[0, 1, 2, 3]);
    assert_eq!(&b.expect("fetch")[..], &[4, 5, 6, 7]);
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
    let Lookup::Pending(fetch) = c.lookup(id(6)) else {
        panic!("block 6 must be pending, second of its run");
    };
    assert_eq!(&fetch.await.expect("fetch")[..], &[24, 25, 26, 27]);
    let last = match c.lookup(id(7)) {
        Lookup::Hit(b) => b,
        Lookup::Pending(fetch) => fetch.await.expect("fetch"),
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
    let started = c.fetch_missing(&rt, want(0..1, 8, None), |_, _| async { Ok(()) });
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
    c.fetch_missing(&rt, want(0..2, 8, None), |_, _| async {
        panic!("fetch panicked (expected by this test)")
    });
    let Lookup::Pending(fetch) = c.lookup(id(0)) else {
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
    c.fetch_missing(&rt, want(0..2, 8, None), |run, sink| async move {
        sink.put_all(run.first, run.count, vec![Bytes::from_static(b"short")]);
        Ok(())
    });
    let Lookup::Pending(fetch) = c.lookup(id(0)) else {
        panic!("block 0 must be pending");
    };
    assert!(fetch.await.is_err());
    assert!(matches!(c.lookup(id(0)), Lookup::Miss));
    assert_eq!(c.stats().inflight_bytes, 0);
}

#[tokio::test]
async fn each_block_of_a_run_is_ready_when_it_arrives() {
    let c = BlockCache::new(1 << 20, 4);
    let rt = tokio::runtime::Handle::current();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let wait = Mutex::new(Some(wait));
    c.fetch_missing(&rt, want(0..8, 8, None), |run, sink| {
        let wait = wait.lock().take();
        async move {
            let blocks = bytes_of(run);
            sink.put(0, blocks[0].clone());
            // The rest only when the test says so.
            if let Some(w) = wait {
                let _ = w.await;
            }
            for (i, b) in (0..).zip(blocks).skip(1) {
                sink.put(i, b);
            }
            Ok(())
        }
    });
    let Lookup::Pending(first) = c.lookup(id(0)) else {
        panic!("block 0 pending");
    };
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), first)
        .await
        .expect("block 0 is ready before the run ends")
        .expect("block 0");
    assert_eq!(&got[..], &[0, 1, 2, 3]);
    assert!(matches!(c.lookup(id(0)), Lookup::Hit(_)), "and cached");
    assert_eq!(
        c.stats().inflight_bytes,
        26,
        "its bytes no longer in flight"
    );
    let Lookup::Pending(last) = c.lookup(id(7)) else {
        panic!("block 7 still pending");
    };
    let _ = go.send(());
    assert_eq!(&last.await.expect("block 7")[..], &[28, 29]);
    assert_eq!(c.stats().inflight_bytes, 0);
}

#[tokio::test]
async fn blocks_never_handed_over_fail_with_the_sources_error() {
    let c = BlockCache::new(1 << 20, 4);
    let rt = tokio::runtime::Handle::current();
    c.fetch_missing(&rt, want(0..3, 8, None), |run, sink| async move {
        sink.put(0, bytes_of(run)[0].clone());
        Err(SourceError::Tier {
            tier: "test",
            detail: "broke after one block".into(),
        })
    });
    let Lookup::Pending(b1) = c.lookup(id(1)) else {
        panic!("block 1 pending");
    };
    assert!(matches!(b1.await, Err(FetchError::Source(_))));
    assert!(
        matches!(c.lookup(id(0)), Lookup::Hit(_)),
        "block 0 came: kept"
    );
    assert!(
        matches!(c.lookup(id(1)), Lookup::Miss),
        "fetched again next time"
    );
    assert_eq!(c.stats().inflight_bytes, 0);
}
