//! The filesystem's operations without FUSE: a catalog built in memory, the real
//! prefetcher and block cache, and mock block sources.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use fuser::{Errno, FileType};

use super::answer::{answer, Answered};
use super::errno::FsError;
use super::ops::Ops;
use crate::cache::BlockCache;
use crate::catalog::{ino, Catalog, META_NAME};
use crate::model::Interaction;
use crate::prefetch::{Prefetcher, ReadAheadConfig};
use crate::source::mock::{byte_at, Fault, Faulty, MemStore, MockSource};
use crate::source::{BlockSource, Tiered};
use crate::version::Validator;

pub(super) const GUIDS: [&str; 3] = [
    "10000000-0000-4000-8000-000000000001",
    "10000000-0000-4000-8000-000000000002",
    "10000000-0000-4000-8000-000000000003",
];
const RECORDING: u64 = 1_000_000;
const TRANSCRIPT: u64 = 5_000;

pub(super) struct Rig {
    pub(super) rt: tokio::runtime::Runtime,
    pub(super) ops: Arc<Ops>,
    pub(super) catalog: Arc<Catalog>,
}

fn interactions() -> Vec<Interaction> {
    GUIDS
        .iter()
        .enumerate()
        .map(|(i, g)| {
            serde_json::from_value(serde_json::json!({
                "guid": g,
                "start": format!("2026-11-20T10:0{i}:00Z"),
                "direction": "Inbound",
                "content": [
                    {"contentKey": "callRecording", "type": "CALL_RECORDING",
                     "contentType": "audio/wav", "contentLength": RECORDING,
                     "lastModified": "2026-11-20T11:00:00Z"},
                    {"contentKey": "transcript", "type": "TRANSCRIPT",
                     "contentType": "application/json", "contentLength": TRANSCRIPT,
                     "lastModified": "2026-11-20T11:00:00Z"}
                ]
            }))
            .expect("interaction")
        })
        .collect()
}

impl Rig {
    fn new(source: impl FnOnce() -> Arc<dyn BlockSource>) -> Rig {
        Rig::with_access(source, super::access::Access::default())
    }

    /// A rig whose nodes are owned and moded by `access`.
    pub(super) fn with_access(
        source: impl FnOnce() -> Arc<dyn BlockSource>,
        access: super::access::Access,
    ) -> Rig {
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
            source(),
            cache,
            ReadAheadConfig::default(),
            rt.handle().clone(),
        ));
        let ops = Arc::new(Ops::new(Arc::clone(&catalog), prefetcher).with_access(access));
        Rig { rt, ops, catalog }
    }

    pub(super) fn mock() -> Rig {
        Rig::new(|| Arc::new(MockSource::new(0)))
    }

    pub(super) fn lookup(&self, parent: u64, name: &str) -> Result<super::ops::Entry, FsError> {
        self.rt.block_on(self.ops.lookup(parent, OsStr::new(name)))
    }

    pub(super) fn file_ino(&self, guid: &str, key: &str) -> u64 {
        let dir = self.lookup(ino::INTERACTIONS, guid).expect("guid");
        self.lookup(dir.attr.ino.0, key).expect("file").attr.ino.0
    }

    fn read(&self, fh: u64, offset: u64, size: u32) -> Result<bytes::Bytes, FsError> {
        self.rt.block_on(self.ops.read(fh, offset, size))
    }

    pub(super) fn names(&self, ino: u64, offset: u64) -> Vec<String> {
        let entries = self
            .rt
            .block_on(self.ops.readdir(ino, offset))
            .expect("readdir");
        entries.into_iter().map(|e| e.name).collect()
    }
}

/// A caller who may read anything.
const ROOT: super::access::Caller = super::access::Caller {
    uid: 0,
    gid: 0,
    pid: 0,
};

fn truth(offset: u64, len: u64) -> Vec<u8> {
    (offset..offset + len).map(byte_at).collect()
}

#[test]
fn the_tree_is_the_catalog() {
    let rig = Rig::mock();
    assert_eq!(
        rig.names(ino::ROOT, 0),
        [
            ".",
            "..",
            "interactions",
            "by-date",
            "calls",
            "by-agent",
            "by-number"
        ]
    );
    let mut want = vec![".".to_string(), "..".to_string()];
    want.extend(GUIDS.iter().map(|g| g.to_string()));
    assert_eq!(rig.names(ino::INTERACTIONS, 0), want);
    let dir = rig.lookup(ino::INTERACTIONS, GUIDS[1]).expect("guid");
    assert_eq!(dir.attr.kind, FileType::Directory);
    assert_eq!(dir.attr.ino.0, ino::interaction(GUIDS[1]));
    assert_eq!(
        rig.names(dir.attr.ino.0, 0),
        [".", "..", META_NAME, "callRecording", "transcript"]
    );
    let rec = rig.lookup(dir.attr.ino.0, "callRecording").expect("file");
    assert_eq!(rec.attr.size, RECORDING);
    assert_eq!(rec.attr.kind, FileType::RegularFile);
    assert_eq!(
        rig.rt
            .block_on(rig.ops.getattr(rec.attr.ino.0))
            .expect("getattr")
            .attr
            .size,
        RECORDING
    );
    assert_eq!(
        rig.ops
            .getxattr(rec.attr.ino.0, OsStr::new("user.vcc.contentType"), &ROOT)
            .ok()
            .as_deref(),
        Some("audio/wav")
    );
}

#[test]
fn reads_return_exactly_the_sources_bytes() {
    let rig = Rig::mock();
    let fh = rig
        .ops
        .open(rig.file_ino(GUIDS[0], "callRecording"), libc::O_RDONLY)
        .expect("open");
    for (offset, size) in [
        (0u64, 4096u32),
        (65_530, 20),
        (300_000, 200_000),
        (999_990, 4096),
    ] {
        let got = rig.read(fh, offset, size).expect("read");
        let len = u64::from(size).min(RECORDING - offset);
        assert_eq!(&got[..], &truth(offset, len)[..], "at {offset}");
    }
    assert!(rig.read(fh, RECORDING, 10).expect("eof").is_empty());
    rig.ops.release(fh);
    assert!(matches!(rig.read(fh, 0, 10), Err(FsError::BadHandle)));

    let meta = rig.file_ino(GUIDS[2], META_NAME);
    let fh = rig.ops.open(meta, libc::O_RDONLY).expect("open meta");
    let json = rig.read(fh, 0, 1 << 20).expect("meta");
    let entry = rig.catalog.known(GUIDS[2]).expect("known");
    assert_eq!(json, entry.meta_json());
}

#[test]
fn refusals_have_their_errno() {
    let rig = Rig::mock();
    let file = rig.file_ino(GUIDS[0], "transcript");
    let err = |r: Result<u64, FsError>| r.expect_err("refused").errno();
    assert_eq!(err(rig.ops.open(file, libc::O_WRONLY)), Errno::EROFS);
    assert_eq!(
        err(rig.ops.open(file, libc::O_RDONLY | libc::O_TRUNC)),
        Errno::EROFS
    );
    assert_eq!(
        err(rig.ops.open(ino::INTERACTIONS, libc::O_RDONLY)),
        Errno::EISDIR
    );
    assert_eq!(err(rig.ops.open(12345, libc::O_RDONLY)), Errno::ENOENT);
    let lookup = |p: u64, n: &str| rig.lookup(p, n).expect_err("refused").errno();
    assert_eq!(lookup(file, "x"), Errno::ENOTDIR);
    assert_eq!(lookup(ino::INTERACTIONS, "not-a-guid"), Errno::ENOENT);
    assert_eq!(
        lookup(ino::INTERACTIONS, &"a".repeat(300)),
        Errno::ENAMETOOLONG
    );
    assert_eq!(lookup(ino::ROOT, "elsewhere"), Errno::ENOENT);
    assert_eq!(
        rig.ops.access(file, true).expect_err("rw").errno(),
        Errno::EROFS
    );
    assert!(rig.ops.access(file, false).is_ok());
    assert_eq!(
        rig.ops.readlink(file).expect_err("not a link").errno(),
        Errno::EINVAL
    );
}

#[test]
fn failures_below_map_to_errno_and_changed_content_is_estale() {
    let rig = Rig::new(|| Arc::new(Faulty::from_nth(MockSource::new(0), Fault::Fail, 1)));
    let fh = rig
        .ops
        .open(rig.file_ino(GUIDS[0], "transcript"), libc::O_RDONLY)
        .expect("open");
    let e = rig.read(fh, 0, 100).expect_err("origin down");
    assert!(matches!(e, FsError::Read(_)), "{e:?}");
    assert_eq!(e.errno(), Errno::EIO);

    // A version pinned to other bytes than the origin serves: ESTALE, never the bytes.
    let rig = Rig::mock();
    let file = rig.file_ino(GUIDS[1], "transcript");
    let entry = rig.catalog.known(GUIDS[1]).expect("known");
    let version = &rig
        .catalog
        .file(&entry, "transcript")
        .expect("file")
        .version;
    assert!(version.pin(&Validator::ETag("\"older\"".into())));
    let fh = rig.ops.open(file, libc::O_RDONLY).expect("open");
    let e = rig.read(fh, 0, 100).expect_err("changed");
    assert_eq!(e.errno(), Errno::from_i32(libc::ESTALE));

    // An unlisted guid costs a lookup, which fails here (nothing listens): EIO, not ENOENT.
    let e = rig
        .lookup(ino::INTERACTIONS, "20000000-0000-4000-8000-000000000009")
        .expect_err("no API");
    assert_eq!(e.errno(), Errno::EIO);
}

#[test]
fn a_broken_tier_is_a_miss_not_an_error() {
    let rig = Rig::new(|| {
        let store = Arc::new(MemStore::default());
        store.set_broken(true);
        Arc::new(Tiered::new(store, Arc::new(MockSource::new(0))))
    });
    let fh = rig
        .ops
        .open(rig.file_ino(GUIDS[2], "callRecording"), libc::O_RDONLY)
        .expect("open");
    let got = rig.read(fh, 123_456, 100_000).expect("read");
    assert_eq!(&got[..], &truth(123_456, 100_000)[..]);
}

#[test]
fn readdir_continues_from_its_offset() {
    let rig = Rig::mock();
    let all = rig
        .rt
        .block_on(rig.ops.readdir(ino::INTERACTIONS, 0))
        .expect("readdir");
    assert_eq!(all.len(), 5);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.next, i as u64 + 1, "{}", e.name);
    }
    for offset in 1..=5u64 {
        let rest = rig
            .rt
            .block_on(rig.ops.readdir(ino::INTERACTIONS, offset))
            .expect("readdir");
        assert_eq!(rest[..], all[offset as usize..], "from {offset}");
    }
    // A listing hands out names, not inodes: the kernel looks them up before use.
    assert_eq!(rig.ops.node_count(), 0, "readdir remembers nothing");
    assert_eq!(rig.ops.lookups(ino::interaction(GUIDS[1])), None);
}

#[test]
fn by_date_links_point_at_interactions_of_that_day_only() {
    let rig = Rig::mock();
    // Every day of the window, listed or not yet.
    assert_eq!(
        rig.names(ino::BY_DATE, 0),
        [".", "..", "2026-11-19", "2026-11-20", "2026-11-21"]
    );
    let day = rig.lookup(ino::BY_DATE, "2026-11-20").expect("day");
    let names = rig.names(day.attr.ino.0, 0);
    assert_eq!(names[2..], GUIDS);
    let link = rig.lookup(day.attr.ino.0, GUIDS[0]).expect("link");
    assert_eq!(link.attr.kind, FileType::Symlink);
    assert_eq!(
        rig.ops.readlink(link.attr.ino.0).expect("readlink"),
        format!("../../interactions/{}", GUIDS[0])
    );
    let other = rig.lookup(ino::BY_DATE, "2026-11-21").expect("another day");
    assert_eq!(rig.names(other.attr.ino.0, 0), [".", ".."]);
    let e = rig
        .lookup(other.attr.ino.0, GUIDS[0])
        .expect_err("not that day");
    assert_eq!(e.errno(), Errno::ENOENT);
}

#[test]
fn cached_reads_are_answered_on_the_calling_thread() {
    let rig = Rig::new(|| Arc::new(MockSource::new(0).delayed(Duration::from_millis(30))));
    let fh = rig
        .ops
        .open(rig.file_ino(GUIDS[0], "transcript"), libc::O_RDONLY)
        .expect("open");
    let read = |done: std::sync::mpsc::Sender<Vec<u8>>| {
        let ops = Arc::clone(&rig.ops);
        answer(rig.rt.handle(), async move {
            let got = ops.read(fh, 0, 4096).await.expect("read");
            let _ = done.send(got.to_vec());
        })
    };
    let (tx, rx) = std::sync::mpsc::channel();
    assert_eq!(
        read(tx.clone()),
        Answered::Later,
        "a cold read waits for its fetch"
    );
    let first = rx.recv_timeout(Duration::from_secs(5)).expect("first read");
    assert_eq!(
        read(tx),
        Answered::AtOnce,
        "a cached read needs no runtime hop"
    );
    assert_eq!(rx.recv().ok(), Some(first.clone()));
    assert_eq!(first, truth(0, 4096));
}

#[test]
fn a_version_from_a_saved_listing_is_read_only_once_the_api_confirms_it() {
    let rig = Rig::mock();
    rig.catalog.mark_unchecked();
    let changed = rig.file_ino(GUIDS[0], "transcript");
    let same = rig.file_ino(GUIDS[1], "transcript");
    let old = rig.ops.open(changed, libc::O_RDONLY).expect("open");
    let kept = rig.ops.open(same, libc::O_RDONLY).expect("open");
    // The day is re-listed before the first read: the API lists a new version of the
    // first transcript.
    let mut now = interactions();
    now[0].content[1].last_modified = Some(time::macros::datetime!(2026-11-20 12:00 UTC));
    let r = rig.catalog.recheck(now);
    assert_eq!(r.purged.len(), 1, "the old version can go");
    let e = rig.read(old, 0, 100).expect_err("stale");
    assert_eq!(e.errno(), Errno::from_i32(libc::ESTALE));
    assert_eq!(
        &rig.read(kept, 0, 100).expect("unchanged file")[..],
        &truth(0, 100)[..]
    );
    let fresh = rig.ops.open(changed, libc::O_RDONLY).expect("reopen");
    assert_eq!(
        &rig.read(fresh, 0, 100).expect("new version")[..],
        &truth(0, 100)[..]
    );
}

#[test]
fn a_saved_day_that_cannot_be_re_listed_is_served_as_saved() {
    let rig = Rig::mock();
    rig.catalog.mark_unchecked();
    let fh = rig
        .ops
        .open(rig.file_ino(GUIDS[0], "transcript"), libc::O_RDONLY)
        .expect("open");
    // The re-list of its day fails (no API here): the saved version is all there is.
    assert_eq!(
        &rig.read(fh, 0, 100).expect("the saved version")[..],
        &truth(0, 100)[..]
    );
    assert!(!rig.catalog.is_checked(GUIDS[0]), "still only saved");
}

fn getattr_errno(rig: &Rig, ino: u64) -> Option<Errno> {
    rig.rt
        .block_on(rig.ops.getattr(ino))
        .err()
        .map(|e| e.errno())
}

#[test]
fn a_revoked_tenant_serves_nothing_until_restored() {
    let rig = Rig::mock();
    let file = rig.file_ino(GUIDS[0], "callRecording");
    let fh = rig.ops.open(file, libc::O_RDONLY).expect("open");
    assert_eq!(rig.read(fh, 0, 4096).expect("read"), truth(0, 4096));
    rig.catalog.set_revoked(true);
    let eacces = |r: Result<(), FsError>| assert_eq!(r.map_err(|e| e.errno()), Err(Errno::EACCES));
    // Cached bytes, an open handle, the listing, lookups: all refused.
    eacces(rig.read(fh, 0, 4096).map(|_| ()));
    eacces(rig.ops.open(file, libc::O_RDONLY).map(|_| ()));
    eacces(rig.lookup(ino::INTERACTIONS, GUIDS[1]).map(|_| ()));
    eacces(
        rig.rt
            .block_on(rig.ops.readdir(ino::INTERACTIONS, 0))
            .map(|_| ()),
    );
    // The root still answers.
    assert!(rig.lookup(ino::ROOT, "interactions").is_ok());
    assert!(rig.rt.block_on(rig.ops.readdir(ino::ROOT, 0)).is_ok());
    rig.catalog.set_revoked(false);
    assert_eq!(rig.read(fh, 0, 4096).expect("read again"), truth(0, 4096));
    assert!(rig.ops.open(file, libc::O_RDONLY).is_ok());
}

/// `--catalog-memory` without a disk cache: a file whose day left memory between its
/// lookup and its open is opened all the same (its day listed again from the API, not
/// ENOENT), and reads exactly.
#[test]
fn a_file_whose_day_left_memory_after_its_lookup_opens_and_reads_exactly() {
    use crate::meta::mock::{self, Call, MockMeta};
    use time::macros::{date, datetime};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let days = [
        date!(2026 - 11 - 16),
        date!(2026 - 11 - 17),
        date!(2026 - 11 - 18),
        date!(2026 - 11 - 19),
    ];
    let mut items = Vec::new();
    for (d, day) in days.iter().enumerate() {
        for i in 0..100u32 {
            let start = day.midnight().assume_utc() + time::Duration::minutes(10 * i64::from(i));
            items.push(mock::interaction(
                &mock::guid(d as u32 * 100 + i + 1),
                start,
            ));
        }
    }
    let api = Arc::new(MockMeta::new(items.clone()));
    // No saved catalog: a day that leaves memory can only come back from the API.
    let catalog = Arc::new(Catalog::with_mock(
        datetime!(2026-11-16 00:00 UTC),
        datetime!(2026-11-20 00:00 UTC),
        Arc::clone(&api),
    ));
    rt.block_on(catalog.list_window()).expect("listed");
    let whole = catalog.memory().bytes;
    // About a day and a half: one day in memory at a time (the one in use).
    catalog.set_memory_budget(whole * 3 / 8);
    let prefetcher = Arc::new(Prefetcher::new(
        Arc::new(MockSource::new(0)),
        Arc::new(BlockCache::new(64 << 20, 64 << 10)),
        ReadAheadConfig::default(),
        rt.handle().clone(),
    ));
    let ops = Arc::new(Ops::new(Arc::clone(&catalog), prefetcher));
    let guid = &items[0].guid;
    let dir = rt
        .block_on(ops.lookup(ino::INTERACTIONS, OsStr::new(guid)))
        .expect("the guid");
    let file = rt
        .block_on(ops.lookup(dir.attr.ino.0, OsStr::new("transcript")))
        .expect("its transcript");
    let file_ino = file.attr.ino.0;
    // Its day leaves memory: the other days are used after it.
    for day in &days[1..] {
        rt.block_on(catalog.day(*day)).expect("a day");
    }
    assert!(catalog.known_here(guid).is_none(), "its day left memory");
    let relists = catalog.memory().relists;
    let searches = api.calls(Call::Search);
    let (fh, _) = rt
        .block_on(ops.open_resident(file_ino, libc::O_RDONLY))
        .expect("opened, not ENOENT");
    assert_eq!(
        catalog.memory().relists,
        relists + 1,
        "its day listed again"
    );
    assert!(api.calls(Call::Search) > searches);
    assert_eq!(api.calls(Call::Interaction), 0, "no lookup by guid");
    let bytes = rt.block_on(ops.read(fh, 0, 4096)).expect("read");
    assert_eq!(bytes.as_ref(), &truth(0, 1000)[..]);
    ops.release(fh);
    // The same for its metadata file, its day gone again.
    let meta = rt
        .block_on(ops.lookup(dir.attr.ino.0, OsStr::new(META_NAME)))
        .expect("its metadata")
        .attr
        .ino
        .0;
    for day in &days[1..] {
        rt.block_on(catalog.day(*day)).expect("a day");
    }
    assert!(catalog.known_here(guid).is_none(), "its day left memory");
    let (fh, _) = rt
        .block_on(ops.open_resident(meta, libc::O_RDONLY))
        .expect("opened, not ENOENT");
    let json = rt.block_on(ops.read(fh, 0, 1 << 16)).expect("read");
    assert!(String::from_utf8_lossy(&json).contains(guid.as_str()));
    // And `ls` of the interaction's directory, its day gone once more.
    for day in &days[1..] {
        rt.block_on(catalog.day(*day)).expect("a day");
    }
    let names: Vec<String> = rt
        .block_on(ops.readdir(dir.attr.ino.0, 0))
        .expect("readdir")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.iter().any(|n| n == "transcript"), "{names:?}");
}

mod nodes;
