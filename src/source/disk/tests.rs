//! The store through `Tiered`, damaged files, restarts and the scan, the lock and
//! the modes. Space (cap, LRU, free space, full disk, queue) is in `tests_space`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::format::{self, Identity};
use super::*;
use crate::memory::BlockPool;
use crate::source::mock::{byte_at, MockSource};
use crate::source::{BlockSource, Tiered};
use crate::version::Validator;

pub(super) const BS: u64 = 64;
pub(super) const ETAG: &str = "\"mock\"";
/// The file of a full block of a 36-character guid, "callRecording", the mock ETag.
pub(super) const FILE: u64 = 96 + 36 + 13 + 6 + 4 + BS;

pub(super) fn tenant() -> TenantId {
    TenantId::new("http://mock/interaction-content", "test")
}

/// The tests' root key.
pub(super) fn test_key() -> crate::seal::RootKey {
    crate::seal::RootKey::from_secret(b"the tests' client secret", tenant())
}

/// The defaults with the tests' key, plain files (`none`; sealed: `tests_seal`).
pub(super) fn base() -> DiskConfig {
    DiskConfig {
        encryption: DiskEncryption::None,
        ..DiskConfig::new(test_key())
    }
}

pub(super) fn cfg() -> DiskConfig {
    DiskConfig {
        block_size: BS,
        min_free: MinFree::Bytes(0),
        // Block files as written (whole files: `tests_whole`).
        whole_files: false,
        ..base()
    }
}

pub(super) fn open(root: &Path, cfg: DiskConfig) -> Arc<DiskStore> {
    DiskStore::open(root, tenant(), cfg).expect("open")
}

/// Version `n` (a guid of its own) of `blocks` full blocks.
pub(super) fn version(n: u64, blocks: u64) -> Arc<ContentVersion> {
    let guid = format!("{n:036}");
    Arc::new(ContentVersion::new(
        tenant(),
        &guid,
        "callRecording",
        blocks * BS,
        None,
    ))
}

pub(super) fn req(v: &Arc<ContentVersion>, first: u64, count: u64) -> BlockRequest {
    BlockRequest {
        version: Arc::clone(v),
        first,
        count,
        block_size: BS,
        pool: BlockPool::heap_only(),
        purpose: crate::source::Purpose::Demand,
    }
}

pub(super) fn block(v: &ContentVersion, index: u64) -> Bytes {
    let start = index * BS;
    (start..(start + BS).min(v.size)).map(byte_at).collect()
}

/// Hand blocks `first..first + count` of `v` to the store, as fetched under the mock
/// ETag.
pub(super) fn put(store: &DiskStore, v: &Arc<ContentVersion>, first: u64, count: u64) {
    let fetched = Fetched {
        blocks: (first..first + count).map(|i| block(v, i)).collect(),
        validator: Some(Validator::ETag(ETAG.into())),
    };
    store.put(v, first, &fetched);
}

pub(super) async fn get(store: &DiskStore, v: &Arc<ContentVersion>, index: u64) -> Option<Bytes> {
    let got = store.get(v, index, &req(v, index, 1)).await.expect("get");
    got.map(|(b, _)| b)
}

pub(super) fn path(store: &DiskStore, v: &ContentVersion, index: u64) -> PathBuf {
    store.shared.block_path(&StoredBlock {
        key: store.shared.key_of(v),
        index,
    })
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

pub(super) fn set_mtime(p: &Path, secs_ago: u64) {
    let f = fs::File::options().write(true).open(p).expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(secs_ago))
        .expect("set mtime");
}

#[tokio::test]
async fn a_second_fetch_of_a_run_makes_no_origin_request() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let origin = Arc::new(MockSource::new(1000));
    let tiered = Tiered::new(store.clone(), origin.clone());
    let v = origin.version();
    let first = tiered.fetch(req(&v, 0, 16)).await.expect("fetch");
    assert_eq!(first.blocks.concat(), origin.bytes().to_vec());
    store.flush();
    let s = store.stats();
    assert_eq!((s.writes, s.files, s.misses), (16, 16, 16));
    assert_eq!(
        fs::metadata(path(&store, &v, 0)).expect("block 0").len(),
        FILE
    );
    let again = tiered.fetch(req(&v, 0, 16)).await.expect("fetch");
    assert_eq!(again.blocks.concat(), origin.bytes().to_vec());
    assert_eq!(
        origin.requests(),
        [(0, 16)],
        "the second fetch asks no origin"
    );
    assert_eq!(store.stats().hits, 16);
    // A fresh (unpinned) version of the same listing is served too, and pinned.
    let other = Arc::new(MockSource::new(1000));
    let v2 = other.version();
    let tiered = Tiered::new(store.clone(), other.clone());
    let got = tiered.fetch(req(&v2, 3, 5)).await.expect("fetch");
    assert_eq!(got.blocks.concat(), other.bytes()[3 * 64..8 * 64].to_vec());
    assert!(other.requests().is_empty());
    assert_eq!(v2.pinned(), Some(&Validator::ETag(ETAG.into())));
}

#[tokio::test]
async fn a_reopened_store_still_hits() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let origin = Arc::new(MockSource::new(1000));
    let tiered = Tiered::new(store.clone(), origin.clone());
    tiered
        .fetch(req(&origin.version(), 0, 16))
        .await
        .expect("fill");
    store.flush();
    let used = store.stats().used_bytes;
    drop(tiered);
    assert_eq!(Arc::strong_count(&store), 1);
    drop(store);
    let store = open(root.path(), cfg());
    let origin = Arc::new(MockSource::new(1000));
    let tiered = Tiered::new(store.clone(), origin.clone());
    let got = tiered
        .fetch(req(&origin.version(), 0, 16))
        .await
        .expect("fetch");
    assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
    store.flush();
    let s = store.stats();
    assert_eq!((s.files, s.used_bytes, s.hits, s.writes), (16, used, 16, 0));
}

#[tokio::test]
async fn every_damaged_byte_or_truncation_is_a_miss_deleted_and_counted() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let v = version(1, 2);
    put(&store, &v, 0, 1);
    store.flush();
    let p = path(&store, &v, 0);
    let intact = fs::read(&p).expect("read");
    let mut damaged: Vec<Vec<u8>> = (0..intact.len())
        .map(|at| {
            let mut f = intact.clone();
            f[at] ^= 0x55;
            f
        })
        .collect();
    damaged.extend((0..intact.len()).map(|len| intact[..len].to_vec()));
    damaged.push([&intact[..], b"x"].concat());
    for (n, bad) in damaged.iter().enumerate() {
        fs::create_dir_all(p.parent().expect("version dir")).expect("mkdir");
        fs::write(&p, bad).expect("write");
        assert_eq!(get(&store, &v, 0).await, None, "damage {n} served");
        store.flush();
        assert!(!p.exists(), "damage {n} not deleted");
        assert_eq!(store.stats().corrupt, n as u64 + 1);
    }
    fs::create_dir_all(p.parent().expect("version dir")).expect("mkdir");
    fs::write(&p, &intact).expect("write");
    assert_eq!(get(&store, &v, 0).await, Some(block(&v, 0)));
}

#[tokio::test]
async fn damaged_or_foreign_files_never_reach_a_reader_through_tiered() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let origin = Arc::new(MockSource::new(1000));
    let v = origin.version();
    let tiered = Tiered::new(store.clone(), origin.clone());
    tiered.fetch(req(&v, 0, 16)).await.expect("fill");
    store.flush();
    let p = |i| path(&store, &v, i);
    let file = |i| fs::read(p(i)).expect("read");
    let flip = |i, at: usize| {
        let mut f = file(i);
        f[at] ^= 1;
        fs::write(p(i), f).expect("write");
    };
    flip(1, FILE as usize - 1); // data
    flip(2, 40); // header
    fs::write(p(3), &file(3)[..100]).expect("truncate");
    fs::write(p(4), b"").expect("empty");
    fs::write(p(5), vec![0xa5; FILE as usize]).expect("garbage");
    fs::copy(p(7), p(6)).expect("block 7 as block 6");
    let foreign = |who: Identity<'_>, etag: &str| {
        let data = block(&v, who.index);
        let v = Validator::ETag(etag.into());
        let mut f = format::encode(&who, Some(&v), &data).expect("encode");
        f.extend_from_slice(&data);
        fs::write(p(who.index), f).expect("write");
    };
    let who = |index| store.shared.identity(&v, index, BS);
    foreign(
        Identity {
            tenant: *b"another!",
            ..who(8)
        },
        ETAG,
    );
    foreign(who(9), "\"another version\"");
    let got = tiered.fetch(req(&v, 0, 16)).await.expect("fetch");
    assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
    assert_eq!(origin.requests(), [(0, 16), (1, 6), (8, 2)]);
    let s = store.stats();
    assert_eq!((s.corrupt, s.hits, s.misses), (5, 8, 16 + 8));
    store.flush();
    let got = tiered.fetch(req(&v, 0, 16)).await.expect("fetch");
    assert_eq!(got.blocks.concat(), origin.bytes().to_vec());
    assert_eq!(origin.requests().len(), 3, "rewritten: all hits now");
    assert_eq!(store.stats().files, 16);
}

#[tokio::test]
async fn blocks_of_another_block_size_are_neither_kept_nor_served() {
    let root = tempfile::tempdir().expect("tempdir");
    let small = DiskConfig {
        block_size: 32,
        ..cfg()
    };
    let store = open(root.path(), small);
    let v = version(1, 2);
    put(&store, &v, 0, 1); // 64-byte blocks: not this store's size
    store.flush();
    assert_eq!(store.stats().writes, 0);
    let fetched = Fetched {
        blocks: vec![(0..32).map(byte_at).collect()],
        validator: Some(Validator::ETag(ETAG.into())),
    };
    store.put(&v, 0, &fetched);
    store.flush();
    assert_eq!(store.stats().writes, 1);
    drop(store);
    // Block 0 of 32 bytes is not block 0 of 64: a miss, and deleted.
    let store = open(root.path(), cfg());
    assert!(path(&store, &v, 0).exists());
    assert_eq!(get(&store, &v, 0).await, None);
    store.flush();
    assert!(!path(&store, &v, 0).exists());
    assert_eq!(store.stats().corrupt, 0, "intact, only not this block");
    // A request of another block size is a miss without a look.
    let mut r = req(&v, 0, 1);
    r.block_size = 32;
    assert!(store.get(&v, 0, &r).await.expect("get").is_none());
}

#[tokio::test]
async fn the_scan_removes_stale_temporary_files_strays_and_empty_directories() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let v = version(1, 4);
    put(&store, &v, 0, 4);
    store.flush();
    let used = store.stats().used_bytes;
    let tree = store.shared.tree.clone();
    let vdir = store.shared.version_dir(&store.shared.key_of(&v));
    drop(store);
    let stale = vdir.join(".tmp-0123456789abcdef-3");
    let stray = vdir.join("not-a-block");
    fs::write(&stale, b"half a block").expect("tmp");
    fs::write(&stray, b"?").expect("stray");
    let empty_version = tree.join("ab").join(format!("ab{}", "0".repeat(30)));
    let empty_prefix = tree.join("cd");
    let foreign = tree.join("zz");
    for d in [&empty_version, &empty_prefix, &foreign] {
        fs::create_dir_all(d).expect("mkdir");
    }
    let store = open(root.path(), cfg());
    store.flush();
    assert!(!stale.exists() && !stray.exists());
    assert!(!empty_version.exists() && !tree.join("ab").exists() && !empty_prefix.exists());
    assert!(foreign.exists(), "not ours: left alone");
    let s = store.stats();
    assert_eq!((s.files, s.used_bytes), (4, used));
    assert_eq!(get(&store, &v, 3).await, Some(block(&v, 3)));
}

#[tokio::test]
async fn the_scan_orders_by_mtime_and_trims_to_a_lower_cap() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let v = version(1, 6);
    put(&store, &v, 0, 6);
    store.flush();
    for i in 0..6 {
        set_mtime(&path(&store, &v, i), 1000 + 100 * (i % 3) + 10 * i);
    }
    drop(store);
    // Oldest first: 5, 2, 4, 1, 3, 0. A cap of three files keeps 3, 1, 0.
    let store = open(
        root.path(),
        DiskConfig {
            max_bytes: 3 * FILE,
            ..cfg()
        },
    );
    store.flush();
    let kept: Vec<u64> = (0..6).filter(|&i| path(&store, &v, i).exists()).collect();
    assert_eq!(kept, [0, 1, 3]);
    let s = store.stats();
    assert_eq!((s.files, s.used_bytes, s.evictions), (3, 3 * FILE, 3));
}

#[tokio::test]
async fn hits_before_the_scan_lands_are_uses_and_are_counted_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let v = version(1, 5);
    put(&store, &v, 0, 4);
    store.flush();
    for i in 0..4 {
        set_mtime(&path(&store, &v, i), 100 - i);
    }
    drop(store);
    let slow = DiskConfig {
        max_bytes: 4 * FILE,
        scan_delay: Duration::from_millis(300),
        ..cfg()
    };
    let store = open(root.path(), slow);
    assert_eq!(
        get(&store, &v, 0).await,
        Some(block(&v, 0)),
        "served before the scan"
    );
    assert_eq!(store.stats().files, 0, "not indexed yet");
    let mtime = fs::metadata(path(&store, &v, 0)).and_then(|m| m.modified());
    let age = mtime.ok().and_then(|t| t.elapsed().ok()).expect("mtime");
    assert!(age < TOUCH_AFTER, "a hit refreshes an old mtime: {age:?}");
    put(&store, &v, 4, 1); // waits for the scan
    store.flush();
    let s = store.stats();
    assert_eq!((s.files, s.used_bytes, s.evictions), (4, 4 * FILE, 1));
    // Block 0 was the oldest file, but it was read: block 1 went.
    assert!(path(&store, &v, 0).exists() && !path(&store, &v, 1).exists());
}

#[test]
fn a_second_store_on_one_directory_is_locked_out() {
    let root = tempfile::tempdir().expect("tempdir");
    let first = open(root.path(), cfg());
    match DiskStore::open(root.path(), tenant(), cfg()) {
        Err(DiskError::Locked { dir }) => assert_eq!(dir, root.path().join(tenant().to_string())),
        other => panic!("expected Locked, got {other:?}"),
    }
    let other = TenantId::new("http://other/interaction-content", "test");
    let second_tenant = DiskStore::open(root.path(), other, cfg()).expect("another tenant");
    let cleared = clear(root.path()).expect("clear");
    assert_eq!(cleared.busy.len(), 2, "both in use: {cleared:?}");
    drop(second_tenant);
    drop(first);
    let again = DiskStore::open(root.path(), tenant(), cfg()).expect("free again");
    assert!(again.dir().join("lock").exists());
}

#[test]
fn directories_are_0700_and_files_0600() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(&root.path().join("cache"), cfg());
    let v = version(1, 1);
    put(&store, &v, 0, 1);
    store.flush();
    let block = path(&store, &v, 0);
    let vdir = block.parent().expect("version dir").to_path_buf();
    let prefix = vdir.parent().expect("prefix dir").to_path_buf();
    let dirs = [
        root.path().join("cache"),
        store.dir().to_path_buf(),
        store.shared.tree.clone(),
        prefix,
        vdir,
    ];
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    assert_eq!(mode(&block), 0o600);
    assert_eq!(mode(&store.dir().join("lock")), 0o600);
}

#[tokio::test]
async fn discard_deletes_a_block_and_purge_a_version() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let (a, b) = (version(1, 4), version(2, 2));
    put(&store, &a, 0, 4);
    put(&store, &b, 0, 2);
    store.flush();
    store.discard(&a, 3);
    store.flush();
    assert!(!path(&store, &a, 3).exists());
    assert_eq!(get(&store, &a, 3).await, None);
    assert_eq!(store.stats().files, 5);
    store.purge(a.id);
    store.flush();
    let adir = store.shared.version_dir(&store.shared.key_of(&a));
    assert!(!adir.exists());
    let s = store.stats();
    assert_eq!((s.files, s.used_bytes), (2, 2 * FILE));
    assert_eq!(get(&store, &b, 1).await, Some(block(&b, 1)));
    let json = serde_json::to_value(s).expect("stats serialize");
    assert_eq!(json["files"], 2);
}

#[tokio::test]
async fn a_pinned_version_keeps_and_serves_only_its_own_validator() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(root.path(), cfg());
    let v = version(1, 2);
    assert!(v.pin(&Validator::ETag("\"new\"".into())));
    put(&store, &v, 0, 2); // fetched under the mock ETag: another version's bytes
    store.flush();
    assert_eq!(store.stats().writes, 0);
    let unpinned = version(1, 2);
    put(&store, &unpinned, 0, 1);
    store.flush();
    assert_eq!(get(&store, &v, 0).await, None, "stored under the mock ETag");
    store.flush();
    assert!(!path(&store, &v, 0).exists());
}

#[test]
fn the_default_root_is_absolute() {
    if let Ok(root) = default_root() {
        assert!(root.is_absolute() && !root.starts_with("/tmp"), "{root:?}");
    }
}
