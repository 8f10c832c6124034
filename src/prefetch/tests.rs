//! The prefetcher against mock sources: faults below it become errors, never bytes.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::cache::FetchError;
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
    let cache = Arc::new(BlockCache::new(16 << 20, BLOCK));
    Prefetcher::new(
        source,
        cache,
        ReadAheadConfig::default(),
        rt.handle().clone(),
    )
}

fn file(n: u64) -> Source {
    Source {
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
    src: &Source,
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
    let p = prefetcher(&rt, source);
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
    assert_eq!(source.requests(), [(0, 1)]);
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
