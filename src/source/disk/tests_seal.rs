//! The store sealed at rest (`aead`): round trips, nothing plain on disk, every kind
//! of foreign or damaged file a counted miss, whole files sealed per block, key and
//! mode changes, erasure by guid, retention, the cache directory tag.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::tests::{block, get, put, set_mtime, tenant, test_key, version, BS};
use super::whole::{WHOLE_FILE, WHOLE_IDX};
use super::*;
use crate::seal::{RootKey, OVERHEAD};

fn sealed() -> DiskConfig {
    DiskConfig {
        block_size: BS,
        min_free: MinFree::Bytes(0),
        whole_files: false,
        ..DiskConfig::new(test_key())
    }
}

fn whole() -> DiskConfig {
    DiskConfig {
        whole_files: true,
        ..sealed()
    }
}

fn open_with(root: &Path, cfg: DiskConfig) -> Arc<DiskStore> {
    DiskStore::open(root, tenant(), cfg).expect("open")
}

fn path(store: &DiskStore, v: &ContentVersion, index: u64) -> PathBuf {
    store.shared.block_path(&StoredBlock {
        key: store.shared.key_of(v),
        index,
    })
}

fn vdir(store: &DiskStore, v: &ContentVersion) -> PathBuf {
    store.shared.version_dir(&store.shared.key_of(v))
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A version of `guid` (its content key string `key`) of `size` bytes.
fn item(guid: &str, key: &str, size: u64) -> Arc<ContentVersion> {
    Arc::new(ContentVersion::new(tenant(), guid, key, size, None))
}

#[tokio::test]
async fn sealed_blocks_round_trip_across_a_reopen_and_are_never_plain() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open_with(root.path(), sealed());
    let v = version(1, 4);
    let w = item(&format!("{:036}", 2), "transcript", 4 * BS + 10);
    put(&store, &v, 0, 4);
    put(&store, &w, 0, 5);
    store.flush();
    let s = store.stats();
    assert_eq!((s.writes, s.files), (9, 9));
    let file = fs::metadata(path(&store, &v, 0)).expect("block 0").len();
    assert_eq!(file, 96 + 36 + 13 + 6 + 4 + BS + OVERHEAD as u64);
    for i in 0..4 {
        assert_eq!(get(&store, &v, i).await, Some(block(&v, i)));
    }
    drop(store);
    let store = open_with(root.path(), sealed());
    for i in 0..5 {
        assert_eq!(get(&store, &w, i).await, Some(block(&w, i)), "block {i}");
    }
    assert_eq!(store.stats().rejected, 0);
    // No 64-byte run of any block, nor the guid, is anywhere in the directory.
    let content: Vec<u8> = (0..4).flat_map(|i| block(&v, i).to_vec()).collect();
    for f in files(root.path()) {
        let bytes = fs::read(&f).expect("read");
        let name = f.to_string_lossy();
        assert!(!name.contains(&v.guid) && !name.contains(&w.guid), "{name}");
        for run in content.windows(64) {
            assert!(!bytes.windows(64).any(|b| b == run), "plain run in {name}");
        }
        assert!(!bytes.windows(36).any(|b| b == v.guid.as_bytes()), "{name}");
    }
}

#[tokio::test]
async fn foreign_swapped_damaged_or_cut_files_are_counted_misses_and_deleted() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open_with(root.path(), sealed());
    let (v, w) = (version(1, 8), version(2, 8));
    put(&store, &v, 0, 8);
    put(&store, &w, 0, 8);
    store.flush();
    // The same block of the same version, sealed under another key, or for another
    // tenant (same secret).
    let elsewhere = |cfg: DiskConfig, t: TenantId| {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = DiskStore::open(dir.path(), t, cfg).expect("open");
        let v = item(&v.guid, "callRecording", 8 * BS);
        let v = Arc::new(ContentVersion::new(t, &v.guid, &v.key, v.size, None));
        put(&other, &v, 0, 8);
        other.flush();
        fs::read(path(&other, &v, 5)).expect("foreign block")
    };
    let other_key = DiskConfig {
        root: RootKey::from_secret(b"another secret", tenant()),
        ..sealed()
    };
    let foreign_key = elsewhere(other_key, tenant());
    let t2 = TenantId::new("http://other/interaction-content", "test");
    let foreign_tenant = elsewhere(
        DiskConfig {
            root: RootKey::from_secret(b"the tests' client secret", t2),
            ..sealed()
        },
        t2,
    );
    let p = |i| path(&store, &v, i);
    fs::copy(p(1), p(2)).expect("other index");
    fs::copy(path(&store, &w, 0), p(0)).expect("other version");
    let f = fs::File::options().write(true).open(p(3)).expect("open");
    f.write_all_at(&[0x01 ^ fs::read(p(3)).expect("read")[40]], 40)
        .expect("flip");
    drop(f);
    let f = fs::File::options().write(true).open(p(4)).expect("open");
    f.set_len(50).expect("truncate");
    drop(f);
    fs::write(p(5), &foreign_key).expect("another key");
    fs::write(p(6), &foreign_tenant).expect("another tenant");
    let bad = [0, 2, 3, 4, 5, 6];
    for i in bad {
        assert_eq!(get(&store, &v, i).await, None, "block {i} served");
    }
    assert_eq!(
        get(&store, &v, 1).await,
        Some(block(&v, 1)),
        "the source stays"
    );
    assert_eq!(get(&store, &v, 7).await, Some(block(&v, 7)));
    assert_eq!(
        get(&store, &w, 0).await,
        Some(block(&w, 0)),
        "the source stays"
    );
    store.flush();
    let s = store.stats();
    assert_eq!((s.rejected, s.corrupt), (6, 0), "{s:?}");
    for i in bad {
        assert!(!p(i).exists(), "block {i} kept");
    }
    assert_eq!(s.files, 10);
}

#[tokio::test]
async fn whole_files_are_sealed_per_block_readable_anywhere_and_never_handed_out() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open_with(root.path(), whole());
    let v = item(&format!("{:036}", 1), "callRecording", 4 * BS + 10);
    put(&store, &v, 0, 5);
    store.flush();
    assert_eq!(store.stats().promotions, 1);
    let d = vdir(&store, &v);
    let len = fs::metadata(d.join(WHOLE_FILE)).expect("whole").len();
    assert_eq!(len, v.size + 5 * OVERHEAD as u64);
    assert!(
        store.local_file(&v).await.is_none(),
        "sealed: no passthrough"
    );
    for i in [3, 0, 4, 1, 2, 4] {
        assert_eq!(get(&store, &v, i).await, Some(block(&v, i)), "block {i}");
    }
    drop(store);
    let store = open_with(root.path(), whole());
    assert_eq!(
        get(&store, &v, 2).await,
        Some(block(&v, 2)),
        "after a reopen"
    );
    let s = store.stats();
    assert_eq!((s.hits, s.rejected, s.local_files), (1, 0, 0));
    // One damaged byte in segment 3 (through the open, cached file too).
    let f = fs::File::options()
        .write(true)
        .open(d.join(WHOLE_FILE))
        .expect("open");
    let at = 3 * (BS + OVERHEAD as u64) + 20;
    let mut b = [0u8; 1];
    fs::File::open(d.join(WHOLE_FILE))
        .expect("open")
        .read_exact_at(&mut b, at)
        .expect("read");
    f.write_all_at(&[b[0] ^ 0x80], at).expect("write");
    assert_eq!(get(&store, &v, 3).await, None);
    store.flush();
    assert_eq!(store.stats().rejected, 1);
    assert!(!d.join(WHOLE_FILE).exists() && !d.join(WHOLE_IDX).exists());
    assert!(!store.holds(&v));
}

#[tokio::test]
async fn swapped_segments_or_a_damaged_index_are_misses() {
    for damage in ["swap", "index"] {
        let root = tempfile::tempdir().expect("tempdir");
        let store = open_with(root.path(), whole());
        let v = version(1, 4);
        put(&store, &v, 0, 4);
        store.flush();
        let d = vdir(&store, &v);
        drop(store);
        if damage == "swap" {
            let mut w = fs::read(d.join(WHOLE_FILE)).expect("read");
            let stride = (BS + OVERHEAD as u64) as usize;
            let first: Vec<u8> = w[..stride].to_vec();
            w.copy_within(stride..2 * stride, 0);
            w[stride..2 * stride].copy_from_slice(&first);
            fs::write(d.join(WHOLE_FILE), w).expect("write");
        } else {
            let mut idx = fs::read(d.join(WHOLE_IDX)).expect("read");
            idx[30] ^= 1;
            fs::write(d.join(WHOLE_IDX), idx).expect("write");
        }
        let store = open_with(root.path(), whole());
        assert_eq!(get(&store, &v, 0).await, None, "{damage}");
        store.flush();
        assert_eq!(store.stats().rejected, 1, "{damage}");
        assert!(!d.join(WHOLE_IDX).exists(), "{damage}");
    }
}

#[test]
fn a_new_key_or_mode_discards_the_tree_and_the_catalog() {
    let root = tempfile::tempdir().expect("tempdir");
    let v = version(1, 3);
    let fill = |cfg: DiskConfig| {
        let store = open_with(root.path(), cfg);
        put(&store, &v, 0, 3);
        store.flush();
        let catalog = store.dir().join("catalog");
        fs::create_dir_all(&catalog).expect("catalog");
        fs::write(catalog.join("2026-01-01.json"), b"day").expect("day");
        assert_eq!(store.stats().files, 3);
    };
    fill(sealed());
    let same = open_with(root.path(), sealed());
    same.flush();
    assert_eq!((same.stats().files, same.stats().crypto_erased), (3, 0));
    drop(same);
    let other_key = DiskConfig {
        root: RootKey::from_secret(b"a rotated secret", tenant()),
        ..sealed()
    };
    let store = open_with(root.path(), other_key.clone());
    store.flush();
    let s = store.stats();
    assert_eq!((s.files, s.crypto_erased), (0, 4), "3 blocks and a day");
    assert!(!store.dir().join("catalog").exists());
    assert_eq!(files(&store.dir().join("v2")), Vec::<PathBuf>::new());
    drop(store);
    fill(other_key.clone());
    let plain = DiskConfig {
        encryption: DiskEncryption::None,
        ..other_key
    };
    let store = open_with(root.path(), plain);
    store.flush();
    assert_eq!(store.stats().crypto_erased, 4, "the mode changed");
    let left: Vec<_> = fs::read_dir(store.dir())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn erase_guid_removes_every_version_of_that_interaction_only() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open_with(root.path(), whole());
    let a = format!("{:036}", 7);
    let kept = version(8, 2);
    let versions = [
        item(&a, "callRecording", 3 * BS),
        item(&a, "callRecording", 3 * BS + 1), // a version no catalog knows any more
        item(&a, "transcript", BS),
    ];
    for v in &versions {
        put(&store, v, 0, v.size.div_ceil(BS));
    }
    put(&store, &kept, 0, 2);
    store.flush();
    let before = store.stats().files;
    // Whole: 2 pairs; blocks: 1.
    assert_eq!(store.erase_guid(&a), 5);
    let s = store.stats();
    assert_eq!((s.files, s.erased), (before - 3, 5));
    for v in &versions {
        assert!(!store.holds(v));
        assert!(!vdir(&store, v).exists());
        assert!(!vdir(&store, v).parent().expect("guid dir").exists());
    }
    assert!(store.holds(&kept) && vdir(&store, &kept).exists());
    assert_eq!(store.erase_guid(&a), 0, "nothing left");
    assert_eq!(store.erase_guid("never-seen"), 0);
}

#[test]
fn what_is_unused_longer_than_the_maximum_age_is_dropped() {
    let root = tempfile::tempdir().expect("tempdir");
    let day = Duration::from_secs(86_400);
    let cfg = DiskConfig {
        max_age: day,
        ..sealed()
    };
    let (old, fresh) = (version(1, 2), version(2, 2));
    let store = open_with(root.path(), cfg.clone());
    put(&store, &old, 0, 2);
    put(&store, &fresh, 0, 2);
    store.flush();
    let catalog = store.dir().join("catalog");
    fs::create_dir_all(&catalog).expect("catalog");
    for name in ["2020-01-01.json", "2026-01-01.json"] {
        fs::write(catalog.join(name), b"day").expect("day");
    }
    set_mtime(&catalog.join("2020-01-01.json"), 2 * 86_400);
    for i in 0..2 {
        set_mtime(&path(&store, &old, i), 2 * 86_400);
    }
    drop(store);
    let store = open_with(root.path(), cfg.clone());
    store.flush();
    let s = store.stats();
    assert_eq!((s.expired, s.files), (3, 2), "2 blocks and a day");
    assert!(!path(&store, &old, 0).exists() && path(&store, &fresh, 0).exists());
    assert!(!catalog.join("2020-01-01.json").exists());
    assert!(catalog.join("2026-01-01.json").exists());
    drop(store);
    // And periodically, while mounted.
    let quick = DiskConfig {
        max_age: Duration::from_millis(300),
        expire_every: Duration::from_millis(50),
        ..cfg
    };
    let store = open_with(root.path(), quick);
    store.flush();
    std::thread::sleep(Duration::from_millis(800));
    store.flush();
    let s = store.stats();
    assert_eq!(s.files, 0, "{s:?}");
    assert!(!catalog.join("2026-01-01.json").exists());
}

#[test]
fn the_root_is_tagged_and_the_old_plain_layout_goes() {
    let root = tempfile::tempdir().expect("tempdir");
    let legacy = root.path().join(tenant().to_string()).join("v1").join("ab");
    fs::create_dir_all(&legacy).expect("v1");
    fs::write(legacy.join("0"), b"plain block").expect("block");
    let store = open_with(root.path(), sealed());
    store.flush();
    let tag = fs::read_to_string(root.path().join("CACHEDIR.TAG")).expect("tag");
    assert!(tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"));
    assert_eq!(store.stats().legacy_removed, 1);
    assert!(!store.dir().join("v1").exists());
}

#[test]
fn du_counts_and_clear_removes_the_catalog_too() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open_with(root.path(), sealed());
    put(&store, &version(1, 2), 0, 2);
    store.flush();
    let catalog = store.dir().join("catalog");
    fs::create_dir_all(&catalog).expect("catalog");
    fs::write(catalog.join("2026-01-01.json"), b"day").expect("day");
    drop(store);
    let u = usage(root.path()).expect("usage");
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].files, 3);
    let cleared = clear(root.path()).expect("clear");
    assert_eq!(cleared.files, 3);
    assert!(!catalog.exists());
    assert_eq!(usage(root.path()).expect("usage")[0].files, 0);
}

/// `cargo test --release --lib source::disk::tests_seal::sealed_whole_read_speed -- --ignored --nocapture`:
/// a sequential 256 MiB read of a whole file after a reopen, sealed vs plain.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark"]
async fn sealed_whole_read_speed() {
    const BS: u64 = 256 << 10;
    const N: u64 = 1024;
    let mut speeds = Vec::new();
    for mode in [DiskEncryption::None, DiskEncryption::Aead] {
        let root = tempfile::tempdir().expect("tempdir");
        let cfg = DiskConfig {
            block_size: BS,
            min_free: MinFree::Bytes(0),
            encryption: mode,
            max_bytes: 1 << 30,
            queue_bytes: 64 << 20,
            ..DiskConfig::new(test_key())
        };
        let v = item(&format!("{:036}", 1), "callRecording", N * BS);
        let store = open_with(root.path(), cfg.clone());
        let data = bytes::Bytes::from(vec![0x5a; BS as usize]);
        for first in (0..N).step_by(64) {
            let fetched = crate::source::Fetched {
                blocks: vec![data.clone(); 64],
                validator: None,
            };
            store.put(&v, first, &fetched);
            store.flush();
        }
        assert_eq!(store.stats().promotions, 1);
        drop(store);
        let store = open_with(root.path(), cfg);
        let started = std::time::Instant::now();
        for i in 0..N {
            let r = crate::source::BlockRequest {
                version: Arc::clone(&v),
                first: i,
                count: 1,
                block_size: BS,
                pool: crate::memory::BlockPool::heap_only(),
                purpose: crate::source::Purpose::Demand,
            };
            let got = store.get(&v, i, &r).await.expect("get").expect("hit");
            assert_eq!(got.0.len() as u64, BS);
        }
        let mib_s = 256.0 / started.elapsed().as_secs_f64();
        println!("{}: {mib_s:.0} MiB/s", mode.as_str());
        speeds.push(mib_s);
    }
    assert!(speeds[1] >= 0.8 * speeds[0], "{speeds:?}");
}
