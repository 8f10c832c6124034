//! The prefetcher against mock sources: faults below it become errors, never bytes.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::cache::FetchError;
use crate::cache::{BlockId, Lookup};
use crate::source::mock::{byte_at, file_version, Fault, Faulty, MockSource};
use crate::source::SourceError;

const BLOCK: u64 = 64 << 10;
const SIZE: u64 = 10 * BLOCK + 123;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn prefetcher(rt: &tokio::runtime::Runtime, source: Arc<dyn BlockSource>) -> Prefetcher {
    prefetcher_with(rt, source, ReadAheadConfig::default(), 16 << 20)
}

fn prefetcher_with(
    rt: &tokio::runtime::Runtime,
    source: Arc<dyn BlockSource>,
    cfg: ReadAheadConfig,
    capacity: u64,
) -> Prefetcher {
    let cache = Arc::new(BlockCache::new(capacity, BLOCK));
    Prefetcher::new(source, cache, cfg, rt.handle().clone())
}

/// Block by block: no whole-file fetch, no head or tail fetch.
fn blockwise() -> ReadAheadConfig {
    ReadAheadConfig {
        whole_file: 0,
        probe_lead: 0,
        ..ReadAheadConfig::default()
    }
}

fn file(n: u64) -> OpenVersion {
    OpenVersion {
        content: ContentId(n),
        version: file_version(SIZE),
    }
}

fn truth(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(byte_at).collect()
}

fn read(
    rt: &tokio::runtime::Runtime,
    p: &Prefetcher,
    src: &OpenVersion,
    offset: u64,
    len: u64,
) -> Result<Bytes, ReadError> {
    let ra = Mutex::new(ReadAhead::default());
    rt.block_on(p.read(src, &ra, offset, len, &Retention::Keep))
}

#[test]
fn a_failed_fetch_is_an_error_and_the_next_read_fetches_again() {
    let rt = runtime();
    let source = Arc::new(Faulty::nth(MockSource::new(SIZE), Fault::Fail, 1).covering(0));
    let p = prefetcher(&rt, source.clone());
    let src = file(1);
    let e = read(&rt, &p, &src, 100, 1000).expect_err("first fetch fails");
    assert!(
        matches!(
            e,
            ReadError::Fetch(FetchError::Source(SourceError::Origin(_)))
        ),
        "{e:?}"
    );
    let got = read(&rt, &p, &src, 100, 1000).expect("second read");
    assert_eq!(&got[..], &truth(100, 1000)[..]);
    assert_eq!(source.inner().requests().len(), 2, "fetched again, once");
}

#[test]
fn a_short_run_is_an_error_never_short_bytes() {
    let rt = runtime();
    let source = Arc::new(Faulty::nth(MockSource::new(SIZE), Fault::ShortRun, 1).covering(0));
    let p = prefetcher(&rt, source);
    let src = file(2);
    // Three blocks in one read: the run comes back one block short.
    let e = read(&rt, &p, &src, 0, 3 * BLOCK).expect_err("short run");
    assert!(matches!(e, ReadError::Fetch(FetchError::Shape(_))), "{e:?}");
    assert_eq!(p.cache().stats().cached_blocks, 0, "nothing of it cached");
    let got = read(&rt, &p, &src, 0, 3 * BLOCK).expect("read again");
    assert_eq!(&got[..], &truth(0, 3 * BLOCK)[..]);
}

#[test]
fn bytes_come_from_the_fetch_that_covers_them() {
    let rt = runtime();
    // The first fetch of block 4 is corrupted at its first byte; block 0 is not.
    let source = Arc::new(Faulty::nth(MockSource::new(SIZE), Fault::WrongBytes, 1).covering(4));
    let p = prefetcher_with(&rt, source, blockwise(), 16 << 20);
    let src = file(3);
    let a = read(&rt, &p, &src, 0, 100).expect("block 0");
    assert_eq!(&a[..], &truth(0, 100)[..]);
    let b = read(&rt, &p, &src, 4 * BLOCK, 100).expect("block 4");
    let mut want = truth(4 * BLOCK, 100);
    want[0] ^= 0xff;
    assert_eq!(
        &b[..],
        &want[..],
        "exactly the corrupted byte, nowhere shifted"
    );
}

#[test]
fn concurrent_reads_of_one_block_share_one_fetch() {
    let rt = runtime();
    let source = Arc::new(MockSource::new(SIZE).delayed(Duration::from_millis(50)));
    let p = Arc::new(prefetcher(&rt, source.clone()));
    let src = file(4);
    let reads: Vec<_> = (0..4)
        .map(|i| {
            let (p, src) = (Arc::clone(&p), src.clone());
            rt.spawn(async move {
                let ra = Mutex::new(ReadAhead::default());
                p.read(&src, &ra, 1000 + i * 10, 100, &Retention::Keep)
                    .await
            })
        })
        .collect();
    for (i, r) in reads.into_iter().enumerate() {
        let got = rt.block_on(r).expect("join").expect("read");
        assert_eq!(&got[..], &truth(1000 + i as u64 * 10, 100)[..]);
    }
    assert_eq!(source.requests(), [(0, 11)], "one request: the whole file");
}

#[test]
fn a_tier_error_that_reaches_the_reader_is_reported_as_a_tier_error() {
    let rt = runtime();
    let source = Arc::new(Faulty::nth(MockSource::new(SIZE), Fault::TierFail, 1).covering(0));
    let p = prefetcher(&rt, source);
    let e = read(&rt, &p, &file(5), 0, 10).expect_err("tier failed");
    assert!(
        matches!(
            e,
            ReadError::Fetch(FetchError::Source(SourceError::Tier { .. }))
        ),
        "{e:?}"
    );
}

#[test]
fn a_small_file_costs_one_request_whatever_the_reader_does() {
    let rt = runtime();
    let source = Arc::new(MockSource::new(SIZE));
    let p = prefetcher(&rt, source.clone());
    let src = file(6);
    let ra = Mutex::new(ReadAhead::default());
    // A player: the header, the tail, a few seeks, then the whole file in order.
    let mut reads = vec![
        (0, 44),
        (SIZE - 128, 128),
        (5 * BLOCK + 7, 4096),
        (BLOCK, 100),
    ];
    reads.extend((0..SIZE).step_by(32 << 10).map(|o| (o, 32 << 10)));
    for (offset, len) in reads {
        let got = rt
            .block_on(p.read(&src, &ra, offset, len, &Retention::Keep))
            .expect("read");
        let len = len.min(SIZE - offset);
        assert_eq!(&got[..], &truth(offset, len)[..], "at {offset}");
    }
    assert_eq!(source.requests(), [(0, 11)]);
}

#[test]
fn the_first_block_of_a_whole_file_arrives_before_the_last() {
    let rt = runtime();
    // One block every 100 ms: the whole file takes over a second to arrive.
    let source = Arc::new(MockSource::new(SIZE).streaming(Duration::from_millis(100)));
    let p = prefetcher(&rt, source.clone());
    let src = file(7);
    let t = std::time::Instant::now();
    let got = read(&rt, &p, &src, 10, 1000).expect("head");
    let waited = t.elapsed();
    assert_eq!(&got[..], &truth(10, 1000)[..]);
    assert_eq!(
        source.requests(),
        [(0, 11)],
        "one request for the whole file"
    );
    let last = BlockId {
        content: src.content,
        index: 10,
    };
    assert!(
        matches!(p.cache().lookup(last), Lookup::Pending(_)),
        "the head was delivered while the tail is still on its way"
    );
    assert!(waited < Duration::from_millis(700), "waited {waited:?}");
    let tail = read(&rt, &p, &src, SIZE - 23, 23).expect("tail");
    assert_eq!(&tail[..], &truth(SIZE - 23, 23)[..]);
    assert_eq!(source.requests().len(), 1);
}

#[test]
fn a_whole_file_over_the_budget_is_fetched_as_needed() {
    let rt = runtime();
    let source = Arc::new(MockSource::new(SIZE));
    let cfg = ReadAheadConfig {
        inflight_budget: 2 * BLOCK,
        ..ReadAheadConfig::default()
    };
    let p = prefetcher_with(&rt, source.clone(), cfg, 16 << 20);
    let got = read(&rt, &p, &file(8), 3 * BLOCK, 10).expect("read");
    assert_eq!(&got[..], &truth(3 * BLOCK, 10)[..]);
    assert_eq!(source.requests(), [(3, 1)], "only the block the read needs");
}

const MIB: u64 = 1 << 20;
/// A large file: 40 MiB and a bit, 8 MiB = 128 blocks.
const LARGE: u64 = 40 * MIB + 1000;

fn large(n: u64) -> OpenVersion {
    OpenVersion {
        content: ContentId(n),
        version: file_version(LARGE),
    }
}

#[test]
fn a_large_files_head_and_tail_probes_cost_two_requests() {
    let rt = runtime();
    let source = Arc::new(MockSource::with_version(file_version(LARGE)));
    let p = prefetcher_with(&rt, source.clone(), ReadAheadConfig::default(), 64 * MIB);
    let src = large(9);
    // ffprobe-like: the header, a bit more of it, the last bytes, the cues before them.
    for (offset, len) in [
        (0, 4096),
        (4096, 65536),
        (LARGE - 128, 128),
        (LARGE - 300_000, 4096),
        (200_000, 4096),
    ] {
        let got = read(&rt, &p, &src, offset, len).expect("read");
        assert_eq!(&got[..], &truth(offset, len)[..], "at {offset}");
    }
    let tail_from = (LARGE - MIB) / BLOCK;
    assert_eq!(
        source.requests(),
        [(0, 128), (tail_from, (LARGE.div_ceil(BLOCK)) - tail_from)],
        "the head (8 MiB), the tail (from 1 MiB before the end)"
    );
}

#[test]
fn a_sequential_reader_of_a_large_file_costs_size_over_8_mib_requests() {
    let rt = runtime();
    let source = Arc::new(MockSource::with_version(file_version(LARGE)));
    let p = prefetcher_with(&rt, source.clone(), ReadAheadConfig::default(), 128 * MIB);
    let src = large(10);
    let ra = Mutex::new(ReadAhead::default());
    let step = 128 << 10;
    for offset in (0..LARGE).step_by(step as usize) {
        let got = rt
            .block_on(p.read(&src, &ra, offset, step, &Retention::Keep))
            .expect("read");
        assert_eq!(got.len() as u64, step.min(LARGE - offset));
        assert_eq!(got[0], byte_at(offset), "at {offset}");
    }
    let asked = source.requests();
    let floor = LARGE.div_ceil(8 * MIB) + 2;
    assert!(
        asked.len() as u64 <= floor,
        "{} requests: {asked:?}",
        asked.len()
    );
    let blocks = LARGE.div_ceil(BLOCK);
    for &(first, count) in &asked {
        assert_eq!(first % 128, 0, "runs start on 8 MiB boundaries: {asked:?}");
        assert!(
            count == 128 || first + count == blocks,
            "runs are 8 MiB but at the end: {asked:?}"
        );
    }
}
