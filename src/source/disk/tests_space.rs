//! Space: the cap under concurrent writers, LRU order, the filesystem's minimum free
//! space, a full disk, the write-behind queue's bound and backpressure; the CLI's usage
//! and clear;
//! read latency (ignored, run by hand).

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::admin::{Cleared, TenantUsage};
use super::tests::{block, cfg, get, open, path, put, req, tenant, version, BS, FILE};
use super::*;
use crate::memory::BlockPool;

/// Bytes and files under `dir`, tolerating files and directories that vanish while
/// it walks.
fn du(dir: &Path) -> (u64, u64) {
    let Ok(entries) = fs::read_dir(dir) else {
        return (0, 0);
    };
    let entries: Vec<_> = entries.flatten().collect();
    let (mut bytes, mut files) = (0, 0);
    for e in entries {
        match e.metadata() {
            Ok(m) if m.is_dir() => {
                let (b, f) = du(&e.path());
                bytes += b;
                files += f;
            }
            Ok(m) => {
                bytes += m.len();
                files += 1;
            }
            Err(_) => {}
        }
    }
    (bytes, files)
}

#[test]
fn the_cap_holds_under_many_concurrent_puts() {
    let root = tempfile::tempdir().expect("tempdir");
    let cap = 10 * FILE;
    let store = open(
        root.path(),
        DiskConfig {
            max_bytes: cap,
            ..cfg()
        },
    );
    // One version, so the tree's blocks are one directory, sampled with one readdir
    // (a walk of several directories is not a snapshot: it counts files deleted
    // from one after files written to another).
    let v = version(1, 800);
    let tree = store.shared.version_dir(&store.shared.key_of(&v));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (store, done, tree) = (Arc::clone(&store), Arc::clone(&done), tree.clone());
        std::thread::spawn(move || {
            let (mut samples, mut peak_disk, mut peak_used) = (0u64, 0, 0);
            while !done.load(Ordering::Relaxed) {
                peak_used = peak_used.max(store.stats().used_bytes);
                peak_disk = peak_disk.max(du(&tree).0);
                samples += 1;
            }
            (samples, peak_disk, peak_used)
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (store, v) = (Arc::clone(&store), Arc::clone(&v));
            std::thread::spawn(move || {
                for i in t * 200..(t + 1) * 200 {
                    put(&store, &v, i, 1);
                    if i % 16 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    store.flush();
    done.store(true, Ordering::Relaxed);
    let (samples, peak_disk, peak_used) = sampler.join().expect("sampler");
    let s = store.stats();
    println!(
        "{samples} samples, peak on disk {peak_disk}, peak used {peak_used}, cap {cap}: {s:?}"
    );
    assert!(samples > 10);
    assert!(peak_used <= cap, "used {peak_used} > cap {cap}");
    assert!(
        peak_disk <= cap + FILE,
        "on disk {peak_disk} > cap {cap} + one block"
    );
    assert_eq!(s.writes + s.dropped_writes, 800);
    assert!(s.writes > 100 && s.evictions == s.writes - 10, "{s:?}");
    assert_eq!((s.files, s.used_bytes), (10, cap));
    assert_eq!(du(&tree), (cap, 10));
}

#[tokio::test]
async fn recently_read_blocks_survive_eviction() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(
        root.path(),
        DiskConfig {
            max_bytes: 4 * FILE,
            ..cfg()
        },
    );
    let v = version(1, 8);
    put(&store, &v, 0, 4);
    store.flush();
    assert_eq!(get(&store, &v, 1).await, Some(block(&v, 1)));
    assert_eq!(get(&store, &v, 0).await, Some(block(&v, 0)));
    put(&store, &v, 4, 2);
    store.flush();
    let kept: Vec<u64> = (0..8).filter(|&i| path(&store, &v, i).exists()).collect();
    assert_eq!(kept, [0, 1, 4, 5], "2 and 3 were the least recently used");
    put(&store, &v, 6, 1);
    store.flush();
    assert!(!path(&store, &v, 1).exists(), "then 1 (read before 0)");
    assert_eq!(store.stats().evictions, 3);
}

#[test]
fn writes_never_take_the_filesystem_under_its_minimum_free_space() {
    // A fake filesystem of 10,000 bytes, of which others use `others`: 20% must stay
    // free, so our files may take 8,000 bytes less what others take.
    let root = tempfile::tempdir().expect("tempdir");
    let others = Arc::new(AtomicU64::new(0));
    let free_space: FreeSpaceFn = {
        let others = Arc::clone(&others);
        Arc::new(move |dir: &Path| {
            let used = du(dir).0 + others.load(Ordering::Relaxed);
            Ok(FsSpace {
                available: 10_000u64.saturating_sub(used),
                total: 10_000,
            })
        })
    };
    let store = open(
        root.path(),
        DiskConfig {
            min_free: MinFree::Percent(20.0),
            free_space,
            ..cfg()
        },
    );
    let v = version(1, 100);
    let most = 8_000 / FILE;
    for i in 0..100 {
        put(&store, &v, i, 1);
        store.flush();
        assert!(du(store.dir()).0 <= 8_000);
    }
    let s = store.stats();
    assert_eq!((s.files, s.writes, s.evictions), (most, 100, 100 - most));
    // Others take 5,000 more: we are under the minimum; writes now only replace.
    others.store(5_000, Ordering::Relaxed);
    put(&store, &v, 0, 3);
    store.flush();
    assert_eq!(store.stats().files, most);
    // Others take everything: nothing to evict makes room for a block.
    others.store(10_000, Ordering::Relaxed);
    store.purge(v.id);
    put(&store, &v, 0, 1);
    store.flush();
    let s = store.stats();
    assert_eq!((s.files, s.dropped_writes), (0, 1));
}

#[test]
fn a_full_disk_lowers_the_cap_and_drops_the_write() {
    let root = tempfile::tempdir().expect("tempdir");
    let errno = Arc::new(AtomicU64::new(0));
    let write_fault: Option<Arc<dyn Fn(u64) -> Option<i32> + Send + Sync>> = {
        let errno = Arc::clone(&errno);
        Some(Arc::new(move |_| {
            let e = errno.load(Ordering::Relaxed) as i32;
            (e != 0).then_some(e)
        }))
    };
    let store = open(
        root.path(),
        DiskConfig {
            write_fault,
            ..cfg()
        },
    );
    let v = version(1, 10);
    put(&store, &v, 0, 5);
    store.flush();
    errno.store(libc::ENOSPC as u64, Ordering::Relaxed);
    put(&store, &v, 5, 1);
    store.flush();
    let s = store.stats();
    assert_eq!((s.dropped_writes, s.cap_bytes, s.files), (1, 5 * FILE, 5));
    let (bytes, files) = du(store.dir());
    let stamp = fs::metadata(store.dir().join("stamp"))
        .expect("stamp")
        .len();
    assert_eq!(
        (bytes - stamp, files),
        (5 * FILE, 5 + 2),
        "no temporary file left (+ the lock and the key stamp)"
    );
    // Space again: the store keeps within what fitted, oldest first out.
    errno.store(0, Ordering::Relaxed);
    put(&store, &v, 5, 2);
    store.flush();
    let s = store.stats();
    assert_eq!((s.files, s.used_bytes, s.evictions), (5, 5 * FILE, 2));
    assert!(!path(&store, &v, 0).exists() && path(&store, &v, 6).exists());
    // EDQUOT is a full disk too; EIO only an error.
    errno.store(libc::EDQUOT as u64, Ordering::Relaxed);
    put(&store, &v, 7, 1);
    store.flush();
    assert_eq!(store.stats().dropped_writes, 2);
    errno.store(libc::EIO as u64, Ordering::Relaxed);
    put(&store, &v, 8, 1);
    store.flush();
    let s = store.stats();
    assert_eq!(
        (s.write_errors, s.dropped_writes, s.cap_bytes),
        (1, 2, 4 * FILE)
    );
}

#[test]
fn a_full_queue_drops_writes() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(
        root.path(),
        DiskConfig {
            queue_bytes: 2 * BS,
            scan_delay: Duration::from_millis(200), // the writer waits for the scan
            ..cfg()
        },
    );
    let v = version(1, 10);
    put(&store, &v, 0, 10);
    assert_eq!(store.stats().dropped_writes, 8);
    store.flush();
    let s = store.stats();
    assert_eq!((s.writes, s.files), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_waits_for_room_in_the_queue_rather_than_drop() {
    let root = tempfile::tempdir().expect("tempdir");
    let store = open(
        root.path(),
        DiskConfig {
            queue_bytes: 2 * BS,
            ..cfg()
        },
    );
    store.flush(); // the scan is done: the writer drains the queue
    let v = version(1, 64);
    for i in 0..64 {
        store.room(BS).await;
        put(&store, &v, i, 1);
    }
    store.flush();
    let s = store.stats();
    assert_eq!((s.dropped_writes, s.writes, s.files), (0, 64, 64));
    // During the start-up scan nothing drains, so waiting would only delay the reader.
    let held = open(
        tempfile::tempdir().expect("tempdir").path(),
        DiskConfig {
            queue_bytes: 2 * BS,
            scan_delay: Duration::from_secs(5),
            ..cfg()
        },
    );
    put(&held, &v, 0, 2);
    let start = Instant::now();
    held.room(BS).await;
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn usage_and_clear_report_per_tenant() {
    let root = tempfile::tempdir().expect("tempdir");
    assert!(usage(&root.path().join("none")).expect("usage").is_empty());
    assert_eq!(
        clear(&root.path().join("none")).expect("clear"),
        Cleared::default()
    );
    let other = TenantId::new("http://other/interaction-content", "test");
    let a = open(root.path(), cfg());
    let b = DiskStore::open(root.path(), other, cfg()).expect("open");
    put(&a, &version(1, 3), 0, 3);
    put(&b, &version(2, 2), 0, 2);
    a.flush();
    b.flush();
    drop(b);
    fs::create_dir(root.path().join("not-a-tenant")).expect("mkdir");
    let mut want = vec![
        TenantUsage {
            tenant: tenant().to_string(),
            bytes: 3 * FILE,
            files: 3,
        },
        TenantUsage {
            tenant: other.to_string(),
            bytes: 2 * FILE,
            files: 2,
        },
    ];
    want.sort_by(|x, y| x.tenant.cmp(&y.tenant));
    assert_eq!(usage(root.path()).expect("usage"), want);
    let cleared = clear(root.path()).expect("clear");
    assert_eq!(
        cleared,
        Cleared {
            bytes: 2 * FILE,
            files: 2,
            busy: vec![tenant().to_string()],
        }
    );
    let after = usage(root.path()).expect("usage");
    let of = |t: &TenantId| {
        after
            .iter()
            .find(|u| u.tenant == t.to_string())
            .map(|u| u.files)
    };
    assert_eq!((of(&tenant()), of(&other)), (Some(3), Some(0)));
    // The cleared tenant opens again, empty.
    let b = DiskStore::open(root.path(), other, cfg()).expect("open");
    b.flush();
    assert_eq!(b.stats().files, 0);
}

/// `cargo test --lib source::disk::tests_space::read_latency -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, run by hand"]
fn read_latency() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let root = tempfile::tempdir().expect("tempdir");
    let bs = 256 << 10;
    let store = open(
        root.path(),
        DiskConfig {
            block_size: bs,
            ..cfg()
        },
    );
    let v = Arc::new(ContentVersion::new(tenant(), "g", "k", 64 * bs, None));
    let data = Bytes::from(vec![7u8; bs as usize]);
    let fetched = Fetched {
        blocks: vec![data; 64],
        validator: None,
    };
    store.put(&v, 0, &fetched);
    store.flush();
    let pool = BlockPool::new(bs, 64 << 20, 64 << 20);
    let r = BlockRequest {
        block_size: bs,
        pool,
        ..req(&v, 0, 1)
    };
    let mut times: Vec<Duration> = rt.block_on(async {
        let mut times = Vec::new();
        for n in 0..2000u64 {
            let t = Instant::now();
            let got = store.get(&v, n % 64, &r).await.expect("get");
            times.push(t.elapsed());
            assert_eq!(got.map(|g| g.0.len()), Some(bs as usize));
        }
        times
    });
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!(
        "get of a 256 KiB block (page cache warm): p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    let t = Instant::now();
    let runs = rt.block_on(async {
        let gets = (0..64).map(|i| store.get(&v, i, &r));
        futures::future::join_all(gets).await
    });
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(runs.iter().all(|g| matches!(g, Ok(Some(_)))));
    println!(
        "64 blocks (16 MiB) at once: {ms:.1} ms, {:.0} MB/s",
        16.78 / ms * 1e3
    );
}
