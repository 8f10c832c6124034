//! The erasure path (`crate::erase::Eraser`) against the filesystem's operations: a
//! catalog in memory, the memory cache, a mock block source, a recording tier.

use std::ffi::OsStr;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};
use parking_lot::Mutex;

use super::errno::FsError;
use super::ops::Ops;
use crate::cache::BlockCache;
use crate::catalog::{ino, Catalog};
use crate::erase::{EraseTier, Eraser, Erasure, Inval};
use crate::model::Interaction;
use crate::prefetch::{Prefetcher, ReadAheadConfig};
use crate::source::mock::{byte_at, MockSource};

const GUIDS: [&str; 2] = [
    "20000000-0000-4000-8000-000000000001",
    "20000000-0000-4000-8000-000000000002",
];
const SIZE: u64 = 300_000;

fn interactions() -> Vec<Interaction> {
    GUIDS
        .iter()
        .enumerate()
        .map(|(i, g)| {
            serde_json::from_value(serde_json::json!({
                "guid": g,
                "start": format!("2026-11-20T10:0{i}:00Z"),
                "content": [
                    {"contentKey": "callRecording", "type": "CALL_RECORDING",
                     "contentType": "audio/wav", "contentLength": SIZE,
                     "lastModified": "2026-11-20T11:00:00Z"},
                    {"contentKey": "transcript", "type": "TRANSCRIPT",
                     "contentType": "application/json", "contentLength": 5000,
                     "lastModified": "2026-11-20T11:00:00Z"}
                ]
            }))
            .expect("interaction")
        })
        .collect()
}

/// A tier that records what it was asked to erase.
#[derive(Default)]
struct Recording(Mutex<Vec<Erasure>>);

impl EraseTier for Arc<Recording> {
    fn tier(&self) -> &'static str {
        "recording"
    }
    fn erase(&self, what: &Erasure) -> BoxFuture<'static, Result<u64, String>> {
        self.0.lock().push(what.clone());
        let n = what.versions.len() as u64;
        async move { Ok(n) }.boxed()
    }
}

struct Rig {
    rt: tokio::runtime::Runtime,
    ops: Arc<Ops>,
    catalog: Arc<Catalog>,
    cache: Arc<BlockCache>,
    eraser: Arc<Eraser>,
    tier: Arc<Recording>,
    invals: Arc<Mutex<Vec<Inval>>>,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_kernel(|i| {
            // Like the invalidator thread: a barrier is answered once reached.
            if let Inval::Barrier(done) = i {
                done.fire();
            }
        })
    }

    /// A rig whose kernel is `kernel` (it answers barriers, or not yet).
    fn with_kernel(kernel: impl Fn(&Inval) + Send + Sync + 'static) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let catalog = Arc::new(Catalog::in_memory(
            time::macros::datetime!(2026-11-19 00:00 UTC),
            time::macros::datetime!(2026-11-22 00:00 UTC),
            interactions(),
        ));
        let cache = Arc::new(BlockCache::new(64 << 20, 64 << 10));
        let prefetcher = Arc::new(Prefetcher::new(
            Arc::new(MockSource::new(0)),
            Arc::clone(&cache),
            ReadAheadConfig::default(),
            rt.handle().clone(),
        ));
        let ops = Arc::new(Ops::new(Arc::clone(&catalog), prefetcher));
        let tier = Arc::new(Recording::default());
        let invals = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&invals);
        let eraser = Arc::new(Eraser::new(
            Arc::clone(&catalog),
            Arc::clone(&cache),
            move |i| {
                kernel(&i);
                seen.lock().push(i)
            },
            vec![Arc::new(Arc::clone(&tier)) as Arc<dyn EraseTier>],
            None,
        ));
        Rig {
            rt,
            ops,
            catalog,
            cache,
            eraser,
            tier,
            invals,
        }
    }

    fn lookup(&self, parent: u64, name: &str) -> Result<super::ops::Entry, FsError> {
        self.rt.block_on(self.ops.lookup(parent, OsStr::new(name)))
    }

    /// Open file `key` of `guid`: its handle.
    fn open(&self, guid: &str, key: &str) -> u64 {
        let dir = self.lookup(ino::INTERACTIONS, guid).expect("guid");
        let f = self.lookup(dir.attr.ino.0, key).expect("file");
        self.ops.open(f.attr.ino.0, libc::O_RDONLY).expect("open")
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<bytes::Bytes, FsError> {
        self.rt.block_on(self.ops.read(fh, offset, size))
    }

    fn names(&self, ino: u64) -> Vec<String> {
        let entries = self.rt.block_on(self.ops.readdir(ino, 0)).expect("readdir");
        entries.into_iter().map(|e| e.name).collect()
    }
}

fn truth(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(byte_at).collect()
}

#[test]
fn an_erased_interaction_leaves_every_tier_and_its_open_handles_read_no_bytes() {
    let rig = Rig::new();
    let fh = rig.open(GUIDS[0], "callRecording");
    let other = rig.open(GUIDS[1], "callRecording");
    assert_eq!(rig.read(fh, 0, 4096).expect("read"), truth(0, 4096));
    assert_eq!(rig.read(other, 0, 4096).expect("read"), truth(0, 4096));
    let before = rig.cache.stats().cached_blocks;
    assert!(before > 0);

    let report = rig.rt.block_on(rig.eraser.erase(GUIDS[0]));
    assert_eq!(report.guid, GUIDS[0]);
    assert_eq!(report.catalog_entries, 1, "{report:?}");
    assert!(report.memory_blocks > 0, "{report:?}");
    assert!(rig.cache.stats().cached_blocks < before);
    assert_eq!(report.tiers.len(), 1);
    assert_eq!(report.tiers[0].removed, 2, "both versions went to the tier");
    assert_eq!(rig.eraser.erasures(), 1);
    {
        let asked = rig.tier.0.lock();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].guid, GUIDS[0]);
        assert!(asked[0].key.is_none());
    }
    {
        let invals = rig.invals.lock();
        let file = ino::file(GUIDS[0], "callRecording");
        assert!(invals.contains(&Inval::Inode(file)), "{invals:?}");
        assert!(invals.contains(&Inval::Entry {
            parent: ino::INTERACTIONS,
            name: GUIDS[0].into()
        }));
        let day = ino::day(time::macros::date!(2026 - 11 - 20));
        assert!(invals.contains(&Inval::Entry {
            parent: day,
            name: GUIDS[0].into()
        }));
        // Its directory, files and metadata under `interactions/<guid>`, and the two
        // names of the interaction itself.
        let sent = invals
            .iter()
            .filter(|i| !matches!(i, Inval::Barrier(_)))
            .count();
        assert_eq!(report.inodes_invalidated as usize, sent - 5);
        // The erasure waited for the kernel: a barrier after every invalidation.
        assert!(
            matches!(invals.last(), Some(Inval::Barrier(_))),
            "{invals:?}"
        );
    }

    // The open handle reads an error, never the bytes (cached or not).
    let e = rig
        .read(fh, 0, 4096)
        .expect_err("an erased file must not read");
    assert_eq!(e.errno(), fuser::Errno::ENOENT);
    assert!(rig.read(fh, 200_000, 4096).is_err());
    // Its name is gone, from lookups and listings.
    assert!(matches!(
        rig.lookup(ino::INTERACTIONS, GUIDS[0]),
        Err(FsError::NotFound)
    ));
    assert!(!rig.names(ino::INTERACTIONS).contains(&GUIDS[0].to_string()));
    let day = rig.lookup(ino::BY_DATE, "2026-11-20").expect("day");
    assert!(!rig.names(day.attr.ino.0).contains(&GUIDS[0].to_string()));
    assert!(matches!(
        rig.lookup(day.attr.ino.0, GUIDS[0]),
        Err(FsError::NotFound)
    ));
    // Everything else reads exact bytes.
    assert_eq!(
        rig.read(other, 100_000, 8192).expect("read"),
        truth(100_000, 8192)
    );
    // Erasing again removes nothing more, and still counts (a command).
    let again = rig.rt.block_on(rig.eraser.erase(GUIDS[0]));
    assert_eq!(again.catalog_entries + again.memory_blocks, 0);
}

#[test]
fn a_relist_that_no_longer_shows_a_guid_reports_it_gone_not_purged() {
    let rig = Rig::new();
    let fh = rig.open(GUIDS[1], "transcript");
    assert!(rig.read(fh, 0, 100).is_ok());
    let left: Vec<Interaction> = interactions().into_iter().take(1).collect();
    let r = rig.catalog.recheck(left);
    assert!(r.purged.is_empty(), "no version changed: {:?}", r.purged);
    assert_eq!(r.gone.len(), 1);
    assert_eq!(r.gone[0].guid().to_string(), GUIDS[1]);
    // What the hook hands the eraser (serve.rs spawns it): the entry the listing lost.
    let (guid, entry) = (GUIDS[1], Some(Arc::clone(&r.gone[0])));
    let report = rig.rt.block_on(rig.eraser.erase_gone(guid, entry));
    assert!(report.memory_blocks > 0, "{report:?}");
    assert_eq!(rig.tier.0.lock()[0].versions.len(), 2);
    assert!(rig.read(fh, 0, 100).is_err());
    assert_eq!(rig.eraser.erasures(), 1);
}

#[test]
fn an_erased_file_alone_keeps_its_interaction() {
    let rig = Rig::new();
    let fh = rig.open(GUIDS[0], "transcript");
    let rec = rig.open(GUIDS[0], "callRecording");
    assert!(rig.read(fh, 0, 100).is_ok());
    assert!(rig.read(rec, 0, 100).is_ok());
    let entry = rig.catalog.known(GUIDS[0]).expect("known");
    let version = rig
        .catalog
        .file(&entry, "transcript")
        .expect("file")
        .version
        .id;
    let report = rig
        .rt
        .block_on(rig.eraser.erase_content(GUIDS[0], "transcript", version));
    assert_eq!(report.key.as_deref(), Some("transcript"));
    assert!(report.memory_blocks > 0);
    assert!(rig.read(fh, 0, 100).is_err());
    assert_eq!(rig.read(rec, 0, 100).expect("read"), truth(0, 100));
    assert!(rig.lookup(ino::INTERACTIONS, GUIDS[0]).is_ok());
}

#[test]
fn a_second_erasure_of_a_guid_waits_for_the_first_to_reach_the_kernel() {
    // The kernel answers every barrier but the first: the first erasure is held
    // between queuing its invalidations and hearing they were sent.
    let held: Arc<Mutex<Option<crate::erase::Signal>>> = Arc::default();
    let first = Arc::clone(&held);
    let barriers = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let rig = Rig::with_kernel(move |i| {
        if let Inval::Barrier(done) = i {
            if barriers.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                *first.lock() = Some(done.clone());
            } else {
                done.fire();
            }
        }
    });
    let fh = rig.open(GUIDS[0], "callRecording");
    let eraser = Arc::clone(&rig.eraser);
    let a = rig
        .rt
        .spawn(async move { eraser.erase_gone(GUIDS[0], None).await });
    while held.lock().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // A second failed read confirmed the deletion too: it finds the catalog empty,
    // but must not finish (nor count) before the first has told the kernel.
    let eraser = Arc::clone(&rig.eraser);
    let b = rig
        .rt
        .spawn(async move { eraser.erase_gone(GUIDS[0], None).await });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !a.is_finished() && !b.is_finished(),
        "finished before the kernel heard"
    );
    assert_eq!(rig.eraser.erasures(), 0);
    if let Some(s) = held.lock().take() {
        s.fire();
    }
    let (ra, rb) = rig.rt.block_on(async { (a.await, b.await) });
    let (ra, rb) = (ra.expect("first"), rb.expect("second"));
    assert_eq!(ra.catalog_entries, 1, "{ra:?}");
    assert_eq!(rb.catalog_entries, 0, "{rb:?}");
    assert_eq!(rig.eraser.erasures(), 1);
    assert!(rig.read(fh, 0, 4096).is_err());
}

#[test]
fn an_open_interaction_json_reads_enoent_once_erased_even_if_listed_again() {
    let rig = Rig::new();
    let fh = rig.open(GUIDS[0], crate::catalog::META_NAME);
    let other = rig.open(GUIDS[1], crate::catalog::META_NAME);
    let json = rig.read(fh, 0, 1 << 20).expect("read");
    assert_eq!(
        json,
        rig.catalog.known(GUIDS[0]).expect("known").meta_json()
    );

    rig.rt.block_on(rig.eraser.erase(GUIDS[0]));
    let e = rig
        .read(fh, 0, 1 << 20)
        .expect_err("erased metadata must not read");
    assert_eq!(e.errno(), fuser::Errno::ENOENT);
    // Another interaction's metadata is untouched.
    assert!(rig.read(other, 0, 10).is_ok());
    // The API lists it again: a new open reads, the old handle still does not.
    rig.catalog.recheck(interactions());
    assert!(rig.read(fh, 0, 10).is_err());
    let again = rig.open(GUIDS[0], crate::catalog::META_NAME);
    assert_eq!(rig.read(again, 0, 1 << 20).expect("reopened"), json);
}
